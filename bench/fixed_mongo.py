"""A MongoDB stand-in whose answers are fixed, so that measuring cm-api's reads counts cm-api's own
work and none of a database's (bench/per_request.py --binary cm-api).

    python3 bench/fixed_mongo.py PORT

It speaks the wire protocol's OP_MSG (and OP_QUERY for the handshake), answers `hello`, `ping`,
`createIndexes` and the like with ok, and every `find` with purchases of the contract's shape
(docs/CONTRACT.md, "MongoDB"): one for a filter on `_id` (the receipt), else `limit` of them
(the list page and the one after it), with only the projected fields when a projection is given.
Nothing is stored.
"""

import datetime
import socketserver
import struct
import sys

import bson
from bson.decimal128 import Decimal128

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
START = datetime.datetime(2024, 5, 31, 15, 54, 32, 204000, tzinfo=datetime.timezone.utc)


def purchase(number):
    return {
        "_id": f"3f2b8c1e-7a4d-4e8b-9c0a-{number:012d}",
        "username": "reader",
        "userid": "r-1",
        "price": Decimal128(f"{number}.95"),
        "timestamp": START - datetime.timedelta(seconds=number),
        "receivedAt": START,
        "partition": number % 6,
        "offset": number,
    }


PURCHASES = [purchase(number) for number in range(1000)]


def answer(command):
    name = next(iter(command))
    if name in ("hello", "isMaster", "ismaster"):
        return {"ismaster": True, "isWritablePrimary": True, "helloOk": True, "maxBsonObjectSize": 16 * 1024 * 1024,
                "maxMessageSizeBytes": 48_000_000, "maxWriteBatchSize": 100_000, "localTime": datetime.datetime.now(),
                "logicalSessionTimeoutMinutes": 30, "connectionId": 1, "minWireVersion": 0, "maxWireVersion": 17,
                "readOnly": False, "ok": 1.0}
    if name == "find":
        found = PURCHASES[:1] if "_id" in command.get("filter", {}) else PURCHASES[:int(command.get("limit", 100))]
        projection = command.get("projection")
        if projection:
            found = [{key: value for key, value in document.items() if key in projection} for document in found]
        return {"cursor": {"firstBatch": found, "id": bson.int64.Int64(0), "ns": f"{command['$db']}.{command['find']}"},
                "ok": 1.0}
    if name == "insert":
        return {"n": 0, "ok": 1.0}
    return {"ok": 1.0}


class Connection(socketserver.BaseRequestHandler):
    def handle(self):
        stream = self.request.makefile("rb")
        while True:
            header = stream.read(16)
            if len(header) < 16:
                return
            length, request_id, _, opcode = struct.unpack("<iiii", header)
            payload = stream.read(length - 16)
            if opcode == OP_MSG:
                command = {}
                position = 4
                while position < len(payload):
                    kind = payload[position]
                    position += 1
                    size = struct.unpack_from("<i", payload, position)[0]
                    if kind == 0:
                        command.update(bson.decode(payload[position:position + size]))
                    position += size
                body = b"\x00\x00\x00\x00" + b"\x00" + bson.encode(answer(command))
                reply = struct.pack("<iiii", 16 + len(body), 0, request_id, OP_MSG) + body
            elif opcode == OP_QUERY:
                collection_end = payload.index(b"\x00", 4)
                query_start = collection_end + 1 + 8
                size = struct.unpack_from("<i", payload, query_start)[0]
                document = bson.encode(answer(bson.decode(payload[query_start:query_start + size])))
                body = struct.pack("<iqii", 0, 0, 0, 1) + document
                reply = struct.pack("<iiii", 16 + len(body), 0, request_id, OP_REPLY) + body
            else:
                return
            self.request.sendall(reply)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    with Server(("127.0.0.1", int(sys.argv[1])), Connection) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
