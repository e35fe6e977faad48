"""Deterministic cost per request of cm-server: heap allocations or instructions, for a fixed
number of dry-run POSTs, acknowledged POSTs, /healthz GETs and list pages (proxied to
bench/fake_cm_api.py) on one keep-alive connection each, after a warm-up. With --binary cm-api,
cm-api's reads the same way: list pages of 100 (`page`) and receipts (`receipt`) against
bench/fixed_mongo.py, a MongoDB stand-in with fixed answers, so that the database's own work is
not counted.

Unlike CPU time on a shared machine, both are the same from run to run for a given build (runs
agree within 0.5 %), so a change's effect shows through the noise:

- allocations: bench/alloc-count.c is preloaded and counts malloc and friends; SIGUSR2 reports.
- instructions: cm-server runs under `valgrind --tool=callgrind`; the counters are zeroed after
  the warm-up and dumped after the measured requests (`callgrind_control`), so start-up is not
  counted. User-space instructions of every thread, the kernel's not. Two workarounds for
  Debian 12's valgrind 3.19: the binary is run from a copy without debug information (3.19 cannot
  read the DWARF 5 that Swift writes and gives up), and bench/sigsuspend-copy.c is preloaded
  (3.19 writes into the signal mask given to sigsuspend, which libdispatch keeps in read-only
  memory, and valgrind crashes; the copy hands it a writable one).

`make bench` prints both for the release build; `make test` checks the debug build's against
the figures committed in bench/allocations-debug.txt and bench/instructions-debug.txt and fails
when one grows by more than --tolerance (5 %).

    python bench/per_request.py {allocations,instructions} BIN_DIR [--requests N]
        [--check FILE] [--tolerance 0.05] [--write FILE] [--binary {http-floor,nio-floor}]
        [--tracing {off,unsampled,sampled}] [--kinds dry-run,acked,...] [--binary cm-api]

With --tracing unsampled or sampled, cm-server traces (docs/OBSERVABILITY.md) to an OTLP receiver in this
process (shoptest/otlp.py): unsampled is the charts' parentbased_traceidratio at a ratio of 0, every span
made (trace and span ids, the context propagated) and dropped, what tracing costs the requests a ratio
leaves out (always_off would take swift-otel's shortcut, which makes no context at all); sampled is
always_on, every span exported. The default, off, sets no OTEL_*
variable: what make test guards.

With --binary http-floor it measures bench/HTTPFloor's GET /healthz and dry run instead: Hummingbird
with no middleware (a constant answer; the shop's validation and dry-run answer), the limit
cm-server's routes are compared with. With --binary nio-floor, the same answers from SwiftNIO
alone (HTTP_FLOOR=nio): the floor under Hummingbird.

To accept a change that costs more (or less) on purpose, run it with --write FILE on the debug
build (`make build` first) and commit the file with the change, saying why.
"""

import argparse
import glob
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from shoptest import ROOT
from shoptest.net import free_port, http_get
from shoptest.otlp import Receiver
from shoptest.waiting import wait_for

BODY = '{"username":"bench","userid":"b-1","price":"1195.30","timestamp":"2024-05-31T15:54:32.204Z"}'
KINDS = {
    "dry-run": ("POST", "/buy?dryRun=true", BODY),
    "acked": ("POST", "/buy", BODY),
    "healthz": ("GET", "/healthz", None),
    "list": ("GET", "/getAllUserBuys/reader?limit=100", None),
}
# cm-api's reads (--binary cm-api), against bench/fixed_mongo.py.
API_KINDS = {
    "page": ("GET", "/buyList/reader?limit=100", None),
    "receipt": ("GET", "/purchases/3f2b8c1e-7a4d-4e8b-9c0a-000000000000", None),
}


def list_page(count=100):
    """A page of cm-api's GET /buyList answer (the contract's shape) for the fake cm-api."""
    purchases = [{"_id": f"6650f0c2a1b2c3d4e5f6{i:04x}", "purchaseId": f"3f2b8c1e-7a4d-4e8b-9c0a-{i:012d}",
                  "username": "reader", "userid": "005", "price": f"{i}.95",
                  "timestamp": f"2024-05-31T15:{i % 60:02d}:32.204Z"} for i in range(count)]
    return json.dumps({"status": "Ok!", "purchases": purchases}).encode()


def send(port, kind, count):
    method, path, body = {**KINDS, **API_KINDS}[kind]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"} if body else {}
    for _ in range(count):
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{kind}: {response.status}")
    connection.close()


