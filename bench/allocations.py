"""Heap allocations per request of cm-server (bench/alloc-count.c preloaded), for a fixed number
of dry-run POSTs, acknowledged POSTs and /healthz GETs on one keep-alive connection, after a
warm-up. Deterministic for a given build, unlike CPU time on a shared machine: `make bench`
prints it for the release build, and `make test` checks the debug build against the figures
committed in bench/allocations-debug.txt (fails when a figure grows by more than --tolerance, 5 %: runs differ by under 0.5 %).

    python bench/allocations.py BIN_DIR [--requests N] [--check FILE] [--tolerance 0.05] [--write FILE]

To accept a change that allocates more (or less) on purpose, run it with --write
bench/allocations-debug.txt on the debug build and commit the file with the change, saying why.
"""

import argparse
import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from shop import free_port, http_get, wait_for  # noqa: E402

BODY = '{"username":"bench","userid":"b-1","price":"1195.30","timestamp":"2024-05-31T15:54:32.204Z"}'
KINDS = {
    "dry-run": ("POST", "/buy?dryRun=true", BODY),
    "acked": ("POST", "/buy", BODY),
    "healthz": ("GET", "/healthz", None),
}


def send(port, kind, count):
    method, path, body = KINDS[kind]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"} if body else {}
    for _ in range(count):
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{kind}: {response.status}")
    connection.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bin_dir")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--check")
    parser.add_argument("--write")
    parser.add_argument("--tolerance", type=float, default=0.05)
    arguments = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="allocations.")
    shim = os.path.join(folder, "alloc-count.so")
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", shim, os.path.join(ROOT, "bench", "alloc-count.c")],
                   check=True)
    counts = os.path.join(folder, "count")
    bootstrap = os.path.join(folder, "bootstrap")
    kafka = subprocess.Popen([os.path.join(arguments.bin_dir, "kafka-mock")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL,
                             env=dict(os.environ, KAFKA_TOPIC="scalable-shop-purchases", KAFKA_MOCK_PARTITIONS="6",
                                      KAFKA_MOCK_BOOTSTRAP_FILE=bootstrap))
    server = None
    try:
        if not wait_for(lambda: os.path.exists(bootstrap) and os.path.getsize(bootstrap) > 0, 30):
            raise RuntimeError("kafka-mock did not start")
        port = free_port()
        with open(bootstrap) as f:
            brokers = f.read().strip()
        server = subprocess.Popen(
            [os.path.join(arguments.bin_dir, "cm-server")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=dict(os.environ, LD_PRELOAD=shim, ALLOC_COUNT_FILE=counts, KAFKA_BROKERS=brokers, PORT=str(port),
                     LOG_LEVEL="warning", CM_API_HOST="127.0.0.1:1", RATE_LIMIT_BUY_PER_SECOND="0",
                     RATE_LIMIT_LIST_PER_SECOND="0"))
        if not wait_for(lambda: http_get(f"http://127.0.0.1:{port}", "/readyz")[0] == 200, 60):
            raise RuntimeError("cm-server did not become ready")

        def count():
            if os.path.exists(counts):
                os.remove(counts)
            server.send_signal(signal.SIGUSR2)
            if not wait_for(lambda: os.path.exists(counts) and os.path.getsize(counts) > 0, 10, 0.01):
                raise RuntimeError("no allocation count (is bench/alloc-count.c preloaded?)")
            with open(counts) as f:
                return int(f.read())

        figures = {}
        for kind in KINDS:
            send(port, kind, arguments.requests // 4)  # warm-up: caches, pools, metric handles
            before = count()
            send(port, kind, arguments.requests)
            figures[kind] = (count() - before) / arguments.requests
    finally:
        if server:
            server.terminate()
            server.wait(30)
        kafka.terminate()
        kafka.wait(30)

    print(" ".join(f"{kind}={value:.1f}" for kind, value in figures.items())
          + f" (heap allocations per request, {arguments.requests} requests each, {arguments.bin_dir})")
    if arguments.write:
        with open(arguments.write, "w") as f:
            f.write(" ".join(f"{kind}={value:.1f}" for kind, value in figures.items()) + "\n")
    if arguments.check:
        with open(arguments.check) as f:
            committed = dict((pair.split("=")[0], float(pair.split("=")[1])) for pair in f.read().split())
        over = [f"{kind} {figures[kind]:.1f} > {value:.1f} + {arguments.tolerance:.0%}"
                for kind, value in committed.items() if figures[kind] > value * (1 + arguments.tolerance)]
        if over:
            print("allocations per request grew: " + "; ".join(over)
                  + f". If that is intended, update {arguments.check} (see bench/allocations.py).", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
