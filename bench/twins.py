"""Keeps make bench's comparison honest: the Go twin (bench/go-twin) and the shop answer the same
to the same requests.

    python3 bench/twins.py SERVER_URL API_URL TWIN_URL

POST /buy: the same status to each request below (dry runs for the refusals, so nothing is
produced), and for errors the same fields with the same reasons; for a purchase, the same answer
members. A purchase made through the twin is stored by cm-api (its Kafka event is the contract's)
with the price and timestamp it was given. GET /buyList: the same page, cursor and refusals, each
service following the other's cursor. Prints one line; exits 1 naming every difference.
"""

import http.client
import json
import re
import sys
import time
import urllib.parse

PURCHASE = {"username": "twin check", "userid": "t-1", "price": "1195.30", "timestamp": "2024-05-31T15:54:32.204Z"}
JSON = {"Content-Type": "application/json"}


def body(**changes):
    purchase = dict(PURCHASE)
    for key, value in changes.items():
        if value is None:
            purchase.pop(key, None)
        else:
            purchase[key] = value
    return json.dumps(purchase)


# (path, headers, body): every one a dry run or refused, so none is produced.
BUY_REQUESTS = [
    ("/buy?dryRun=true", JSON, body()),
    ("/buy?dryRun=true", JSON, body(timestamp=None)),
    ("/buy?dryRun=true", {"Content-Type": "Application/JSON; charset=utf-8"}, body()),
    ("/buy?dryRun=true", JSON, '{"username":"a","userid":"b","price":1195.3}'),
    ("/buy?dryRun=true", JSON, '{"username":"a","userid":"b","price":1.1953e3}'),
    ("/buy?dryRun=true", JSON, body(price="1.500")),
    ("/buy?dryRun=true", JSON, body(price="0")),
    ("/buy?dryRun=true", JSON, body(extra="ignored")),
    ("/buy?dryRun=false&x=1", JSON, "{"),
    ("/buy?dryRun=yes", JSON, body()),
    ("/buy?dryRun=yes", JSON, body(price="-1")),
    ("/buy?dryRun=true", JSON, "{"),
    ("/buy?dryRun=true", JSON, "[1,2]"),
    ("/buy?dryRun=true", JSON, '"text"'),
    ("/buy?dryRun=true", JSON, "{}"),
    ("/buy?dryRun=true", JSON, '{"username":null,"userid":7,"price":true}'),
    ("/buy?dryRun=true", JSON, body(price="-1")),
    ("/buy?dryRun=true", JSON, body(price="-0.00")),
    ("/buy?dryRun=true", JSON, body(price="1.001")),
    ("/buy?dryRun=true", JSON, body(price="1e3")),
    ("/buy?dryRun=true", JSON, body(price="12.")),
    ("/buy?dryRun=true", JSON, body(price="92233720368547758.08")),
    ("/buy?dryRun=true", JSON, body(username="")),
    ("/buy?dryRun=true", JSON, body(username="x" * 129)),
    ("/buy?dryRun=true", JSON, body(username="é" * 64)),
    ("/buy?dryRun=true", JSON, body(userid="tab\there")),
    ("/buy?dryRun=true", JSON, body(userid="c1 \u0085 control")),
    ("/buy?dryRun=true", JSON, body(username='{"$gt":""}')),
    ("/buy?dryRun=true", JSON, body(timestamp="yesterday")),
    ("/buy?dryRun=true", JSON, body(timestamp="1969-12-31T23:59:59.999Z")),
    ("/buy?dryRun=true", JSON, body(timestamp="2999-01-01T00:00:00.000Z")),
    ("/buy?dryRun=true", JSON, body(timestamp=12)),
    ("/buy?dryRun=true", JSON, '{"username":"a","username":"b","userid":"c","price":"1"}'),
    ("/buy?dryRun=true", {"Content-Type": "text/plain"}, body()),
    ("/buy?dryRun=true", {}, body()),
    ("/buy?dryRun=true", JSON, body(padding="x" * (16 * 1024))),
]

LIST_REQUESTS = [
    "/buyList/reader?limit=0", "/buyList/reader?limit=1001", "/buyList/reader?limit=ten",
    "/buyList/reader?cursor=forged", "/buyList/reader?cursor=MTIzLm5vdC1hLXV1aWQ", "/buyList/nobody%20here",
    "/buyList/" + "x" * 129,
]


def exchange(url, method, path, headers=None, payload=None):
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, path, body=payload.encode() if payload is not None else None, headers=headers or {})
        response = connection.getresponse()
        text = response.read()
        try:
            answer = json.loads(text)
        except ValueError:
            answer = text.decode(errors="replace")
        return response.status, answer
    finally:
        connection.close()


def shape(status, answer):
    """What must agree: the status, and the fields and reasons of an error or a purchase's members."""
    if isinstance(answer, dict) and answer.get("status") == "Error":
        # A reason may name the server's clock, which differs by the milliseconds between the two.
        return status, sorted((e["field"], re.sub(r"\(\d{4}-[^)]*Z\)", "(now)", e["reason"]))
                              for e in answer.get("errors", []))
    if isinstance(answer, dict) and "purchaseId" in answer:
        return status, sorted(answer)
    return status, answer


def main():
    server, api, twin = sys.argv[1:4]
    differences = []
    for path, headers, payload in BUY_REQUESTS:
        ours, theirs = (shape(*exchange(url, "POST", path, headers, payload)) for url in (server, twin))
        if ours != theirs:
            differences.append(f"POST {path} {payload[:80]!r}: shop {ours}, twin {theirs}")
    compared = len(BUY_REQUESTS)

    # A purchase through the twin, stored by cm-api as the one it is.
    status, bought = exchange(twin, "POST", "/buy", JSON, body(username="twin check", price="7.05"))
    if status != 200:
        differences.append(f"the twin's purchase: {status} {bought}")
    else:
        deadline, stored = time.monotonic() + 30, None
        while time.monotonic() < deadline and stored is None:
            status, answer = exchange(api, "GET", "/purchases/" + bought["purchaseId"])
            stored = answer if status == 200 else None
            if stored is None:
                time.sleep(0.1)
        wanted = {"price": "7.05", "timestamp": PURCHASE["timestamp"], "userid": "t-1", "username": "twin check"}
        if stored is None or {key: stored["purchase"][key] for key in wanted} != wanted:
            differences.append(f"cm-api did not store the twin's purchase {bought['purchaseId']} as sent: {stored}")

    # Pages: the same, each following the other's cursor; the same refusals.
    for path in LIST_REQUESTS:
        ours, theirs = (shape(*exchange(url, "GET", path)) for url in (api, twin))
        compared += 1
        if ours != theirs:
            differences.append(f"GET {path}: cm-api {ours}, twin {theirs}")
    cursors = {api: None, twin: None}
    for _ in range(3):
        pages = {}
        for url, other in ((api, twin), (twin, api)):
            cursor = cursors[other]
            pages[url] = exchange(url, "GET", "/buyList/reader?limit=300" + (f"&cursor={cursor}" if cursor else ""))
            compared += 1
        if pages[api] != pages[twin]:
            differences.append(f"a page of reader: cm-api {str(pages[api])[:300]}, twin {str(pages[twin])[:300]}")
            break
        for url in (api, twin):
            cursors[url] = pages[url][1].get("nextCursor")
        if cursors[api] is None:
            break
    if differences:
        print("twins differ:\n  " + "\n  ".join(differences))
        sys.exit(1)
    print(f"twins agree: {compared} requests answered alike; cm-api stored the twin's purchase as sent")


if __name__ == "__main__":
    main()