class Allocations:
    name = "heap allocations"

    def __init__(self, folder):
        self.shim = os.path.join(folder, "alloc-count.so")
        compile_shim("alloc-count.c", self.shim)
        self.counts = os.path.join(folder, "count")

    def command(self, binary):
        return [binary], {"LD_PRELOAD": self.shim, "ALLOC_COUNT_FILE": self.counts}

    def count(self, server):
        if os.path.exists(self.counts):
            os.remove(self.counts)
        server.send_signal(signal.SIGUSR2)
        if not wait_for(lambda: os.path.exists(self.counts) and os.path.getsize(self.counts) > 0, 10, 0.01):
            raise RuntimeError("no allocation count (is bench/alloc-count.c preloaded?)")
        with open(self.counts) as f:
            return int(f.read())

    def start(self, server):
        self.before = self.count(server)

    def stop(self, server):
        return self.count(server) - self.before


class Instructions:
    name = "instructions"

    def __init__(self, folder):
        for tool in ("valgrind", "callgrind_control", "strip"):
            if not shutil.which(tool):
                raise RuntimeError(f"{tool} is not installed (Debian: valgrind, binutils)")
        self.folder = folder
        self.shim = os.path.join(folder, "sigsuspend-copy.so")
        compile_shim("sigsuspend-copy.c", self.shim)
        self.output = os.path.join(folder, "callgrind.out")

    def command(self, binary):
        copy = os.path.join(self.folder, os.path.basename(binary))
        subprocess.run(["strip", "--strip-debug", "-o", copy, binary], check=True)
        return (["valgrind", "--tool=callgrind", "--callgrind-out-file=" + self.output, copy],
                {"LD_PRELOAD": self.shim})

    def control(self, server, option):
        result = subprocess.run(["callgrind_control", option, str(server.pid)], capture_output=True, text=True,
                                timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"callgrind_control {option}: {result.stdout}{result.stderr}")

    def start(self, server):
        self.control(server, "--zero")
        self.dumps = set(glob.glob(self.output + ".*"))

    def stop(self, server):
        self.control(server, "--dump")

        def summary():
            for path in set(glob.glob(self.output + ".*")) - self.dumps:
                with open(path) as f:
                    for line in f:
                        if line.startswith("summary:"):
                            return int(line.split()[1])
            return None

        if not wait_for(lambda: summary() is not None, 30, 0.05):
            raise RuntimeError("callgrind wrote no dump")
        return summary()


def port_open(port):
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def compile_shim(source, library):
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", library, os.path.join(ROOT, "bench", source)], check=True)


SAMPLERS = {"unsampled": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"},
            "sampled": {"OTEL_TRACES_SAMPLER": "always_on"}}


def measure(measure_class, bin_dir, requests, binary="cm-server", tracing="off", kinds=None):
    with Receiver() as receiver:
        # The SDK's own export schedule (every 5 s, or 512 spans), not the tests' 100 ms: a timer's
        # ticks would be counted against the requests.
        tracing_env = {} if tracing == "off" else dict(receiver.environment(**SAMPLERS[tracing]),
                                                       OTEL_BSP_SCHEDULE_DELAY="5000")
        figures = measure_with(measure_class, bin_dir, requests, binary, tracing_env, kinds)
        if tracing == "sampled" and not receiver.received():
            raise RuntimeError("tracing sampled, yet no span was exported")
        return figures


