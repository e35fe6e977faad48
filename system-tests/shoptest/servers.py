"""SecantusDB (the MongoDB wire-protocol server the tests use), started one way for everyone: the
launcher's `secantusdb` process, and `python -m shoptest.servers COMMAND...`, which runs COMMAND
with a server on a free loopback port and throwaway storage (make test's `swift test`), exporting
its address as MONGODB_TEST_URI and the server program as SECANTUSD (the Swift tests that stop and
restart their own server start it with that). Kafka needs no server: the Swift tests host
librdkafka's mock cluster in-process, and the launcher runs kafka-mock.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile

from shoptest import ROOT
from shoptest.net import free_port, listening
from shoptest.waiting import wait_for


def secantus_program():
    """The SecantusDB server program of the project's virtual environment (VENV, default .venv)."""
    return os.path.join(os.environ.get("VENV", os.path.join(ROOT, ".venv")), "bin", "secantusd-py")


def secantus_command(port, storage, test_commands=False):
    """The command line of a SecantusDB server on 127.0.0.1:`port` keeping its data in `storage`;
    `test_commands` lets it take `configureFailPoint` (a suite can make MongoDB refuse writes)."""
    return ([secantus_program(), "--host", "127.0.0.1", "--port", str(port), "--storage-path", storage,
             "--log-level", "WARNING"] + (["--enable-test-commands"] if test_commands else []))


class _Stopped(Exception):
    pass


def _stop(number, frame):
    raise _Stopped(signal.Signals(number).name)


def main(command):
    """Runs `command` with a SecantusDB server, and stops the server however the command ends."""
    if not command:
        print("usage: python -m shoptest.servers COMMAND [ARGUMENT...]", file=sys.stderr)
        return 2
    folder = tempfile.mkdtemp(prefix="scalable-shop-test.")
    port = free_port()
    log_path = os.path.join(folder, "secantusdb.log")
    with open(log_path, "w") as log:
        server = subprocess.Popen(secantus_command(port, os.path.join(folder, "db"), test_commands=True),
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    signal.signal(signal.SIGTERM, _stop)
    child = None
    try:
        if not wait_for(lambda: listening(port) or server.poll() is not None, 60) or not listening(port):
            with open(log_path) as log:
                print(f"SecantusDB did not start on port {port}:\n{log.read()}", file=sys.stderr)
            return 1
        uri = f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=5000"
        print(f"test servers: SecantusDB at {uri}", flush=True)
        env = dict(os.environ, SECANTUSD=secantus_program(), MONGODB_TEST_URI=uri)
        child = subprocess.Popen(command, env=env)
        return child.wait()
    except (_Stopped, KeyboardInterrupt):
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
        return 130
    finally:
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
