"""End-to-end freshness for `make bench`: how long after POST /buy's 200 a purchase can be read.

Sends purchases to cm-server at a steady RATE per second for SECONDS (each on its own schedule,
not as fast as answers come back, so a slow answer does not lower the load), and for every
SAMPLE-th acknowledged purchase polls cm-api's GET /purchases/{purchaseId} every POLL_MS until it
answers 200. Prints one line:

    rate=<achieved/s> sent=<n> ok=<n> errors=<n> samples=<n> p50_ms=<x> p99_ms=<x> max_ms=<x> missing=<n>
    cmapi_p50_ms=<x> cmapi_p99_ms=<x> insert_p50_ms=<x> insert_p99_ms=<x> age_p50_ms=<x> age_p99_ms=<x>

A sample still 404 after 30 s counts as missing. Resolution is POLL_MS: polling every purchase
would load cm-api and MongoDB more than the purchases themselves.

The split, from cm-api's own histograms over the run (its /metrics before and after, quantiles
interpolated within buckets as Prometheus' histogram_quantile does): cm-api's share
(`cmapi_event_ingest_delay_seconds`) is each event's time from cm-server's receipt to its bulk
insert's start (Kafka, the poll, the batch window) without the time the ingest spent writing
earlier batches meanwhile; the MongoDB stand-in's share is the inserts' own time
(`cmapi_mongo_write_duration_seconds`, per batch), and an event also waits for the writes ahead of
it: its age at write (`cmapi_event_age_at_write_seconds`) is cm-api's share plus that. The rest of
a sample is the wait for the receipt: its polling, and reads queued behind inserts in the stand-in.

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


def histogram(api, connections, name):
    """{upper bound: cumulative count} of a histogram on cm-api's /metrics."""
    _, text = connections.request(api, "GET", "/metrics")
    buckets = {}
    for line in text.decode().splitlines():
        if line.startswith(name + "_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(bound)] = buckets.get(float(bound), 0) + float(line.rsplit(" ", 1)[1])
    return buckets


def histogram_quantile(fraction, before, after):
    """The quantile of what was observed between two scrapes, in ms (NaN without observations)."""
    bounds = sorted(after)
    counts = [after[bound] - before.get(bound, 0) for bound in bounds]
    if not counts or counts[-1] <= 0:
        return float("nan")
    rank = fraction * counts[-1]
    lower, below = 0.0, 0.0
    for bound, cumulative in zip(bounds, counts):
        if cumulative >= rank:
            if bound == float("inf"):
                return lower * 1000
            inside = cumulative - below
            return (lower + (bound - lower) * ((rank - below) / inside if inside else 1)) * 1000
        lower, below = bound, cumulative
    return lower * 1000


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

    split = ("cmapi_event_ingest_delay_seconds", "cmapi_mongo_write_duration_seconds", "cmapi_event_age_at_write_seconds")
    before = {name: histogram(api, connections, name) for name in split}
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
    after = {name: histogram(api, connections, name) for name in split}
    shares = {f"{share}_{label}_ms": histogram_quantile(fraction, before[name], after[name])
              for share, name in zip(("cmapi", "insert", "age"), split) for label, fraction in (("p50", 0.5), ("p99", 0.99))}

    if freshness:
        p50, p99, worst = percentile(freshness, 0.5), percentile(freshness, 0.99), max(freshness)
    else:
        p50 = p99 = worst = float("nan")
    print(f"rate={total / elapsed:.0f} sent={total} ok={counts['ok']} errors={counts['errors']} "
          f"samples={len(freshness)} p50_ms={p50:.1f} p99_ms={p99:.1f} max_ms={worst:.1f} "
          f"missing={counts['missing']} " + " ".join(f"{key}={value:.1f}" for key, value in shares.items()))


if __name__ == "__main__":
    main()