def measure_with(measure_class, bin_dir, requests, binary, tracing_env, kinds):
    folder = tempfile.mkdtemp(prefix="per-request.")
    measurement = measure_class(folder)
    bootstrap = os.path.join(folder, "bootstrap")
    page = os.path.join(folder, "page.json")
    with open(page, "wb") as f:
        f.write(list_page())
    fake_port = free_port()
    kafka = subprocess.Popen([os.path.join(bin_dir, "kafka-mock")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL,
                             env=dict(os.environ, KAFKA_TOPIC="scalable-shop-purchases", KAFKA_MOCK_PARTITIONS="6",
                                      KAFKA_MOCK_BOOTSTRAP_FILE=bootstrap))
    if binary == "cm-api":
        fake = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "fixed_mongo.py"), str(fake_port)])
    else:
        fake = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "fake_cm_api.py"), str(fake_port), page])
    server = None
    log = open(os.path.join(folder, binary + ".log"), "w")
    try:
        if not wait_for(lambda: os.path.exists(bootstrap) and os.path.getsize(bootstrap) > 0, 30):
            raise RuntimeError("kafka-mock did not start")
        if binary == "cm-api":
            if not wait_for(lambda: port_open(fake_port), 30):
                raise RuntimeError("the fixed MongoDB did not start")
        elif not wait_for(lambda: http_get(f"http://127.0.0.1:{fake_port}", "/buyList/reader")[0] == 200, 30):
            raise RuntimeError("the fake cm-api did not start")
        port = free_port()
        with open(bootstrap) as f:
            brokers = f.read().strip()
        executable, floor_env = ("http-floor", {"HTTP_FLOOR": "nio"}) if binary == "nio-floor" else (binary, {})
        command, extra = measurement.command(os.path.join(bin_dir, executable))
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT,
            # A fixed hash seed: with Swift's random one, dictionary work differs by process.
            env=dict(os.environ, SWIFT_DETERMINISTIC_HASHING="1", KAFKA_BROKERS=brokers, PORT=str(port), LOG_LEVEL="warning",
                     CM_API_HOST=f"127.0.0.1:{fake_port}", MONGODB_URI=f"mongodb://127.0.0.1:{fake_port}/",
                     RATE_LIMIT_BUY_PER_SECOND="0",
                     RATE_LIMIT_LIST_PER_SECOND="0", **tracing_env, **floor_env, **extra))
        ready = "/readyz" if binary in ("cm-server", "cm-api") else "/healthz"
        if not wait_for(lambda: http_get(f"http://127.0.0.1:{port}", ready)[0] == 200, 120):
            raise RuntimeError(f"{binary} did not become ready (log: {log.name})")

        figures = {}
        default = {"cm-server": KINDS, "cm-api": API_KINDS}.get(binary, ["healthz", "dry-run"])
        for kind in kinds or default:
            send(port, kind, max(requests // 4, 1))  # warm-up: caches, pools, metric handles
            measurement.start(server)
            send(port, kind, requests)
            figures[kind] = measurement.stop(server) / requests
        if not os.environ.get("PER_REQUEST_KEEP"):
            shutil.rmtree(folder, ignore_errors=True)  # kept on failure (or asked), with the log and dumps
        return figures
    finally:
        if server:
            server.terminate()
            server.wait(60)
        for process in (kafka, fake):
            process.terminate()
            process.wait(30)
        log.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("measure", choices=["allocations", "instructions"])
    parser.add_argument("bin_dir")
    parser.add_argument("--requests", type=int)
    parser.add_argument("--binary", default="cm-server",
                        help="http-floor: bench/HTTPFloor's /healthz and dry run instead (Hummingbird alone, the HTTP limit); "
                             "nio-floor: the same from SwiftNIO alone; "
                             "cm-api: its list page and receipt against bench/fixed_mongo.py")
    parser.add_argument("--tracing", choices=["off", "unsampled", "sampled"], default="off")
    parser.add_argument("--kinds", help="a comma-separated subset of " + ",".join([*KINDS, *API_KINDS]))
    parser.add_argument("--check")
    parser.add_argument("--write")
    parser.add_argument("--tolerance", type=float, default=0.05)
    arguments = parser.parse_args()
    measure_class = Allocations if arguments.measure == "allocations" else Instructions
    requests = arguments.requests or (2000 if measure_class is Allocations else 500)

    kinds = arguments.kinds.split(",") if arguments.kinds else None
    figures = measure(measure_class, arguments.bin_dir, requests, arguments.binary, arguments.tracing, kinds)
    line = " ".join(f"{kind}={value:.{1 if measure_class is Allocations else 0}f}" for kind, value in figures.items())
    print(line + f" ({measure_class.name} per request, {requests} requests each, {arguments.bin_dir}/{arguments.binary}"
          + (f", tracing {arguments.tracing}" if arguments.tracing != "off" else "") + ")")
    if arguments.write:
        with open(arguments.write, "w") as f:
            f.write(line + "\n")
    if arguments.check:
        with open(arguments.check) as f:
            committed = dict((pair.split("=")[0], float(pair.split("=")[1])) for pair in f.read().split())
        over = [f"{kind} {figures[kind]:.1f} > {value:.1f} + {arguments.tolerance:.0%}"
                for kind, value in committed.items() if figures[kind] > value * (1 + arguments.tolerance)]
        if over:
            print(f"{measure_class.name} per request grew: " + "; ".join(over)
                  + f". If that is intended, update {arguments.check} (see bench/per_request.py).", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
