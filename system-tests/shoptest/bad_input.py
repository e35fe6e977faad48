"""The bad-input corpus: requests a careless or hostile client sends, each with the answer the
contract and the OpenAPI documents promise for it.

Every request goes over a raw socket (so invalid UTF-8, NUL bytes, bare CRs, lying lengths and
oversized headers reach the server exactly as written) with `Connection: close`, and is answered
within `TIMEOUT` seconds or counts as a hang. `run_corpus` checks each answer's status, that
JSON error answers have the contract's shape, that nothing was produced to Kafka, and that both
services stay healthy after every request.
"""

import json
import socket
import threading
import time
import urllib.parse

# The HTTP idle timeout (HTTP_IDLE_TIMEOUT_MS) of the shops the corpus runs against: a request left
# unfinished must be closed within it.
IDLE_TIMEOUT_S = 3

TIMEOUT = 15
OK_PURCHASE = {"username": "corpus", "userid": "c-1", "price": "10.00"}


def request(method, target, headers=(), body=b"", content_type="application/json", length=None, raw=None):
    """The bytes of one HTTP/1.1 request. `length` overrides Content-Length; `raw` is sent as is."""
    if raw is not None:
        return raw
    if isinstance(body, str):
        body = body.encode()
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: shop.test", b"Connection: close"]
    if content_type is not None:
        lines.append(b"Content-Type: " + content_type.encode())
    if method == "POST" and length != "chunked":
        lines.append(b"Content-Length: " + str(len(body) if length is None else length).encode())
    for header in headers:
        lines.append(header if isinstance(header, bytes) else header.encode())
    if length == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(*parts, end=b"0\r\n\r\n"):
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + end


def buy(body, **options):
    return request("POST", "/buy", body=body, **options)


def changed(document, **changes):
    """The JSON bytes of `document` with fields replaced, added, or (given None) removed."""
    document = dict(document)
    for key, value in changes.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return json.dumps(document).encode()


def purchase(**changes):
    return changed(OK_PURCHASE, **changes)


def get(target, headers=()):
    return request("GET", target, headers=headers, content_type=None)


class Answer:
    def __init__(self, status, headers, body, seconds):
        self.status, self.headers, self.body, self.seconds = status, headers, body, seconds

    def json(self):
        return json.loads(self.body)


def send(port, data, timeout=TIMEOUT):
    """Sends the bytes (from a thread of its own, so an answer that comes before the whole body
    is read) and reads the answer; status 0 when the server closed without answering, None when
    nothing came back within `timeout` (a hang). `sent_all` says whether the server took every
    byte."""
    start = time.monotonic()
    connection = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    outcome = {"sent_all": False}

    def write():
        try:
            connection.sendall(data)
            outcome["sent_all"] = True
        except OSError:
            pass  # the server answered early (413) and closed, or the reader gave up

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    received = b""
    try:
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
            head, separator, rest = received.partition(b"\r\n\r\n")
            if separator and _content_complete(head, rest):
                break
    except ConnectionResetError:
        pass
    except socket.timeout:
        if not received:
            connection.close()
            return Answer(None, {}, b"", time.monotonic() - start)
    finally:
        connection.close()
        writer.join(5)
    seconds = time.monotonic() - start
    if not received:
        return Answer(0, {}, b"", seconds)
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    answer = Answer(status, headers, body, seconds)
    answer.sent_all = outcome["sent_all"]
    return answer


def _content_complete(head, body):
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


DEEP = b"[" * 100_000 + b"]" * 100_000


