#!/usr/bin/env bash
# make bench: the shop under load on this machine, as ratios measured in one run.
#
# Starts the whole shop (release binaries, kafka-mock, SecantusDB) on free ports with
# scripts/run-local.sh, loads it with wrk, prints one table and writes docs/BENCHMARKS.md with
# the machine, the commit and the commands. BENCH_SECONDS (default 10) per measurement and
# BENCH_CONNECTIONS (default 64) tune it; BENCH_SECONDS=2 is a smoke run.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${BENCH_SECONDS:-10}
connections=${BENCH_CONNECTIONS:-64}
threads=${BENCH_THREADS:-2}
out=${BENCH_OUTPUT:-$root/docs/BENCHMARKS.md}
data=$(mktemp -d "${TMPDIR:-/tmp}/shop-bench.XXXXXX")
shop_pid=""

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
server_port=$(free_port)
api_port=$(free_port)
mongo_port=$(free_port)

cleanup() {
    [ -n "${paused:-}" ] && kill -CONT $paused 2>/dev/null
    if [ -n "$shop_pid" ]; then
        kill -TERM "$shop_pid" 2>/dev/null || true
        wait "$shop_pid" 2>/dev/null || true
    fi
    rm -rf "$data"
}
trap cleanup EXIT

env -u KAFKA_BROKERS -u MONGODB_URI BIN_DIR="$root/.build/release" DATA_DIR="$data" PORT="$server_port" \
    CM_API_HOST="127.0.0.1:$api_port" MONGO_PORT="$mongo_port" LOG_LEVEL=warning \
    "$root/scripts/run-local.sh" >"$data/run-local.log" 2>&1 &
shop_pid=$!
for _ in $(seq 600); do
    grep -q "The shop is up" "$data/run-local.log" && break
    kill -0 "$shop_pid" 2>/dev/null || { cat "$data/run-local.log" >&2; exit 1; }
    sleep 0.2
done
grep -q "The shop is up" "$data/run-local.log" || { cat "$data/run-local.log" >&2; exit 1; }

server="http://127.0.0.1:$server_port"
api="http://127.0.0.1:$api_port"
body='{"username":"bench","userid":"b-1","price":"1195.30","timestamp":"2024-05-31T15:54:32.204Z"}'
cat >"$data/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA

# One wrk run: "requests/s p50 p99 errors", latencies in ms.
# BENCH_LIST_CONNECTIONS (default 4) for the list: SecantusDB, a MongoDB in Python, answers a
# sorted page in tens of milliseconds, and 64 waiting connections would only measure its queue.
measure() {
    local output
    output=$(wrk -t"$threads" -c"${use_connections:-$connections}" -d"${seconds}s" --timeout 10s --latency "$@")
    echo "$output" >>"$data/wrk.log"
    echo "$output" | awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /Requests\/sec:/ { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /Non-2xx or 3xx responses:/ { errors = $5 }
        /Socket errors:/ { gsub(",", ""); errors += $4 + $6 + $8 + $10 }
        END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, errors + 0 }'
}

row() { printf "| %-50s | %10s | %9s | %9s | %7s |\n" "$@"; }

# First, while the collection holds only them: a reader with 1,000 stored purchases, and its first
# page through cm-server and straight from cm-api.
seq 1000 | xargs -P 16 -I{} curl -s -o /dev/null -X POST "$server/buy" -H 'Content-Type: application/json' \
    -d '{"username":"reader","userid":"r-1","price":"{}.00"}'
for _ in $(seq 300); do
    [ "$(curl -s "$api/buyList/reader?limit=1000" | grep -o '"purchaseId"' | wc -l)" -ge 1000 ] && break
    sleep 0.2
done
list_connections=${BENCH_LIST_CONNECTIONS:-4}
read -r list_rps list_p50 list_p99 list_err < <(use_connections=$list_connections measure "$server/getAllUserBuys/reader?limit=100")
read -r api_rps api_p50 api_p99 api_err < <(use_connections=$list_connections measure "$api/buyList/reader?limit=100")

# cm-api and SecantusDB would ingest what /buy produces on the same 2 cores during its run but not
# during the dry run's, so they are paused (SIGSTOP) while cm-server is measured: the ratio is
# cm-server with Kafka against cm-server without it. Kafka keeps the events; cm-api stores them
# after SIGCONT.
paused=$(pgrep -f "$root/.build/release/cm-api|secantusd-py --host 127.0.0.1 --port $mongo_port" | tr '\n' ' ')
kill -STOP $paused
read -r buy_rps buy_p50 buy_p99 buy_err < <(measure -s "$data/post.lua" "$server/buy")
read -r dry_rps dry_p50 dry_p99 dry_err < <(measure -s "$data/post.lua" "$server/buy?dryRun=true")
read -r hz_rps hz_p50 hz_p99 hz_err < <(measure "$server/healthz")
kill -CONT $paused

peak_rss() {
    local pid
    pid=$(pgrep -f "$root/.build/release/$1" | head -n 1)
    awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status"
}
server_rss=$(peak_rss cm-server)
api_rss=$(peak_rss cm-api)

ratio=$(awk -v a="$buy_rps" -v b="$dry_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
overhead=$(awk -v a="$list_p50" -v b="$api_p50" 'BEGIN { printf "%.2f", a - b }')
table=$(
    row "measurement" "requests/s" "p50 ms" "p99 ms" "errors"
    row "--------------------------------------------------" "----------" "---------" "---------" "-------"
    row "POST /buy (acks=all, idempotent)" "$buy_rps" "$buy_p50" "$buy_p99" "$buy_err"
    row "POST /buy?dryRun=true (same body, no Kafka)" "$dry_rps" "$dry_p50" "$dry_p99" "$dry_err"
    row "GET /healthz" "$hz_rps" "$hz_p50" "$hz_p99" "$hz_err"
    row "GET /getAllUserBuys/reader?limit=100 (proxy, c$list_connections)" "$list_rps" "$list_p50" "$list_p99" "$list_err"
    row "GET /buyList/reader?limit=100 (cm-api, c$list_connections)" "$api_rps" "$api_p50" "$api_p99" "$api_err"
)
summary=$(
    echo "- POST /buy throughput / dry-run throughput: **$ratio** (target >= 0.6)"
    echo "- proxy overhead at p50 (getAllUserBuys - buyList): **$overhead ms** (target < 1 ms)"
    echo "- peak resident memory: cm-server **$server_rss MB**, cm-api **$api_rss MB** (target < 150 MB each)"
)
echo "$table"
echo
echo "$summary"

mkdir -p "$(dirname "$out")"
{
    echo "# Benchmarks"
    echo
    echo "Measured by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%d), commit $(git -C "$root" rev-parse --short HEAD)."
    echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo),"
    echo "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) memory; wrk, the services, kafka-mock and SecantusDB share it,"
    echo "so the ratios (measured in the same run) matter more than the absolute figures."
    echo
    echo "Each line: \`wrk -t$threads -c$connections -d${seconds}s --latency\` (POST bodies via a Lua script) against"
    echo "release builds started by scripts/run-local.sh. The reader has 1,000 purchases; a page is 100;"
    echo "the list runs at $list_connections connections (SecantusDB, a MongoDB in Python, is the bottleneck there)."
    echo "Errors: non-2xx answers plus wrk's socket errors and timeouts (10 s). cm-api and SecantusDB are"
    echo "paused (SIGSTOP) during the three cm-server lines so that ingest does not take the cores from one"
    echo "of them and not the others."
    echo
    echo "$table"
    echo
    echo "$summary"
} >"$out"
echo
echo "written to $out"
