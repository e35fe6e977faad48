"""End-to-end freshness for `make bench`: how long after POST /buy's 200 a purchase can be read.

Sends purchases to cm-server at a steady RATE per second for SECONDS (each on its own schedule,
not as fast as answers come back, so a slow answer does not lower the load), and for every
SAMPLE-th acknowledged purchase polls cm-api's GET /purchases/{purchaseId} every POLL_MS until it
answers 200. Prints one line:

    rate=<achieved/s> sent=<n> ok=<n> errors=<n> samples=<n> p50_ms=<x> p99_ms=<x> max_ms=<x> missing=<n>

A sample still 404 after 30 s counts as missing. Resolution is POLL_MS: polling every purchase
would load cm-api and MongoDB more than the purchases themselves.

    python3 bench/freshness.py SERVER_URL API_URL RATE SECONDS [SAMPLE] [POLL_MS]
"""

import http.client
import json
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

GIVE_UP_SECONDS = 30


class Connections(threading.local):
    """One keep-alive connection per thread and host."""

    def get(self, url):
        pool = self.__dict__.setdefault("pool", {})
        if url.netloc not in pool:
            pool[url.netloc] = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        return pool[url.netloc]

    def request(self, url, method, path, body=None, headers=None):
        for attempt in range(2):
            connection = self.get(url)
            try:
                connection.request(method, path, body=body, headers=headers or {})
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError):
                connection.close()
                del self.__dict__["pool"][url.netloc]
                if attempt == 1:
                    raise


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main():
    server, api = urllib.parse.urlsplit(sys.argv[1]), urllib.parse.urlsplit(sys.argv[2])
    rate, seconds = float(sys.argv[3]), float(sys.argv[4])
    sample = int(sys.argv[5]) if len(sys.argv) > 5 else 20
    poll = (float(sys.argv[6]) if len(sys.argv) > 6 else 5) / 1000
    connections = Connections()
    lock = threading.Lock()
    counts = {"ok": 0, "errors": 0, "missing": 0}
    freshness = []
    pollers = ThreadPoolExecutor(max_workers=32)

    def watch(purchase_id, acknowledged):
        deadline = acknowledged + GIVE_UP_SECONDS
        while time.perf_counter() < deadline:
            status, _ = connections.request(api, "GET", f"/purchases/{purchase_id}")
            if status == 200:
                with lock:
                    freshness.append((time.perf_counter() - acknowledged) * 1000)
                return
            time.sleep(poll)
        with lock:
            counts["missing"] += 1

    def buy(index):
        body = json.dumps({"username": f"fresh{index % 500}", "userid": f"f-{index % 500}", "price": "19.99"})
        try:
            status, answer = connections.request(
                server, "POST", "/buy", body=body, headers={"Content-Type": "application/json"})
        except (http.client.HTTPException, OSError):
            status, answer = 0, b""
        acknowledged = time.perf_counter()
        with lock:
            counts["ok" if status == 200 else "errors"] += 1
        if status == 200 and index % sample == 0:
            pollers.submit(watch, json.loads(answer)["purchaseId"], acknowledged)

    total = int(rate * seconds)
    senders = ThreadPoolExecutor(max_workers=64)
    start = time.perf_counter()
    for index in range(total):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        senders.submit(buy, index)
    senders.shutdown(wait=True)
    elapsed = time.perf_counter() - start
    pollers.shutdown(wait=True)

    if freshness:
        p50, p99, worst = percentile(freshness, 0.5), percentile(freshness, 0.99), max(freshness)
    else:
        p50 = p99 = worst = float("nan")
    print(f"rate={total / elapsed:.0f} sent={total} ok={counts['ok']} errors={counts['errors']} "
          f"samples={len(freshness)} p50_ms={p50:.1f} p99_ms={p99:.1f} max_ms={worst:.1f} "
          f"missing={counts['missing']}")


if __name__ == "__main__":
    main()