def corpus():
    """(name, service, request bytes, allowed statuses, extra check or None)."""
    s, a = "cm-server", "cm-api"
    cases = [
        # -- malformed and truncated JSON: 400 ------------------------------------------------
        ("empty body", s, buy(b""), {400}),
        ("lone brace", s, buy(b"{"), {400}),
        ("truncated object", s, buy(purchase()[:-5]), {400}),
        ("truncated string", s, buy(b'{"username":"jo'), {400}),
        ("trailing garbage", s, buy(purchase() + b"xyz"), {400}),
        ("two objects", s, buy(purchase() + purchase()), {400}),
        ("single quotes", s, buy(b"{'username':'joe','userid':'1','price':'1.00'}"), {400}),
        ("comment", s, buy(b'{/*x*/"username":"joe","userid":"1","price":"1.00"}'), {400}),
        ("trailing comma", s, buy(b'{"username":"joe","userid":"1","price":"1.00",}'), {400}),
        ("NaN price", s, buy(b'{"username":"joe","userid":"1","price":NaN}'), {400}),
        ("unquoted key", s, buy(b'{username:"joe","userid":"1","price":"1.00"}'), {400}),
        ("bad escape", s, buy(b'{"username":"jo\\qe","userid":"1","price":"1.00"}'), {400}),
        ("raw NUL in string", s, buy(b'{"username":"jo\x00e","userid":"1","price":"1.00"}'), {400}),
        ("raw newline in string", s, buy(b'{"username":"jo\ne","userid":"1","price":"1.00"}'), {400}),
        ("invalid UTF-8", s, buy(b'{"username":"\xff\xfe","userid":"1","price":"1.00"}'), {400}),
        ("overlong UTF-8 slash", s, buy(b'{"username":"\xc0\xaf","userid":"1","price":"1.00"}'), {400}),
        ("UTF-8 surrogate bytes", s, buy(b'{"username":"\xed\xa0\x80","userid":"1","price":"1.00"}'), {400}),
        ("lone surrogate escape", s, buy(b'{"username":"\\ud800","userid":"1","price":"1.00"}'), {400}),
        ("UTF-16 body", s, buy(purchase().decode().encode("utf-16")), {400}),
        ("BOM then JSON", s, buy(b"\xef\xbb\xbf" + purchase()), {400}),
        ("deeply nested arrays", s, buy(b'{"username":"joe","userid":"1","price":"1.00","x":' + DEEP[:16000] + b"}"),
         {400}),
        ("deeply nested objects", s, buy(b'{"a":' * 2000 + b"1" + b"}" * 2000), {400}),
        # -- well-formed JSON that is not a purchase: 422 --------------------------------------
        ("null", s, buy(b"null"), {422}),
        ("array", s, buy(b"[]"), {422}),
        ("string", s, buy(b'"buy"'), {422}),
        ("number", s, buy(b"42"), {422}),
        ("empty object", s, buy(b"{}"), {422}),
        ("missing username", s, buy(purchase(username=None)), {422}),
        ("missing userid", s, buy(purchase(userid=None)), {422}),
        ("missing price", s, buy(purchase(price=None)), {422}),
        ("username number", s, buy(purchase(username=5)), {422}),
        ("username array", s, buy(purchase(username=["joe"])), {422}),
        ("username null", s, buy(purchase(username=None) [:-1] + b',"username":null}'), {422}),
        ("username operator object", s, buy(purchase(username={"$gt": ""})), {422}),
        ("userid operator object", s, buy(purchase(userid={"$ne": None})), {422}),
        ("price operator object", s, buy(purchase(price={"$gt": 0})), {422}),
        ("username where", s, buy(purchase(username={"$where": "sleep(1000)"})), {422}),
        ("empty username", s, buy(purchase(username="")), {422}),
        ("username 129 bytes", s, buy(purchase(username="x" * 129)), {422}),
        ("username 65 two-byte chars", s, buy(purchase(username="é" * 65)), {422}),
        ("escaped NUL in username", s, buy(purchase(username="jo\u0000e")), {422}),
        ("newline in userid", s, buy(purchase(userid="1\n2")), {422}),
        ("DEL in username", s, buy(purchase(username="jo\u007fe")), {422}),
        ("negative price", s, buy(purchase(price="-1.00")), {422}),
        ("three decimals", s, buy(purchase(price="1.001")), {422}),
        ("price exponent", s, buy(b'{"username":"joe","userid":"1","price":1e400}'), {422}),
        ("price word", s, buy(purchase(price="abc")), {422}),
        ("price comma", s, buy(purchase(price="1,00")), {422}),
        ("price bool", s, buy(purchase(price=True)), {422}),
        ("price 40 digits", s, buy(purchase(price="9" * 40 + ".00")), {422}),
        ("price hex", s, buy(purchase(price="0x10")), {422}),
        ("price infinity", s, buy(purchase(price="Infinity")), {422}),
        ("timestamp words", s, buy(purchase(timestamp="yesterday")), {422}),
        ("timestamp without zone", s, buy(purchase(timestamp="2024-05-31T15:54:32")), {422}),
        ("timestamp Feb 30", s, buy(purchase(timestamp="2024-02-30T00:00:00Z")), {422}),
        ("negative zero price", s, buy(purchase(price="-0.00")), {422}),
        ("timestamp before 1970", s, buy(purchase(timestamp="1969-12-31T23:59:59.999Z")), {422}),
        ("timestamp in 9999", s, buy(purchase(timestamp="9999-12-31T23:59:59Z")), {422}),
        # Past TIMESTAMP_MAX_FUTURE_S (24 h by default): a purchase dated ahead would top its list.
        ("timestamp two days ahead", s,
         buy(purchase(timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2 * 86400)))), {422}),
        ("timestamp number", s, buy(purchase(timestamp=1717170872204)), {422}),
        ("dry run of an invalid purchase", s, request("POST", "/buy?dryRun=true", body=purchase(price="-1")), {422}),
        # -- sizes and framing -----------------------------------------------------------------
        ("body 16 KiB + 1", s, buy(purchase(note="x" * 16400)), {413}),
        ("body 8 MiB", s, buy(b'{"x":"' + b"y" * (8 << 20) + b'"}'), {413}),
        ("chunked over 16 KiB", s, buy(chunked(*[b"y" * 4096] * 5), length="chunked"), {413}),
        ("chunked bad JSON", s, buy(chunked(b"{", b'"username"'), length="chunked"), {400}),
        ("chunked garbage framing", s, buy(b"zz\r\nabc\r\n0\r\n\r\n", length="chunked"), {400}),
        ("length larger than body", s, buy(purchase(), length=10_000), {0}),
        ("length smaller than body", s, buy(purchase(), length=5), {400}),
        ("negative length", s, buy(purchase(), length=-1), {400}),
        ("two lengths", s, buy(purchase(), headers=[f"Content-Length: {len(purchase()) + 1}"]), {400}),
        # -- content types: 415 ----------------------------------------------------------------
        ("no content type", s, buy(purchase(), content_type=None), {415}),
        ("text/plain", s, buy(purchase(), content_type="text/plain"), {415}),
        ("form", s, buy(b"username=joe&userid=1&price=1.00", content_type="application/x-www-form-urlencoded"), {415}),
        ("json-patch", s, buy(purchase(), content_type="application/json-patch+json"), {415}),
        ("json in parameters only", s, buy(purchase(), content_type="text/plain; x=application/json"), {415}),
        # -- headers ---------------------------------------------------------------------------
        ("idempotency key with space", s, buy(purchase(), headers=["Idempotency-Key: a b"]), {422}),
        ("idempotency key 256 chars", s, buy(purchase(), headers=["Idempotency-Key: " + "k" * 256]), {422}),
        ("idempotency key UTF-8", s, buy(purchase(), headers=[b"Idempotency-Key: caf\xc3\xa9"]), {422}),
        ("idempotency key empty", s, buy(purchase(), headers=[b"Idempotency-Key: "]), {422}),
        ("bare CR in header", s, buy(purchase(), headers=[b"Idempotency-Key: a\rX-Injected: 1"]), {400}),
        ("NUL in header", s, buy(purchase(), headers=[b"Idempotency-Key: a\x00b"]), {400}),
        ("obsolete line folding", s, buy(purchase(), headers=[b"X-Folded: a\r\n b"]), {400}),
        ("header without colon", s, buy(purchase(), headers=[b"NoColonHere"]), {400}),
        ("header of 100 KB", s, buy(purchase(), headers=["X-Big: " + "h" * 100_000]), {400}),
        ("2000 headers", s, buy(purchase(), headers=[f"X-H{i}: v" for i in range(2000)]), {400}),
        ("request line of 100 KB", s, get("/getAllUserBuys/" + "u" * 100_000), {400}),
        ("invalid method", s, request("BU Y", "/buy", body=purchase()), {400}),
        ("HTTP/0.9 line", s, request(None, None, raw=b"GET /\r\n\r\n"), {400}),
        # -- paths and queries of the list -----------------------------------------------------
        ("dot-dot admin", s, get("/getAllUserBuys/..%2F..%2Fadmin"), {200},
         lambda answer: answer.json() == {"username": "../../admin", "purchases": []}),
        ("operator username in path", s, get("/getAllUserBuys/%7B%22%24gt%22%3A%22%22%7D"), {200},
         lambda answer: answer.json() == {"username": '{"$gt":""}', "purchases": []}),
        ("CRLF injection in username", s, get("/getAllUserBuys/joe%0d%0aSet-Cookie:%20x=1"), {400},
         lambda answer: "set-cookie" not in answer.headers),
        ("NUL in username", s, get("/getAllUserBuys/jo%00e"), {400}),
        ("invalid UTF-8 in username", s, get("/getAllUserBuys/%ff%fe"), {400}),
        ("bad percent escape", s, get("/getAllUserBuys/joe%2"), {400}),
        ("username 129 bytes in path", s, get("/getAllUserBuys/" + "x" * 129), {400}),
        ("limit 0", s, get("/getAllUserBuys/joe?limit=0"), {400}),
        ("limit 1001", s, get("/getAllUserBuys/joe?limit=1001"), {400}),
        ("limit word", s, get("/getAllUserBuys/joe?limit=ten"), {400}),
        ("limit negative", s, get("/getAllUserBuys/joe?limit=-5"), {400}),
        ("limit huge", s, get("/getAllUserBuys/joe?limit=99999999999999999999999"), {400}),
        ("forged cursor", s, get("/getAllUserBuys/joe?cursor=AAAA"), {400},
         lambda answer: [e["field"] for e in answer.json()["errors"]] == ["cursor"]),
        ("cursor 2 KB", s, get("/getAllUserBuys/joe?cursor=" + "c" * 2048), {400}),
        ("empty username segment", s, get("/getAllUserBuys/"), {404}),
        ("traversal to a file", s, get("/../../../../etc/passwd"), {404}),
        ("encoded traversal", s, get("/%2e%2e/%2e%2e/etc/passwd"), {404}),
        ("GET on /buy", s, get("/buy"), {405}, lambda answer: answer.headers.get("allow") == ["POST"]),
        ("DELETE on a list", s, request("DELETE", "/getAllUserBuys/joe", content_type=None), {405},
         lambda answer: answer.headers.get("allow") == ["GET"]),
        ("TRACE on /healthz", s, request("TRACE", "/healthz", content_type=None), {405}),
        # -- cm-api ----------------------------------------------------------------------------
        ("cm-api dot-dot", a, get("/buyList/..%2F..%2Fadmin"), {200},
         lambda answer: answer.json()["purchases"] == []),
        ("cm-api NUL in username", a, get("/buyList/jo%00e"), {400}),
        ("cm-api invalid UTF-8", a, get("/buyList/%c3%28"), {400}),
        ("cm-api limit 0", a, get("/buyList/joe?limit=0"), {400}),
        ("cm-api forged cursor", a, get("/buyList/joe?cursor=eyJ0IjoxfQ"), {400}),
        ("cm-api cursor operator", a, get("/buyList/joe?cursor=" + urllib.parse.quote('{"$gt":""}')), {400}),
        ("cm-api purchase id not a UUID", a, get("/purchases/not-a-uuid"), {400}),
        ("cm-api purchase id operator", a, get("/purchases/" + urllib.parse.quote('{"$ne":null}')), {400}),
        ("cm-api header of 100 KB", a, get("/buyList/joe", headers=["X-Big: " + "h" * 100_000]), {400}),
    ]
    return [case if len(case) == 5 else case + (None,) for case in cases]


