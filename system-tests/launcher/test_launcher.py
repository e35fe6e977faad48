"""`make run` stops everything, however it is stopped (run by make test).

`make run` is started as a supervisor would start it, in a process group of its own, and stopped
as a supervisor would stop it: SIGTERM to the whole group (what `timeout`, systemd or a CI harness
send). make passes that SIGTERM on to the launcher a second time, and more may follow while the
launcher is stopping the shop; whatever arrives, no process of the shop may be left behind, nor
any of its ports held. The debug binaries are used and the build is skipped (SWIFT=true).
"""

import os
import shutil
import signal
import subprocess
import tempfile
import unittest

from shoptest import ROOT
from shoptest.net import free_port, listening
from shoptest.waiting import wait_for

SERVICES = ["kafka-mock", "secantusdb", "cm-api", "cm-server"]


def alive(pid):
    """Whether `pid` is a process that has not exited (a zombie has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class MakeRun:
    """One `make run` in a process group of its own, on free ports, with its own data folder."""

    def __init__(self):
        self.data = tempfile.mkdtemp(prefix="make-run.")
        self.ports = {"PORT": free_port(), "API": free_port(), "MONGO_PORT": free_port()}
        env = dict(os.environ, BIN_DIR=os.path.join(ROOT, ".build", "debug"), DATA_DIR=self.data,
                   PORT=str(self.ports["PORT"]), CM_API_HOST="127.0.0.1:%d" % self.ports["API"],
                   MONGO_PORT=str(self.ports["MONGO_PORT"]))
        for name in ("KAFKA_BROKERS", "MONGODB_URI", "MAKEFLAGS", "MAKELEVEL"):
            env.pop(name, None)
        self.output_path = os.path.join(self.data, "make-run.out")
        with open(self.output_path, "wb") as output:
            self.make = subprocess.Popen(["make", "--no-print-directory", "-C", ROOT, "run", "SWIFT=true"], env=env,
                                         stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        self.pids = {}

    def output(self):
        with open(self.output_path, errors="replace") as output:
            return output.read()

    def wait_until_up(self):
        up = wait_for(lambda: "The shop is up" in self.output() or self.make.poll() is not None, 240)
        if not up or "The shop is up" not in self.output():
            raise AssertionError("make run did not come up:\n" + self.output())
        with open(os.path.join(self.data, "shop.pids")) as pids:
            self.pids = {name: int(pid) for name, pid in (line.split() for line in pids)}
        assert sorted(self.pids) == sorted(SERVICES), self.pids

    def signal_group(self, number):
        try:
            os.killpg(self.make.pid, number)
        except ProcessLookupError:
            pass

    def left_behind(self):
        """What of the shop still runs or holds a port."""
        processes = [f"{name} (pid {pid})" for name, pid in self.pids.items() if alive(pid)]
        ports = [f"port {port}" for port in self.ports.values() if listening(port)]
        return processes + ports

    def clean_up(self):
        """Whatever the test did, nothing of it stays (SIGKILL to anything left)."""
        self.signal_group(signal.SIGKILL)
        for pid in self.pids.values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.make.wait(30)
        shutil.rmtree(self.data, ignore_errors=True)


class MakeRunStopsEverything(unittest.TestCase):
    def start(self):
        run = MakeRun()
        self.addCleanup(run.clean_up)
        run.wait_until_up()
        for name, pid in run.pids.items():
            self.assertTrue(alive(pid), f"{name} is running once the shop is up")
        return run

    def assert_all_stopped(self, run, how):
        self.assertIsNotNone(self.wait_exit(run), f"make run still running after {how}:\n{run.output()}")
        self.assertTrue(wait_for(lambda: not run.left_behind(), 10),
                        f"left behind after {how}: {run.left_behind()}\n{run.output()}")
        self.assertIn("stopped", run.output())

    @staticmethod
    def wait_exit(run):
        try:
            return run.make.wait(90)
        except subprocess.TimeoutExpired:
            return None

    def test_sigterm_to_the_process_group(self):
        run = self.start()
        run.signal_group(signal.SIGTERM)
        self.assert_all_stopped(run, "one SIGTERM to the group")

    def test_more_sigterms_while_it_is_stopping(self):
        run = self.start()
        run.signal_group(signal.SIGTERM)
        self.assertTrue(wait_for(lambda: "stopping" in run.output(), 30), run.output())
        # The launcher is now stopping the shop, one process at a time: more signals land inside
        # that stop, as a second TERM from make or an impatient supervisor's would.
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
            run.signal_group(number)
        self.assert_all_stopped(run, "SIGTERM, then SIGTERM, SIGINT, SIGTERM during the stop")

    def test_a_service_that_dies_stops_the_rest(self):
        run = self.start()
        os.kill(run.pids["cm-api"], signal.SIGKILL)
        status = self.wait_exit(run)
        self.assertNotEqual(status, 0, run.output())
        self.assertIn("cm-api stopped", run.output())
        self.assert_all_stopped(run, "cm-api was killed")


if __name__ == "__main__":
    unittest.main()
