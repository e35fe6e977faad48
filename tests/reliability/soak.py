"""make soak: the shop under mixed load for ten minutes with a random fault every 30 s.

    python tests/reliability/soak.py [--minutes 10] [--interval 30] [--rate 200] [--seed N]

Runs the release binaries (BIN_DIR to change) on free ports. One load of purchases runs from
start to end (POST /buy at --rate per second, retrying 503s and failed connections with the same
Idempotency-Key), with dry runs and list reads through cm-server beside it. After a warm-up,
every --interval seconds one fault of scenarios.FAULTS is picked at random and applied (the
broker outage, SecantusDB killed, cm-api SIGKILL mid-batch, cm-server SIGTERM or SIGKILL, a
poison burst, cm-api stalled). At the end: the exact accounting line, each fault's line, and RSS and open file
descriptors of every service at the start and at the end (under the same load). Exits 1 if any
promise broke: a missing or duplicated purchase, or a fault whose checks failed.
"""

import argparse
import http.client
import os
import random
import sys
import threading
import time
import urllib.parse
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scenarios  # noqa: E402
from accounting import CONNECTIONS, Load, account, percentile  # noqa: E402
from shop import ROOT, Shop  # noqa: E402


class Readers:
    """GET /getAllUserBuys and POST /buy?dryRun=true beside the load, counting answers."""

    def __init__(self, shop, usernames, per_second=10):
        self.server = urllib.parse.urlsplit(shop.server_url)
        self.usernames, self.interval = usernames, 2 / per_second
        self.statuses, self.slowest = {}, 0.0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.read, args=(kind,), daemon=True) for kind in ("list", "dry")]

    def read(self, kind):
        rng = random.Random(kind)
        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                if kind == "list":
                    path = f"/getAllUserBuys/{rng.choice(self.usernames)}?limit=20"
                    status, _, _ = CONNECTIONS.request(self.server, "GET", path, timeout=30)
                else:
                    body = '{"username":"soak-dry","userid":"dry","price":"1.00"}'
                    status, _, _ = CONNECTIONS.request(self.server, "POST", "/buy?dryRun=true", body,
                                                       {"Content-Type": "application/json"}, timeout=30)
            except (OSError, http.client.HTTPException):
                status = 0
            key = f"{kind} {status}"
            self.statuses[key] = self.statuses.get(key, 0) + 1
            self.slowest = max(self.slowest, time.monotonic() - sent)
            self.stop.wait(self.interval)

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join()


def usage_line(shop):
    parts = []
    for name, (rss, fds) in shop.usage().items():
        clients = f" ({shop.connections(name)} client connections)" if name != "kafka-mock" else ""
        parts.append(f"{name} pid {shop.processes[name].pid} rss {rss:.1f} MiB fds {fds}{clients}")
    return "; ".join(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--interval", type=float, default=30)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--warmup", type=float, default=30)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--faults", default=",".join(scenarios.FAULTS),
                        help="comma-separated names to pick from (default: all); without the ones that "
                             "restart cm-server or cm-api, their start and end figures are one process's")
    arguments = parser.parse_args()
    warnings.simplefilter("ignore", ResourceWarning)
    rng = random.Random(arguments.seed)
    faults = arguments.faults.split(",")
    unknown = [name for name in faults if name not in scenarios.FAULTS]
    if unknown:
        parser.error(f"unknown faults {unknown}; known: {', '.join(scenarios.FAULTS)}")

    bin_dir = os.environ.get("BIN_DIR") or os.path.join(ROOT, ".build", "release")
    shop = Shop(bin_dir=bin_dir, partitions=12, env={"CM_API_TIMEOUT_MS": 2000}).start()
    print(f"soak: {arguments.minutes} min, a fault every {arguments.interval} s, {arguments.rate:.0f} purchases/s, "
          f"seed {arguments.seed}, binaries {bin_dir}, data {shop.data}", flush=True)
    reports, problems = [], []
    try:
        load = Load(shop.server_url, scenarios.run_id("soak"), arguments.rate, users=50).start()
        readers = Readers(shop, load.usernames).start()
        time.sleep(arguments.warmup)
        start_usage = usage_line(shop)
        print(f"start: {start_usage}", flush=True)
        started = time.monotonic()
        end = started + arguments.minutes * 60
        next_fault = started
        while next_fault + arguments.interval <= end:
            name = rng.choice(faults)
            fault_started = time.monotonic()
            facts, found = scenarios.FAULTS[name](shop, load)
            found += scenarios.recovered(shop)
            took = time.monotonic() - fault_started
            line = f"[{fault_started - started:5.0f} s] {name} ({took:.0f} s): " + " ".join(
                f"{key}={value}" for key, value in facts.items())
            print(line + (f"  PROBLEMS: {found}" if found else ""), flush=True)
            reports.append(line)
            problems += [f"{name}: {problem}" for problem in found]
            next_fault += arguments.interval
            time.sleep(max(0, next_fault - time.monotonic()))
        time.sleep(max(0, end - time.monotonic()))
        end_usage = usage_line(shop)
        load.stop()
        readers.finish()
        accounting = account(load, shop.api_url, 600, shop.caught_up)
        problems += accounting.problems
        statuses = load.statuses()
        print()
        print(f"accounting: {accounting.line}")
        print(f"answers to POST /buy (every attempt): {dict(sorted(statuses.items()))}; "
              f"p99 {percentile(load.latencies(200), 0.99) * 1000:.0f} ms for 200s; gave up after retries: "
              f"{load.given_up}")
        print(f"reads beside it: {dict(sorted(readers.statuses.items()))}; slowest {readers.slowest:.2f} s")
        print(f"restarts: " + ", ".join(f"{name} {p.starts - 1}" for name, p in shop.processes.items()))
        print(f"start: {start_usage}")
        print(f"end:   {end_usage}")
        if readers.slowest > 30:
            problems.append(f"a read took {readers.slowest:.1f} s")
    finally:
        shop.stop()
    if problems:
        print("\nPROBLEMS:\n  " + "\n  ".join(problems))
        sys.exit(1)
    print("\nsoak: every acknowledged purchase stored exactly once; every fault's checks passed")


if __name__ == "__main__":
    main()