# Refused by the HTTP parser (SwiftNIO) before any route sees them: a bare 400 and a closed
# connection, no JSON. Everything else, unknown paths and methods included, is answered by the
# services themselves with the contract's error JSON.
BARE = {
    "chunked garbage framing", "length larger than body", "negative length", "two lengths", "bare CR in header",
    "NUL in header", "obsolete line folding", "header without colon", "header of 100 KB", "2000 headers",
    "request line of 100 KB", "invalid method", "HTTP/0.9 line", "cm-api header of 100 KB",
}


def judge(name, allowed, check, answer, idle_timeout):
    """What is wrong with the answer to one corpus request; None when it is what was promised."""
    if answer.status is None:
        return f"no answer within {TIMEOUT} s (a hang)"
    if answer.status not in allowed:
        return f"answered {answer.status}, expected {sorted(allowed)}: {answer.body[:160]!r}"
    if answer.status == 0 and answer.seconds > idle_timeout + 3:
        return f"closed after {answer.seconds:.1f} s, the idle timeout is {idle_timeout} s"
    if 400 <= answer.status < 500 and name not in BARE:
        try:
            document = answer.json()
        except ValueError:
            return f"a {answer.status} without the contract's JSON error: {answer.body[:160]!r}"
        if document.get("status") != "Error" or not document.get("message") or not isinstance(
                document.get("errors"), list):
            return f"a {answer.status} whose JSON is not the contract's error shape: {document}"
        if answer.status == 422 and not all(e.get("field") and e.get("reason") for e in document["errors"] or [{}]):
            return f"a 422 without a reason per field: {document}"
    if check is not None:
        try:
            if not check(answer):
                return f"answer fails its check: {answer.body[:160]!r}"
        except (ValueError, KeyError, TypeError) as error:
            return f"answer fails its check ({error}): {answer.body[:160]!r}"
    return None
