"""make soak: the shop under mixed load for ten minutes with a random fault every 30 s.

    python -m shoptest.soak [--minutes 10] [--interval 30] [--rate 200] [--seed N]

Runs the release binaries (BIN_DIR to change) on free ports. One load of purchases runs from
start to end (POST /buy at --rate per second, retrying 503s and failed connections with the same
Idempotency-Key), with dry runs and list reads through cm-server beside it. After a warm-up,
every --interval seconds one fault of faults.FAULTS is picked at random and applied (the
broker outage, SecantusDB killed, cm-api SIGKILL mid-batch, cm-server SIGTERM or SIGKILL, a
poison burst, cm-api stalled). At the end: the exact accounting line, each fault's line, and RSS and open file
descriptors of every service at the start (after the warm-up, which includes three poison bursts)
and at the end (under the same load). Exits 1 if any promise broke: a missing or duplicated
purchase, a fault whose checks failed, or cm-server or cm-api holding more descriptors of its own
or more than 32 MiB more memory at the end. With
--faults kafka-broker-outage,mongodb-killed-and-restarted,poison-burst,cm-api-stalled nothing
restarts cm-server or cm-api, so that comparison covers one process over the whole soak.
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

from shoptest import ROOT
from shoptest import faults
from shoptest.accounting import CONNECTIONS, Load, account, percentile
from shoptest.launcher import Shop


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


def usage(shop):
    """{service: (pid, RSS MiB, open fds, {peer: TCP connections, as Shop.connections counts
    them})} of each running service (no connections for kafka-mock, whose clients are all the
    others)."""
    return {name: (shop.processes[name].pid, rss, fds, shop.connections(name) if name != "kafka-mock" else {})
            for name, (rss, fds) in shop.usage().items()}


def usage_line(figures):
    def peers(connections):
        return " (connections: " + ", ".join(f"{n} {peer}" for peer, n in sorted(connections.items())) + ")"
    return "; ".join(f"{name} pid {pid} rss {rss:.1f} MiB fds {fds}" + (peers(connections) if connections else "")
                     for name, (pid, rss, fds, connections) in figures.items())


# A leak in cm-server or cm-api shows as descriptors of their own or memory that grew from the
# start to the end under the same load. "Their own" are all open descriptors but TCP connections
# (Shop.connections): those come and go with the load (the clients' keep-alive connections) and
# with the pools (libmongoc opens up to maxPoolSize, 16, when reads pile up, as after cm-api
# stalled, and keeps them, closed by a SecantusDB that died or not), while any other leaked
# socket whose peer has gone is in CLOSE_WAIT and so counted as its own.
# kafka-mock and SecantusDB hold the data and grow with it: not checked.
OWN_FDS_SLACK = 5
RSS_GROWTH_MIB = 32
# The reads' pool (16) and the ingest's (2), and each pool's monitoring connection.
MONGODB_CONNECTIONS_MAX = 16 + 2 + 2
# cm-api's RSS rises by 30 to 35 MiB over the first three poison bursts (librdkafka's buffers
# for 900 KB events, kept by the allocator) and then moves around that mark: measured 60, 76,
# 79 and 79 MiB after eight in one probe, 60, 71, 74 and 72 to 84 over 27 faults in another.
# The warm-up sends three, so the start figures are past most of that rise, not always all
# of it (65 MiB once), which the 32 MiB bound leaves room for.
WARMUP_POISON_BURSTS = 3


def leaks(start, end):
    """Problems if cm-server's or cm-api's own descriptors or memory grew from start to end, or
    cm-api holds more MongoDB connections than its pool allows. A service restarted by a fault
    is a newer process at the end: compared all the same, it shows only a leak quick enough to
    show since its restart (make soak with --faults without the restarts compares one process)."""
    found = []
    for name in ("cm-server", "cm-api"):
        if name not in start or name not in end:
            found.append(f"{name} not running at the {'start' if name not in start else 'end'}")
            continue
        _, rss_before, fds_before, connections_before = start[name]
        _, rss_after, fds_after, connections_after = end[name]
        own_before = fds_before - sum(connections_before.values())
        own_after = fds_after - sum(connections_after.values())
        if own_after > own_before + OWN_FDS_SLACK:
            found.append(f"{name} holds {own_after} descriptors besides its connections at the end, "
                         f"{own_before} at the start")
        if rss_after > rss_before + RSS_GROWTH_MIB:
            found.append(f"{name} RSS grew from {rss_before:.1f} to {rss_after:.1f} MiB")
        if connections_after.get("mongodb", 0) > MONGODB_CONNECTIONS_MAX:
            found.append(f"{name} holds {connections_after['mongodb']} connections to MongoDB, "
                         f"more than its pools' {MONGODB_CONNECTIONS_MAX}")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--interval", type=float, default=30)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--warmup", type=float, default=30)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--faults", default=",".join(faults.FAULTS),
                        help="comma-separated names to pick from (default: all); without the ones that "
                             "restart cm-server or cm-api, their start and end figures are one process's")
    arguments = parser.parse_args()
    warnings.simplefilter("ignore", ResourceWarning)
    rng = random.Random(arguments.seed)
    chosen = arguments.faults.split(",")
    unknown = [name for name in chosen if name not in faults.FAULTS]
    if unknown:
        parser.error(f"unknown faults {unknown}; known: {', '.join(faults.FAULTS)}")

    bin_dir = os.environ.get("BIN_DIR") or os.path.join(ROOT, ".build", "release")
    shop = Shop(bin_dir=bin_dir, partitions=12, env={"CM_API_TIMEOUT_MS": 2000}, test_commands=True).start()
    print(f"soak: {arguments.minutes} min, a fault every {arguments.interval} s, {arguments.rate:.0f} purchases/s, "
          f"seed {arguments.seed}, binaries {bin_dir}, data {shop.data}", flush=True)
    reports, problems = [], []
    try:
        load = Load(shop.server_url, faults.run_id("soak"), arguments.rate, users=50).start()
        readers = Readers(shop, load.usernames).start()
        time.sleep(arguments.warmup)
        for _ in range(WARMUP_POISON_BURSTS):
            _, found = faults.FAULTS["poison-burst"](shop, load)
            problems += [f"warm-up poison-burst: {problem}" for problem in found]
        start_usage = usage(shop)
        print(f"start: {usage_line(start_usage)}", flush=True)
        started = time.monotonic()
        end = started + arguments.minutes * 60
        next_fault = started
        while next_fault + arguments.interval <= end:
            name = rng.choice(chosen)
            fault_started = time.monotonic()
            facts, found = faults.FAULTS[name](shop, load)
            found += faults.recovered(shop)
            took = time.monotonic() - fault_started
            line = f"[{fault_started - started:5.0f} s] {name} ({took:.0f} s): " + " ".join(
                f"{key}={value}" for key, value in facts.items())
            print(line + (f"  PROBLEMS: {found}" if found else ""), flush=True)
            reports.append(line)
            problems += [f"{name}: {problem}" for problem in found]
            next_fault += arguments.interval
            time.sleep(max(0, next_fault - time.monotonic()))
        time.sleep(max(0, end - time.monotonic()))
        end_usage = usage(shop)
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
        print("restarts: " + ", ".join(f"{name} {p.starts - 1}" for name, p in shop.processes.items()))
        print(f"start: {usage_line(start_usage)}")
        print(f"end:   {usage_line(end_usage)}")
        problems += leaks(start_usage, end_usage)
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
