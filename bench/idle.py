"""What an idle shop costs: each service's CPU (user + system, from /proc) per second of wall
time while nothing is asked of it, after start-up has settled.

    PYTHONPATH=system-tests .venv/bin/python bench/idle.py [BIN_DIR] [--seconds N]

BIN_DIR defaults to .build/release (make bench's binaries). kafka-mock and SecantusDB run as the
launcher starts them, with cm-api's default fetch wait (a real broker's behaviour, not the suites'
10 ms). Prints one line per service, milliseconds of CPU per second.
"""

import argparse
import os
import time

from shoptest import ROOT
from shoptest.launcher import Shop


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bin_dir", nargs="?", default=os.path.join(ROOT, ".build", "release"))
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--settle", type=float, default=5, help="seconds after start before measuring")
    options = parser.parse_args()
    shop = Shop(bin_dir=options.bin_dir, quick_fetch=False).start()
    try:
        # Start-up work (index creation, the group's first join) is not idle cost: a fixed
        # measurement window after it, not a synchronisation.
        time.sleep(options.settle)
        pids = {name: shop.processes[name].pid for name in ("cm-api", "cm-server")}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        start = time.monotonic()
        time.sleep(options.seconds)
        elapsed = time.monotonic() - start
        for name, pid in pids.items():
            print(f"{name}: {(cpu_seconds(pid) - before[name]) * 1000 / elapsed:.1f} ms of CPU per second, idle")
    finally:
        shop.stop()


if __name__ == "__main__":
    main()
