#!/usr/bin/env bash
# make run: the whole shop on this machine, supervised until Ctrl-C.
#
#   Kafka     kafka-mock (librdkafka's mock cluster, real Kafka protocol) unless KAFKA_BROKERS is set
#   MongoDB   SecantusDB with its data in .data/mongo unless MONGODB_URI is set
#   cm-api    on the port of CM_API_HOST (default localhost:3000)
#   cm-server on PORT (default 3001)
#
# Each starts once the one before it is ready; if any of them stops, all stop. Logs: .data/logs.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN_DIR:-$root/.build/release}
data=${DATA_DIR:-$root/.data}
logs=$data/logs
venv=${VENV:-$root/.venv}
mkdir -p "$logs" "$data/mongo"

cm_api_host=${CM_API_HOST:-localhost:3000}
cm_api_port=${cm_api_host##*:}
server_port=${PORT:-3001}
mongo_port=${MONGO_PORT:-27017}
topic=${KAFKA_TOPIC:-scalable-shop-purchases}

names=()
pids=()

stop_all() {
    trap - EXIT INT TERM
    [ ${#pids[@]} -eq 0 ] && return
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -TERM "${pids[$i]}" 2>/dev/null || true
        for _ in $(seq 250); do kill -0 "${pids[$i]}" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "${pids[$i]}" 2>/dev/null; then
            echo "${names[$i]} did not stop within 25 s; killing it"
            kill -KILL "${pids[$i]}" 2>/dev/null || true
        fi
    done
    echo "stopped"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

fail() {
    echo "make run: $*" >&2
    exit 1
}

# A port someone else listens on is a clear error, not a hang.
require_free_port() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        fail "port $1 is already in use (another 'make run'? see: ss -ltnp 'sport = :$1'); set $2 to use another"
    fi
}

# Each in a session of its own, so that Ctrl-C reaches only this script, which then stops them
# in reverse order (cm-server, cm-api, then MongoDB and Kafka) instead of all at once.
start() {
    local name=$1
    shift
    setsid "$@" >"$logs/$name.log" 2>&1 &
    pids+=($!)
    names+=("$name")
}

# Waits until `check` succeeds; fails with the log's tail if the process dies or time runs out.
wait_until() {
    local name=$1 seconds=$2
    shift 2
    local pid=${pids[${#pids[@]} - 1]}
    for _ in $(seq $((seconds * 5))); do
        "$@" && return 0
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$logs/$name.log" >&2; fail "$name exited; log: $logs/$name.log"; }
        sleep 0.2
    done
    tail -n 20 "$logs/$name.log" >&2
    fail "$name was not ready within $seconds s; log: $logs/$name.log"
}

ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz")" = 200 ]; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

require_free_port "$cm_api_port" CM_API_HOST
require_free_port "$server_port" PORT

if [ -z "${KAFKA_BROKERS:-}" ]; then
    rm -f "$data/kafka-bootstrap"
    start kafka-mock env KAFKA_TOPIC="$topic" KAFKA_MOCK_BOOTSTRAP_FILE="$data/kafka-bootstrap" "$bin/kafka-mock"
    wait_until kafka-mock 30 test -s "$data/kafka-bootstrap"
    KAFKA_BROKERS=$(cat "$data/kafka-bootstrap")
    echo "Kafka      $KAFKA_BROKERS (kafka-mock: kill -USR1 ${pids[0]} takes it down, -USR2 brings it back)"
fi
export KAFKA_BROKERS KAFKA_TOPIC="$topic"

if [ -z "${MONGODB_URI:-}" ]; then
    require_free_port "$mongo_port" MONGO_PORT
    start secantusdb "$venv/bin/secantusd-py" --host 127.0.0.1 --port "$mongo_port" \
        --storage-path "$data/mongo" --log-level WARNING
    wait_until secantusdb 60 listening "$mongo_port"
    MONGODB_URI="mongodb://127.0.0.1:$mongo_port/?serverSelectionTimeoutMS=5000"
    echo "MongoDB    $MONGODB_URI (SecantusDB, data in $data/mongo)"
fi
export MONGODB_URI

start cm-api env PORT="$cm_api_port" "$bin/cm-api"
wait_until cm-api 90 ready "$cm_api_port"
echo "cm-api     http://127.0.0.1:$cm_api_port"

start cm-server env PORT="$server_port" CM_API_HOST="$cm_api_host" "$bin/cm-server"
wait_until cm-server 60 ready "$server_port"
echo "cm-server  http://127.0.0.1:$server_port"

cat <<INFO

The shop is up: http://localhost:$server_port/ (logs: $logs; Ctrl-C stops everything)

  curl -X POST http://localhost:$server_port/buy -H 'Content-Type: application/json' \\
       -d '{"username":"joe","userid":"005","price":"1195.30","timestamp":"2024-05-31T15:54:32.204Z"}'
  curl http://localhost:$server_port/getAllUserBuys/joe
  curl http://localhost:$server_port/healthz
INFO

# Supervise: when any of them stops, report it and stop the rest.
set +e
wait -n "${pids[@]}"
status=$?
for i in "${!pids[@]}"; do
    kill -0 "${pids[$i]}" 2>/dev/null || echo "${names[$i]} stopped (status $status); log: $logs/${names[$i]}.log"
done
exit 1
