#!/usr/bin/env bash
# Runs a command with the servers the tests need, and stops them however the command ends.
#
# Kafka needs no server: tests host librdkafka's mock cluster in-process, each test its own.
# MongoDB: a SecantusDB server on a free loopback port with throwaway storage; its address is
# exported as MONGODB_TEST_URI.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/scalable-shop-test.XXXXXX")
pid=""

stop() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$run_dir"
}
trap stop EXIT INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
"$venv/bin/secantusd-py" --host 127.0.0.1 --port "$port" --storage-path "$run_dir/db" \
    --enable-test-commands --log-level WARNING >"$run_dir/secantusdb.log" 2>&1 &
pid=$!

# Ready when it accepts connections; give up after 60 s with its log.
if ! python3 - "$port" <<'PY'
import socket, sys, time
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
PY
then
    echo "SecantusDB did not start on port $port:" >&2
    cat "$run_dir/secantusdb.log" >&2
    exit 1
fi

export SECANTUSD="$venv/bin/secantusd-py"
export MONGODB_TEST_URI="mongodb://127.0.0.1:$port/?serverSelectionTimeoutMS=5000"
echo "test servers: SecantusDB at $MONGODB_TEST_URI"
"$@"
