#!/usr/bin/env bash
# make bench: the shop under load on this machine, as ratios measured in one run.
#
# Starts the whole shop (release binaries, kafka-mock, SecantusDB) on free ports with the
# launcher, shoptest/launcher.py, loads it with wrk and the programs in bench/, prints the tables and writes
# docs/BENCHMARKS.md with the machine, the commit and the commands:
#   1. POST /buy against its dry run and /healthz (wrk, 64 connections)
#   2. ingest of pre-loaded events: cm-api against bench/ingest-baseline.c, batch 500 and batch 1
#   3. the list through cm-server against cm-api, and against a fixed-answer cm-api (proxy cost)
#   4. memory: peak of each service, and cm-server's after 1,000,000 purchases
#   5. freshness: POST /buy's 200 to GET /purchases/{id} at a steady 1,000 purchases/s, and at
#      BENCH_FRESHNESS_HIGH (2,000) in the full run; each split into cm-api's own share and the
#      MongoDB stand-in's (bench/freshness.py)
#   6. heap allocations and instructions per request of cm-server (bench/per_request.py)
#   7. side by side with the Go twin (bench/go-twin: net/http, confluent-kafka-go over the same
#      librdkafka, mongo-go-driver): POST /buy acked and dry run against cm-server, the list page
#      against cm-api, in alternating rounds of the same run; bench/twins.py first checks that
#      the twins answer the same to the same requests; the HTTP floors: GET /healthz and the
#      dry run from Hummingbird alone and from SwiftNIO alone (bench/HTTPFloor) against the twin's
#
# BENCH_SMOKE=1 is the smoke run `make test` does on debug builds (a few seconds per part, small
# counts, figures not compared with targets): it fails if any part cannot be measured.
# BIN_DIR picks the binaries (default .build/release); BENCH_SECONDS, BENCH_CONNECTIONS,
# BENCH_THREADS, BENCH_LIST_CONNECTIONS, BENCH_INGEST_EVENTS, BENCH_INGEST_EVENTS_BATCH1,
# BENCH_MEMORY_PURCHASES, BENCH_FRESHNESS_RATE, BENCH_FRESHNESS_HIGH, BENCH_FRESHNESS_SECONDS, BENCH_FETCH_WAIT_MS and
# BENCH_ROUNDS (alternating rounds against the Go twin: 3, 1 in the smoke run) override the sizes;
# BENCH_OUTPUT the file written.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
smoke=${BENCH_SMOKE:-0}
bin=${BIN_DIR:-$root/.build/release}
python=${PYTHON:-$root/.venv/bin/python}
# The test harness (system-tests/shoptest): the launcher and its helpers.
export PYTHONPATH="$root/system-tests"
if [ "$smoke" = 1 ]; then
    defaults=(2 2000 200 20000 100 3 1)
else
    defaults=(10 200000 3000 1000000 1000 20 3)
fi
seconds=${BENCH_SECONDS:-${defaults[0]}}
ingest_events=${BENCH_INGEST_EVENTS:-${defaults[1]}}
ingest_events_single=${BENCH_INGEST_EVENTS_BATCH1:-${defaults[2]}}
memory_purchases=${BENCH_MEMORY_PURCHASES:-${defaults[3]}}
freshness_rate=${BENCH_FRESHNESS_RATE:-${defaults[4]}}
freshness_seconds=${BENCH_FRESHNESS_SECONDS:-${defaults[5]}}
rounds=${BENCH_ROUNDS:-${defaults[6]}}
connections=${BENCH_CONNECTIONS:-64}
threads=${BENCH_THREADS:-2}
if [ "$smoke" = 1 ]; then out=${BENCH_OUTPUT:-$root/.build/bench-smoke.md}; else out=${BENCH_OUTPUT:-$root/docs/BENCHMARKS.md}; fi
data=$(mktemp -d "${TMPDIR:-/tmp}/shop-bench.XXXXXX")
shop_pid=""
extra_pids=()

free_port() { "$python" -c 'from shoptest.net import free_port; print(free_port())'; }
server_port=$(free_port)
api_port=$(free_port)
mongo_port=$(free_port)

cleanup() {
    [ -n "${paused:-}" ] && kill -CONT $paused 2>/dev/null
    [ -f "$data/ingest-cm-api.pids" ] && extra_pids+=($(cat "$data/ingest-cm-api.pids"))
    for pid in "${extra_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${extra_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "$shop_pid" ]; then
        kill -TERM "$shop_pid" 2>/dev/null || true
        wait "$shop_pid" 2>/dev/null || true
    fi
    rm -rf "$data"
}
trap cleanup EXIT

fail() { echo "bench: $*" >&2; exit 1; }

# The shop's cm-api fetches with a 10 ms wait: librdkafka's mock broker holds every fetch that
# finds no data for the whole fetch.wait.max.ms (500 ms by default) instead of answering when data
# arrives as a real broker does, which would otherwise dominate the freshness figure.
fetch_wait=${BENCH_FETCH_WAIT_MS:-10}
env -u KAFKA_BROKERS -u MONGODB_URI BIN_DIR="$bin" DATA_DIR="$data" PORT="$server_port" \
    CM_API_HOST="127.0.0.1:$api_port" MONGO_PORT="$mongo_port" LOG_LEVEL=warning KAFKA_FETCH_WAIT_MAX_MS="$fetch_wait" \
    "$python" -m shoptest.launcher >"$data/shop.log" 2>&1 &
shop_pid=$!
for _ in $(seq 600); do
    grep -q "The shop is up" "$data/shop.log" && break
    kill -0 "$shop_pid" 2>/dev/null || { cat "$data/shop.log" >&2; exit 1; }
    sleep 0.2
done
grep -q "The shop is up" "$data/shop.log" || { cat "$data/shop.log" >&2; exit 1; }
# The processes the launcher started for this run, by name: no other user's process is touched.
pid_of() { awk -v name="$1" '$1 == name { print $2 }' "$data/shop.pids"; }

server="http://127.0.0.1:$server_port"
api="http://127.0.0.1:$api_port"
body='{"username":"bench","userid":"b-1","price":"1195.30","timestamp":"2024-05-31T15:54:32.204Z"}'
cat >"$data/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA

# One wrk run: "requests/s p50 p99 errors cpu_us ctx", latencies in ms. With use_pid set, cpu_us is
# that process's CPU time (user + system, /proc/PID/stat, in clock ticks of 1/CLK_TCK s) over the
# measured window divided by the requests wrk completed, and ctx its context switches per request
# (voluntary + involuntary, summed over its threads); "-" without a pid.
# BENCH_LIST_CONNECTIONS (default 4) for the list: SecantusDB, a MongoDB in Python, answers a
# sorted page in tens of milliseconds, and 64 waiting connections would only measure its queue.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
context_switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { print s + 0 }'; }
measure() {
    local output ticks0=0 ticks1=0 switches0=0 switches1=0
    if [ -n "${use_pid:-}" ]; then ticks0=$(cpu_ticks "$use_pid"); switches0=$(context_switches "$use_pid"); fi
    output=$(wrk -t"${use_threads:-$threads}" -c"${use_connections:-$connections}" -d"${seconds}s" --timeout 10s --latency "$@")
    if [ -n "${use_pid:-}" ]; then ticks1=$(cpu_ticks "$use_pid"); switches1=$(context_switches "$use_pid"); fi
    echo "$output" >>"$data/wrk.log"
    echo "$output" | awk -v pid="${use_pid:-}" -v ticks=$((ticks1 - ticks0)) -v hz="$(getconf CLK_TCK)" \
        -v switches=$((switches1 - switches0)) '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /requests in/ { requests = $1 }
        /Requests\/sec:/ { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /Non-2xx or 3xx responses:/ { errors = $5 }
        /Socket errors:/ { gsub(",", ""); errors += $4 + $6 + $8 + $10 }
        END {
            cpu = "-"; ctx = "-"
            if (pid != "" && requests > 0) { cpu = sprintf("%.1f", ticks / hz * 1e6 / requests); ctx = sprintf("%.2f", switches / requests) }
            printf "%.0f %.2f %.2f %d %s %s\n", rps, p50, p99, errors + 0, cpu, ctx
        }'
}

row() { printf "| %-50s | %10s | %9s | %9s | %7s |\n" "$@"; }
http_row() { printf "| %-50s | %10s | %9s | %9s | %7s | %10s | %10s | %10s |\n" "$@"; }

brokers=$(cat "$data/kafka-bootstrap")
shop_server=$(pid_of cm-server)
mongo_uri="mongodb://127.0.0.1:$mongo_port/"
rss_mb() { awk -v field="$2" '$1 == field":" { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

# Starts a process of ours in the background, logging to $data/NAME.log.
spawn() {
    local name=$1
    shift
    "$@" >"$data/$name.log" 2>&1 &
    spawned=$!
    extra_pids+=("$spawned")
}
wait_for_http() {
    for _ in $(seq 300); do
        curl -fs -o /dev/null "$1" && return 0
        sleep 0.1
    done
    fail "$1 did not answer; logs in $data"
}

# 7 (set-up). The Go twin, built here offline (Debian's Go 1.19 in GOPATH mode, its build cache kept
# in .build/), on the shop's Kafka topic and MongoDB collection.
(cd "$root" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$root/.build/go-cache" \
    go build -o "$data/go-twin" ./bench/go-twin) || fail "the Go twin did not build (make deps installs Go)"
twin_port=$(free_port)
spawn go-twin env PORT="$twin_port" KAFKA_BROKERS="$(cat "$data/kafka-bootstrap")" MONGODB_URI="mongodb://127.0.0.1:$mongo_port/" \
    "$data/go-twin"
twin_pid=$spawned
twin="http://127.0.0.1:$twin_port"
wait_for_http "$twin/healthz"

# 3 (first part). While the collection holds only them: a reader with 1,000 stored purchases, and
# its first page through cm-server and straight from cm-api.
seq 1000 | xargs -P 16 -I{} curl -s -o /dev/null -X POST "$server/buy" -H 'Content-Type: application/json' \
    -d '{"username":"reader","userid":"r-1","price":"{}.00"}'
stored=0
for _ in $(seq 300); do
    stored=$(curl -s "$api/buyList/reader?limit=1000" | grep -o '"purchaseId"' | wc -l)
    [ "$stored" -ge 1000 ] && break
    sleep 0.2
done
[ "$stored" -ge 1000 ] || fail "only $stored of the reader's 1,000 purchases were listed within 60 s; logs in $data"
list_connections=${BENCH_LIST_CONNECTIONS:-4}
shop_api=$(pid_of cm-api)
"$python" "$root/bench/twins.py" "$server" "$api" "$twin" | tee -a "$data/twins.log" || fail "the Go twin answers otherwise than the shop"
twins_line=$(tail -1 "$data/twins.log")
read -r list_rps list_p50 list_p99 list_err list_cpu list_ctx < <(use_pid=$shop_server use_connections=$list_connections measure "$server/getAllUserBuys/reader?limit=100")
# The page from cm-api and from the twin, in alternating rounds: both wait on the same SecantusDB,
# so CPU per page is the figure that says how many pages a core serves on a real MongoDB.
# measure_into NAME PID [measure arguments...]: one measure line, appended to $data/round-NAME.
measure_into() { local name=$1 pid=$2; shift 2; use_pid=$pid measure "$@" >>"$data/round-$name"; }
# The rounds' mean of each column: "requests/s p50 p99 errors(sum) cpu ctx".
summarize() {
    awk '{ n++; rps += $1; p50 += $2; p99 += $3; err += $4; cpu += $5; ctx += $6 }
        END { printf "%.0f %.2f %.2f %d %.1f %.2f\n", rps / n, p50 / n, p99 / n, err, cpu / n, ctx / n }' "$data/round-$1"
}
for _ in $(seq "$rounds"); do
    use_connections=$list_connections measure_into api "$shop_api" "$api/buyList/reader?limit=100"
    use_connections=$list_connections measure_into twin-list "$twin_pid" "$twin/buyList/reader?limit=100"
done
read -r api_rps api_p50 api_p99 api_err api_cpu api_ctx < <(summarize api)
read -r twin_list_rps twin_list_p50 twin_list_p99 twin_list_err twin_list_cpu twin_list_ctx < <(summarize twin-list)
# The same page against bench/fixed_mongo.py, whose answers cost it next to nothing: SecantusDB
# holds both services to about 20 pages/s, where each one's fixed costs per second (timers, the
# drivers' monitors, Go's collector) weigh on every page; here the page's own cost shows. A
# cm-api and a twin of their own, on a kafka-mock of their own (no group is shared with the shop).
fixed_port=$(free_port)
spawn fixed-mongo "$python" "$root/bench/fixed_mongo.py" "$fixed_port"
spawn fixed-kafka-mock env KAFKA_TOPIC=fixed-reads KAFKA_MOCK_PARTITIONS=1 KAFKA_MOCK_BOOTSTRAP_FILE="$data/fixed-bootstrap" \
    "$bin/kafka-mock"
for _ in $(seq 100); do [ -s "$data/fixed-bootstrap" ] && break; sleep 0.1; done
[ -s "$data/fixed-bootstrap" ] || fail "the fixed reads' kafka-mock did not start"
fixed_api_port=$(free_port)
fixed_twin_port=$(free_port)
spawn fixed-cm-api env KAFKA_BROKERS="$(cat "$data/fixed-bootstrap")" KAFKA_TOPIC=fixed-reads PORT="$fixed_api_port" \
    MONGODB_URI="mongodb://127.0.0.1:$fixed_port/" LOG_LEVEL=warning "$bin/cm-api"
fixed_api_pid=$spawned
spawn fixed-go-twin env KAFKA_BROKERS="$(cat "$data/fixed-bootstrap")" KAFKA_TOPIC=fixed-reads PORT="$fixed_twin_port" \
    MONGODB_URI="mongodb://127.0.0.1:$fixed_port/" "$data/go-twin"
fixed_twin_pid=$spawned
wait_for_http "http://127.0.0.1:$fixed_api_port/readyz"
wait_for_http "http://127.0.0.1:$fixed_twin_port/healthz"
for _ in $(seq "$rounds"); do
    use_connections=$list_connections measure_into fixed-api "$fixed_api_pid" "http://127.0.0.1:$fixed_api_port/buyList/reader?limit=100"
    use_connections=$list_connections measure_into fixed-twin "$fixed_twin_pid" "http://127.0.0.1:$fixed_twin_port/buyList/reader?limit=100"
done
read -r fixed_api_rps _ _ fixed_api_err fixed_api_cpu _ < <(summarize fixed-api)
read -r fixed_twin_rps _ _ fixed_twin_err fixed_twin_cpu _ < <(summarize fixed-twin)
kill -TERM "$fixed_api_pid" "$fixed_twin_pid"
curl -fs "$api/buyList/reader?limit=100" >"$data/page.json" || fail "no page from cm-api"

# 5. Freshness, with the whole shop running as it would: a steady rate of purchases, every 20th
# followed until GET /purchases/{id} finds it.
read -r fresh_line < <("$python" "$root/bench/freshness.py" "$server" "$api" "$freshness_rate" "$freshness_seconds" 20 5)
echo "$fresh_line" >>"$data/freshness.log"
field() { echo "${2:-$fresh_line}" | tr ' ' '\n' | awk -F= -v key="$1" '$1 == key { print $2 }'; }
fresh_rate=$(field rate) fresh_ok=$(field ok) fresh_err=$(field errors) fresh_samples=$(field samples)
fresh_p50=$(field p50_ms) fresh_p99=$(field p99_ms) fresh_max=$(field max_ms) fresh_missing=$(field missing)
# FRESHNESS-LINE: "cm-api's own share p50/p99, the stand-in's inserts p50/p99, age at write p50/p99".
split_of() {
    echo "cm-api's own share p50 **$(field cmapi_p50_ms "$1") ms**, p99 **$(field cmapi_p99_ms "$1") ms**; the stand-in's inserts p50 $(field insert_p50_ms "$1") ms, p99 $(field insert_p99_ms "$1") ms per batch; age at write p50 $(field age_p50_ms "$1") ms, p99 $(field age_p99_ms "$1") ms"
}
fresh_split=$(split_of "$fresh_line")
high_line=""
if [ "$smoke" != 1 ]; then
    high_line=$("$python" "$root/bench/freshness.py" "$server" "$api" "${BENCH_FRESHNESS_HIGH:-2000}" "$freshness_seconds" 20 5)
    echo "$high_line" >>"$data/freshness.log"
fi

# 1. cm-api and SecantusDB would ingest what /buy produces on the same 2 cores during its run but
# not during the dry run's, so they are paused (SIGSTOP) while cm-server is measured: the ratio is
# cm-server with Kafka against cm-server without it. The shop's cm-api stays paused to the end, so
# the backlog this leaves does not compete with the ingest measurements.
shop_mongo=$(pid_of secantusdb)
paused="$shop_api $shop_mongo"
kill -STOP $paused
# 7. cm-server and the Go twin take turns, each round the same requests for the same time.
for _ in $(seq "$rounds"); do
    measure_into buy "$shop_server" -s "$data/post.lua" "$server/buy"
    measure_into twin-buy "$twin_pid" -s "$data/post.lua" "$twin/buy"
    measure_into dry "$shop_server" -s "$data/post.lua" "$server/buy?dryRun=true"
    measure_into twin-dry "$twin_pid" -s "$data/post.lua" "$twin/buy?dryRun=true"
done
read -r buy_rps buy_p50 buy_p99 buy_err buy_cpu buy_ctx < <(summarize buy)
read -r dry_rps dry_p50 dry_p99 dry_err dry_cpu dry_ctx < <(summarize dry)
read -r twin_buy_rps twin_buy_p50 twin_buy_p99 twin_buy_err twin_buy_cpu twin_buy_ctx < <(summarize twin-buy)
read -r twin_dry_rps twin_dry_p50 twin_dry_p99 twin_dry_err twin_dry_cpu twin_dry_ctx < <(summarize twin-dry)
read -r hz_rps hz_p50 hz_p99 hz_err hz_cpu hz_ctx < <(use_pid=$shop_server measure "$server/healthz")
# The limit for HTTP here: bench/HTTPFloor, Hummingbird alone with one constant route and no
# middleware; under it SwiftNIO alone (HTTP_FLOOR=nio: NIO's HTTP/1 pipeline and one channel
# handler answering on the event loop); beside them the Go twin's /healthz (net/http). Alternating
# rounds, as the twins take turns above.
floor_port=$(free_port)
spawn http-floor env PORT="$floor_port" "$bin/http-floor"
floor_pid=$spawned
nio_port=$(free_port)
spawn nio-floor env PORT="$nio_port" HTTP_FLOOR=nio "$bin/http-floor"
nio_pid=$spawned
wait_for_http "http://127.0.0.1:$floor_port/healthz"
wait_for_http "http://127.0.0.1:$nio_port/healthz"
# The floors also answer the dry run (the shop's validation, no middleware), against the twin's
# dry run measured above.
for _ in $(seq "$rounds"); do
    measure_into floor "$floor_pid" "http://127.0.0.1:$floor_port/healthz"
    measure_into nio-floor "$nio_pid" "http://127.0.0.1:$nio_port/healthz"
    measure_into twin-healthz "$twin_pid" "$twin/healthz"
    measure_into floor-dry "$floor_pid" -s "$data/post.lua" "http://127.0.0.1:$floor_port/buy?dryRun=true"
    measure_into nio-floor-dry "$nio_pid" -s "$data/post.lua" "http://127.0.0.1:$nio_port/buy?dryRun=true"
done
read -r floor_rps floor_p50 floor_p99 floor_err floor_cpu floor_ctx < <(summarize floor)
read -r nio_rps nio_p50 nio_p99 nio_err nio_cpu nio_ctx < <(summarize nio-floor)
read -r twin_hz_rps twin_hz_p50 twin_hz_p99 twin_hz_err twin_hz_cpu twin_hz_ctx < <(summarize twin-healthz)
read -r floor_dry_rps floor_dry_p50 floor_dry_p99 floor_dry_err floor_dry_cpu floor_dry_ctx < <(summarize floor-dry)
read -r nio_dry_rps nio_dry_p50 nio_dry_p99 nio_dry_err nio_dry_cpu nio_dry_ctx < <(summarize nio-floor-dry)

# 3 (second part) and 4. A second cm-server whose cm-api is bench/fake_cm_api.py answering the page
# saved above: straight from the fake against through cm-server is the proxy's own cost. One
# connection, so latency is not queueing. Then 1,000,000 purchases into a topic nobody reads, and
# cm-server's resident memory after the first tenth and at the end.
fake_port=$(free_port)
bench_port=$(free_port)
spawn fake-cm-api "$python" "$root/bench/fake_cm_api.py" "$fake_port" "$data/page.json"
spawn bench-cm-server env KAFKA_BROKERS="$brokers" KAFKA_TOPIC=bench-memory PORT="$bench_port" \
    CM_API_HOST="127.0.0.1:$fake_port" LOG_LEVEL=warning RATE_LIMIT_BUY_PER_SECOND=0 RATE_LIMIT_LIST_PER_SECOND=0 \
    "$bin/cm-server"
bench_server_pid=$spawned
wait_for_http "http://127.0.0.1:$fake_port/buyList/reader"
wait_for_http "http://127.0.0.1:$bench_port/readyz"
bench_server="http://127.0.0.1:$bench_port"
read -r fake_rps fake_p50 fake_p99 fake_err fake_cpu fake_ctx < <(use_connections=1 use_threads=1 measure "http://127.0.0.1:$fake_port/buyList/reader?limit=100")
read -r proxy_rps proxy_p50 proxy_p99 proxy_err proxy_cpu proxy_ctx < <(use_pid=$bench_server_pid use_connections=1 use_threads=1 measure "$bench_server/getAllUserBuys/reader?limit=100")

warmup=$((memory_purchases / 10))
chunk=$((seconds < 5 ? 1 : 5))
send_purchases() { # COUNT CHUNK-SECONDS: wrk until that many requests were answered; prints how many were
    local target=$1 done=0 output
    while [ "$done" -lt "$target" ]; do
        output=$(wrk -t"$threads" -c"$connections" -d"${2}s" --timeout 10s -s "$data/post.lua" "$bench_server/buy")
        echo "$output" >>"$data/wrk-memory.log"
        grep -q "Non-2xx" <<<"$output" && fail "POST /buy failed during the memory run: $output"
        done=$((done + $(awk '/requests in/ { print $1 }' <<<"$output")))
    done
    echo "$done"
}
memory_sent=$(send_purchases "$warmup" "$chunk")
rss_warm=$(rss_mb "$bench_server_pid" VmRSS)
more_sent=$(send_purchases $((memory_purchases - memory_sent)) $((chunk * 2)))
memory_sent=$((memory_sent + more_sent))
rss_end=$(rss_mb "$bench_server_pid" VmRSS)
rss_peak=$(rss_mb "$bench_server_pid" VmHWM)

# 2. Ingest. SecantusDB runs again, the shop's cm-api stays paused. The events are pre-loaded into
# a second kafka-mock whose topic has 24 partitions: librdkafka's mock keeps only the newest few MB
# of each partition, and 200,000 events on the shop's 6 would lose the oldest before anyone reads
# them. bench/ingest-baseline.c (librdkafka + libmongoc, nothing else) stores them first, then
# cm-api, each in its own consumer group and database, each timed from its start to the last event
# stored. Batch 1 on the first few thousand only: it is that much slower.
kill -CONT "$shop_mongo"
paused="$shop_api"
spawn ingest-kafka-mock env KAFKA_TOPIC=ingest-bench KAFKA_MOCK_PARTITIONS=24 \
    KAFKA_MOCK_BOOTSTRAP_FILE="$data/ingest-bootstrap" "$bin/kafka-mock"
for _ in $(seq 100); do [ -s "$data/ingest-bootstrap" ] && break; sleep 0.1; done
[ -s "$data/ingest-bootstrap" ] || fail "the ingest kafka-mock did not start"
ingest_brokers=$(cat "$data/ingest-bootstrap")
gcc -O2 -o "$data/ingest-baseline" "$root/bench/ingest-baseline.c" $(pkg-config --cflags --libs rdkafka libmongoc-1.0)
"$data/ingest-baseline" produce "$ingest_brokers" ingest-bench "$ingest_events" >>"$data/ingest.log"

baseline_rate() { # NAME BATCH COUNT
    local line
    line=$("$data/ingest-baseline" consume "$ingest_brokers" ingest-bench "baseline-$1" "$mongo_uri" "baseline-$1" \
        purchases "$2" "$3")
    echo "$line" >>"$data/ingest.log"
    awk '{ printf "%.2f %.0f\n", $4, $2 / $4 }' <<<"$line"
}
cm_api_rate() { # NAME BATCH COUNT; prints "seconds events/s peak-MB CPU-µs-per-event"
    local port start count=0 elapsed ticks0="" count0=0
    port=$(free_port)
    start=$(date +%s.%N)
    env KAFKA_BROKERS="$ingest_brokers" KAFKA_TOPIC=ingest-bench KAFKA_GROUPID="cm-api-$1" \
        MONGODB_URI="$mongo_uri" MONGODB_DB="cm-api-$1" PORT="$port" INGEST_BATCH_SIZE="$2" LOG_LEVEL=warning \
        "$bin/cm-api" >>"$data/ingest-cm-api.log" 2>&1 &
    local pid=$!
    echo "$pid" >>"$data/ingest-cm-api.pids"  # this runs in a subshell: cleanup finds it here
    for _ in $(seq 36000); do
        count=$({ curl -s "http://127.0.0.1:$port/metrics" || true; } | awk '/^cmapi_purchases_inserted_total/ { printf "%d", $2 }')
        [ "${count:-0}" -ge "$3" ] && break
        # CPU is counted from the first stored events on: start-up and joining the group are not
        # per-event work.
        if [ -z "$ticks0" ] && [ "${count:-0}" -gt 0 ]; then ticks0=$(cpu_ticks "$pid"); count0=$count; fi
        kill -0 "$pid" 2>/dev/null || fail "cm-api stopped during the ingest run; see $data/ingest-cm-api.log"
        sleep 0.05
    done
    elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')
    local peak ticks
    peak=$(rss_mb "$pid" VmHWM)
    ticks=$(( $(cpu_ticks "$pid") - ${ticks0:-0} ))
    kill -TERM "$pid"
    wait "$pid" || fail "cm-api did not stop cleanly after the ingest run"
    [ "${count:-0}" -ge "$3" ] || fail "cm-api stored $count of $3 events"
    awk -v t="$elapsed" -v n="$3" -v m="$peak" -v ticks="$ticks" -v hz="$(getconf CLK_TCK)" -v counted=$(($3 - count0)) \
        'BEGIN { printf "%.2f %.0f %s %.1f\n", t, n / t, m, (counted > 0 ? ticks / hz * 1e6 / counted : 0) }'
}
read -r base_s base_rate < <(baseline_rate batch500 500 "$ingest_events")
read -r api_s api_rate ingest_api_rss api_event_cpu < <(cm_api_rate batch500 500 "$ingest_events")
read -r base1_s base1_rate < <(baseline_rate batch1 1 "$ingest_events_single")
read -r api1_s api1_rate _ api1_event_cpu < <(cm_api_rate batch1 1 "$ingest_events_single")

# 6. Heap allocations and instructions per request (deterministic, unlike CPU time):
# bench/per_request.py. Instructions run under callgrind, about 50 times slower: fewer requests.
# measured_or_run MEASURE FILE SMOKE_REQUESTS FULL_REQUESTS: the per_request.py line in FILE when
# one is given (BENCH_ALLOCATIONS, BENCH_INSTRUCTIONS: make test's guards measure these debug
# binaries just before its smoke run, so nothing is measured twice), else a measurement.
measured_or_run() {
    if [ -n "$2" ] && [ -s "$2" ]; then
        echo "$(cat "$2") (from $2)"
    else
        "$python" "$root/bench/per_request.py" "$1" "$bin" --requests "$([ "$smoke" = 1 ] && echo "$3" || echo "$4")"
    fi
}
allocations=$(measured_or_run allocations "${BENCH_ALLOCATIONS:-}" 500 2000)
echo "$allocations" >>"$data/per-request.log"
instructions=$(measured_or_run instructions "${BENCH_INSTRUCTIONS:-}" 20 1000)
echo "$instructions" >>"$data/per-request.log"
# KIND LINE: the figure for KIND in a per_request.py line ("dry-run=232731 acked=... (...)").
figure_of() { tr ' ' '\n' <<<"${2%% (*}" | sed -n "s/^$1=//p"; }
buy_instr=$(figure_of acked "$instructions")
dry_instr=$(figure_of dry-run "$instructions")
hz_instr=$(figure_of healthz "$instructions")
proxy_instr=$(figure_of list "$instructions")
# What tracing costs (docs/OBSERVABILITY.md): the same requests with tracing on, nothing sampled
# (parentbased_traceidratio at 0) and everything sampled (always_on, exported to a receiver in
# per_request.py). Allocations always; instructions in the full run only (callgrind would add
# minutes to the smoke run).
# tracing_costs MEASURE OFF_LINE prints "acked OFF -> UNSAMPLED (+x %) -> SAMPLED (+y %); dry-run ...; list ...".
tracing_costs() {
    local requests=$([ "$smoke" = 1 ] && echo 200 || echo 1000) unsampled sampled kind line=""
    unsampled=$("$python" "$root/bench/per_request.py" "$1" "$bin" --requests "$requests" --tracing unsampled --kinds dry-run,acked,list)
    sampled=$("$python" "$root/bench/per_request.py" "$1" "$bin" --requests "$requests" --tracing sampled --kinds dry-run,acked,list)
    printf '%s\n%s\n' "$unsampled" "$sampled" >>"$data/per-request.log"
    for kind in acked dry-run list; do
        line+=$(awk -v k="$kind" -v o="$(figure_of "$kind" "$2")" -v u="$(figure_of "$kind" "$unsampled")" \
            -v s="$(figure_of "$kind" "$sampled")" \
            'BEGIN { printf "%s %s -> %s (%+.1f %%) -> %s (%+.1f %%); ", k, o, u, (u / o - 1) * 100, s, (s / o - 1) * 100 }')
    done
    echo "${line%; }"
}
tracing_allocations=$(tracing_costs allocations "$allocations")
tracing_instructions=$([ "$smoke" = 1 ] && echo "not measured in the smoke run" || tracing_costs instructions "$instructions")
floor_instructions=$("$python" "$root/bench/per_request.py" instructions "$bin" --binary http-floor --requests "$([ "$smoke" = 1 ] && echo 20 || echo 1000)")
echo "$floor_instructions" >>"$data/per-request.log"
floor_instr=$(figure_of healthz "$floor_instructions")
nio_instructions=$("$python" "$root/bench/per_request.py" instructions "$bin" --binary nio-floor --requests "$([ "$smoke" = 1 ] && echo 20 || echo 1000)")
echo "$nio_instructions" >>"$data/per-request.log"
nio_instr=$(figure_of healthz "$nio_instructions")
floor_dry_instr=$(figure_of dry-run "$floor_instructions")
nio_dry_instr=$(figure_of dry-run "$nio_instructions")

server_rss=$(rss_mb "$shop_server" VmHWM)
# What the resident size is made of: the heap and stacks, and the mapped code of the binary and
# its libraries (the Swift runtime, Foundation with ICU, librdkafka, libc...).
server_anon=$(rss_mb "$shop_server" RssAnon)
server_file=$(rss_mb "$shop_server" RssFile)
api_rss=$(rss_mb "$shop_api" VmHWM)
twin_rss=$(rss_mb "$twin_pid" VmHWM)

# Every figure must exist, or this run measured nothing.
for value in "$buy_rps" "$dry_rps" "$hz_rps" "$list_rps" "$api_rps" "$fake_p50" "$proxy_p50" "$rss_warm" \
    "$rss_end" "$base_rate" "$api_rate" "$base1_rate" "$api1_rate" "$fresh_samples" "$buy_cpu" "$dry_cpu" "$hz_cpu" \
    "$list_cpu" "$api_cpu" "$proxy_cpu" "$api_event_cpu" "$api1_event_cpu" "$buy_instr" "$dry_instr" "$hz_instr" \
    "$proxy_instr" "$floor_rps" "$floor_cpu" "$floor_instr" "$twin_buy_rps" "$twin_dry_rps" "$twin_list_rps" \
    "$twin_buy_cpu" "$twin_dry_cpu" "$twin_list_cpu" "$twin_rss" "$fixed_api_rps" "$fixed_twin_rps" "$fixed_api_cpu" \
    "$fixed_twin_cpu" "$nio_rps" "$nio_cpu" "$nio_instr" "$twin_hz_rps" "$twin_hz_cpu" \
    "$floor_dry_rps" "$floor_dry_cpu" "$floor_dry_instr" "$nio_dry_rps" "$nio_dry_cpu" "$nio_dry_instr"; do
    [ -n "$value" ] && [ "$value" != 0 ] || fail "a measurement is missing; logs in $data"
done
[ "$buy_err" = 0 ] && [ "$dry_err" = 0 ] && [ "$fresh_err" = 0 ] && [ "$fresh_missing" = 0 ] &&
    [ "$twin_buy_err" = 0 ] && [ "$twin_dry_err" = 0 ] && [ "$api_err" = 0 ] && [ "$twin_list_err" = 0 ] &&
    [ "$fixed_api_err" = 0 ] && [ "$fixed_twin_err" = 0 ] && [ "$floor_err" = 0 ] && [ "$nio_err" = 0 ] &&
    [ "$twin_hz_err" = 0 ] && [ "$floor_dry_err" = 0 ] && [ "$nio_dry_err" = 0 ] ||
    fail "errors during the run (POST /buy $buy_err, dry run $dry_err, freshness $fresh_err, missing $fresh_missing, Go twin $twin_buy_err/$twin_dry_err, list $api_err/$twin_list_err, floors $floor_err/$nio_err/$twin_hz_err/$floor_dry_err/$nio_dry_err)"

ratio=$(awk -v a="$buy_rps" -v b="$dry_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
overhead=$(awk -v a="$proxy_p50" -v b="$fake_p50" 'BEGIN { printf "%.2f", a - b }')
ingest_ratio=$(awk -v a="$api_rate" -v b="$base_rate" 'BEGIN { printf "%.2f", a / b }')
batching=$(awk -v a="$api_rate" -v b="$api1_rate" 'BEGIN { printf "%.0f", a / b }')
growth=$((rss_end - rss_warm))

table=$(
    http_row "measurement" "requests/s" "p50 ms" "p99 ms" "errors" "CPU µs/req" "ctx sw/req" "instr/req"
    http_row "--------------------------------------------------" "----------" "---------" "---------" "-------" "----------" "----------" "----------"
    http_row "POST /buy (acks=all, idempotent)" "$buy_rps" "$buy_p50" "$buy_p99" "$buy_err" "$buy_cpu" "$buy_ctx" "$buy_instr"
    http_row "POST /buy?dryRun=true (same body, no Kafka)" "$dry_rps" "$dry_p50" "$dry_p99" "$dry_err" "$dry_cpu" "$dry_ctx" "$dry_instr"
    http_row "GET /healthz" "$hz_rps" "$hz_p50" "$hz_p99" "$hz_err" "$hz_cpu" "$hz_ctx" "$hz_instr"
    http_row "GET /healthz, Hummingbird alone (bench/HTTPFloor)" "$floor_rps" "$floor_p50" "$floor_p99" "$floor_err" "$floor_cpu" "$floor_ctx" "$floor_instr"
    http_row "GET /healthz, SwiftNIO alone (HTTP_FLOOR=nio)" "$nio_rps" "$nio_p50" "$nio_p99" "$nio_err" "$nio_cpu" "$nio_ctx" "$nio_instr"
    http_row "dry run, Hummingbird alone (no middleware)" "$floor_dry_rps" "$floor_dry_p50" "$floor_dry_p99" "$floor_dry_err" "$floor_dry_cpu" "$floor_dry_ctx" "$floor_dry_instr"
    http_row "dry run, SwiftNIO alone (no middleware)" "$nio_dry_rps" "$nio_dry_p50" "$nio_dry_p99" "$nio_dry_err" "$nio_dry_cpu" "$nio_dry_ctx" "$nio_dry_instr"
    http_row "GET /getAllUserBuys/reader?limit=100 (proxy, c$list_connections)" "$list_rps" "$list_p50" "$list_p99" "$list_err" "$list_cpu" "$list_ctx" "-"
    http_row "GET /buyList/reader?limit=100 (cm-api, c$list_connections)" "$api_rps" "$api_p50" "$api_p99" "$api_err" "$api_cpu" "$api_ctx" "-"
    http_row "GET /buyList/reader?limit=100 (fixed-answer cm-api, c1)" "$fake_rps" "$fake_p50" "$fake_p99" "$fake_err" "$fake_cpu" "$fake_ctx" "-"
    http_row "GET /getAllUserBuys/... via cm-server to it (c1)" "$proxy_rps" "$proxy_p50" "$proxy_p99" "$proxy_err" "$proxy_cpu" "$proxy_ctx" "$proxy_instr"
)
# SWIFT GO: "SWIFT | GO | SWIFT÷GO" cells of the side-by-side table.
versus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "| %10s | %10s | %6.2f |", a, b, (b > 0 ? a / b : 0) }'; }
side_row() { printf "| %-52s %s\n" "$1" "$(versus "$2" "$3")"; }
twin_table=$(
    printf "| %-52s | %10s | %10s | %6s |\n" "Swift against its Go twin (same run, $rounds rounds)" "Swift" "Go" "÷"
    printf "| %-52s | %10s | %10s | %6s |\n" "----------------------------------------------------" "----------" "----------" "------"
    side_row "acked POST /buy, requests/s (cm-server)" "$buy_rps" "$twin_buy_rps"
    side_row "acked POST /buy, CPU µs per request" "$buy_cpu" "$twin_buy_cpu"
    side_row "acked POST /buy, p50 ms" "$buy_p50" "$twin_buy_p50"
    side_row "acked POST /buy, p99 ms" "$buy_p99" "$twin_buy_p99"
    side_row "dry run, requests/s" "$dry_rps" "$twin_dry_rps"
    side_row "dry run, CPU µs per request" "$dry_cpu" "$twin_dry_cpu"
    side_row "dry run, p50 ms" "$dry_p50" "$twin_dry_p50"
    side_row "dry run, p99 ms" "$dry_p99" "$twin_dry_p99"
    side_row "list page of 100, pages/s (cm-api, c$list_connections)" "$api_rps" "$twin_list_rps"
    side_row "list page of 100, CPU µs per page" "$api_cpu" "$twin_list_cpu"
    side_row "list page of 100, p50 ms" "$api_p50" "$twin_list_p50"
    side_row "list page of 100, p99 ms" "$api_p99" "$twin_list_p99"
    side_row "list page against a fixed MongoDB, pages/s (c$list_connections)" "$fixed_api_rps" "$fixed_twin_rps"
    side_row "list page against a fixed MongoDB, CPU µs per page" "$fixed_api_cpu" "$fixed_twin_cpu"
    side_row "GET /healthz, Hummingbird alone, requests/s" "$floor_rps" "$twin_hz_rps"
    side_row "GET /healthz, Hummingbird alone, CPU µs per request" "$floor_cpu" "$twin_hz_cpu"
    side_row "GET /healthz, SwiftNIO alone, requests/s" "$nio_rps" "$twin_hz_rps"
    side_row "GET /healthz, SwiftNIO alone, CPU µs per request" "$nio_cpu" "$twin_hz_cpu"
    side_row "dry run, Hummingbird alone, CPU µs per request" "$floor_dry_cpu" "$twin_dry_cpu"
    side_row "dry run, SwiftNIO alone, CPU µs per request" "$nio_dry_cpu" "$twin_dry_cpu"
    side_row "peak resident MB (cm-server; the twin does both)" "$server_rss" "$twin_rss"
    side_row "peak resident MB (cm-api serving)" "$api_rss" "$twin_rss"
)
ingest_table=$(
    row "ingest (pre-loaded events -> SecantusDB)" "events" "seconds" "events/s" "CPU µs/event"
    row "--------------------------------------------------" "----------" "---------" "---------" "-------"
    row "bench/ingest-baseline.c, batch 500" "$ingest_events" "$base_s" "$base_rate" ""
    row "cm-api, INGEST_BATCH_SIZE=500" "$ingest_events" "$api_s" "$api_rate" "$api_event_cpu"
    row "bench/ingest-baseline.c, batch 1" "$ingest_events_single" "$base1_s" "$base1_rate" ""
    row "cm-api, INGEST_BATCH_SIZE=1" "$ingest_events_single" "$api1_s" "$api1_rate" "$api1_event_cpu"
)
summary=$(
    echo "- service CPU per request (the headline figure: it moves less than requests/s with what else shares the cores): POST /buy acked **$buy_cpu µs**, dry run **$dry_cpu µs**, /healthz **$hz_cpu µs** (Hummingbird alone: $floor_cpu µs, SwiftNIO alone: $nio_cpu µs, the Go twin's: $twin_hz_cpu µs), list through cm-server $list_cpu µs (cm-server's share), list on cm-api $api_cpu µs (targets from issue 20: acked <= 84, dry run <= 46); cm-api's ingest $api_event_cpu µs per event at batch 500, $api1_event_cpu at batch 1 (from its first stored events on)"
    echo "- cm-server's heap allocations per request (bench/per_request.py, deterministic): ${allocations%% (*}"
    echo "- cm-server's instructions per request (bench/per_request.py, user space under callgrind, deterministic): ${instructions%% (*}; Hummingbird alone (bench/HTTPFloor): ${floor_instructions%% (*}; SwiftNIO alone (HTTP_FLOOR=nio): ${nio_instructions%% (*}"
    echo "- tracing's cost per request of cm-server, off -> on with nothing sampled -> on with every request sampled and exported (bench/per_request.py --tracing, docs/OBSERVABILITY.md; goals: +2 %, +25 %): instructions $tracing_instructions; allocations $tracing_allocations"
    echo "- POST /buy throughput / dry-run throughput: **$ratio** (target >= 0.6)"
    echo "- ingest, cm-api / librdkafka+libmongoc baseline at batch 500: **$ingest_ratio** (target >= 0.8); batching buys cm-api **${batching}x** over batch 1"
    echo "- proxy overhead at p50 (via cm-server - straight, fixed-answer cm-api): **$overhead ms** (target < 1 ms)"
    echo "- peak resident memory: cm-server **$server_rss MB** (at the end: $server_anon MB anonymous, $server_file MB mapped files), cm-api **$api_rss MB** (serving), **$ingest_api_rss MB** (ingesting $ingest_events events) (target < 150 MB each)"
    echo "- cm-server after $memory_sent purchases: **$rss_end MB** resident, $rss_warm MB after the first $warmup (growth **$growth MB**), peak $rss_peak MB"
    echo "- freshness, POST /buy 200 -> GET /purchases/{id} 200 at **$fresh_rate purchases/s** ($fresh_ok sent, every 20th followed, polled every 5 ms, cm-api's KAFKA_FETCH_WAIT_MAX_MS=$fetch_wait): p50 **$fresh_p50 ms**, p99 **$fresh_p99 ms**, max $fresh_max ms, $fresh_samples samples; $fresh_split (bench/freshness.py; goal: cm-api's share p99 < 100 ms at 1,000/s)"
    if [ -n "$high_line" ]; then
        echo "- freshness at **$(field rate "$high_line") purchases/s** (asked ${BENCH_FRESHNESS_HIGH:-2000}/s; $(field errors "$high_line") errors, $(field missing "$high_line") missing): p50 **$(field p50_ms "$high_line") ms**, p99 **$(field p99_ms "$high_line") ms**; $(split_of "$high_line")"
    fi
)
echo "$table"
echo
echo "$twin_table"
echo "$twins_line"
echo
echo "$ingest_table"
echo
echo "$summary"

mkdir -p "$(dirname "$out")"
# Paths in the document are the repository's, never this machine's.
bin_shown=${bin#"$root"/}
# The hand-written section that explains the figures survives regeneration.
notes=""
[ -f "$out" ] && notes=$(sed -n '/^## Reading these figures/,$p' "$out")
{
    echo "# Benchmarks"
    echo
    echo "Measured by \`make bench\` (bench/bench.sh) on $(date -u +%Y-%m-%d), commit $(git -C "$root" rev-parse --short HEAD)$([ "$smoke" = 1 ] && echo ", smoke run (BENCH_SMOKE=1, $bin_shown)")."
    echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo),"
    echo "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) memory; wrk, the services, kafka-mock and SecantusDB share it,"
    echo "so the ratios (measured in the same run) matter more than the absolute figures."
    echo
    echo "HTTP lines: \`wrk -t$threads -c$connections -d${seconds}s --latency\` (POST bodies via a Lua script) against"
    echo "binaries from $bin_shown started by shoptest/launcher.py. The reader has 1,000 purchases; a page is 100;"
    echo "the list runs at $list_connections connections (SecantusDB, a MongoDB in Python, is the bottleneck there), the"
    echo "proxy comparison at 1 (\`wrk -t1 -c1\`) against bench/fake_cm_api.py serving a page cm-api gave."
    echo "CPU µs/req: the serving process's user + system CPU time (/proc/PID/stat) over the measured window"
    echo "divided by the requests completed; ctx sw/req: its context switches (all threads) per request;"
    echo "instr/req: cm-server's user-space instructions per request under valgrind's callgrind"
    echo "(bench/per_request.py: one keep-alive connection, after a warm-up; the list against a fake cm-api's"
    echo "page of 100), within 1.5 % from run to run, where CPU time is not. bench/HTTPFloor is Hummingbird"
    echo "alone (one constant route, no middleware, Hummingbird's own HTTP/1.1 channel with cm-server's idle timeout; cm-server reads each request whole, ShopHTTP.WholeRequestChannel): what Hummingbird as shipped costs here; with HTTP_FLOOR=nio it is SwiftNIO alone (NIO's HTTP/1 pipeline and one channel handler answering on the event loop), the floor under Hummingbird. Both floors also answer the dry run: the body read whole, the shop's validation (PurchaseRequest), the same answer, no middleware."
    echo "Errors: non-2xx answers plus wrk's socket errors and timeouts (10 s). cm-api and SecantusDB are"
    echo "paused (SIGSTOP) during the three cm-server lines so that ingest does not take the cores from one"
    echo "of them and not the others."
    echo
    echo "$table"
    echo
    echo "Side by side with bench/go-twin, a Go service doing cm-server's POST /buy and cm-api's GET /buyList"
    echo "(net/http, encoding/json, confluent-kafka-go over the same librdkafka and producer settings, the"
    echo "official MongoDB driver; Debian's Go $(go version 2>/dev/null | awk '{ print $3 }')). Each round runs the Swift line and then its"
    echo "twin for the same ${seconds} s with the same wrk settings; the figures are the rounds' means, the"
    echo "last column Swift ÷ Go (below 1 is better for Swift in CPU, p50, p99 and memory; above 1 in"
    echo "requests/s). bench/twins.py checked first: $twins_line."
    echo
    echo "$twin_table"
    echo
    echo "Ingest: the events (the contract's JSON, 100 users) are produced first (\`bench/ingest-baseline"
    echo "produce\`) into a topic of 24 partitions on a second kafka-mock; each consumer is timed from its"
    echo "process start to its last event stored (cm-api: \`cmapi_purchases_inserted_total\` polled every"
    echo "50 ms), in its own group and database on the same SecantusDB, the baseline first. Batch 1 stores"
    echo "the first $ingest_events_single of them."
    echo
    echo "$ingest_table"
    echo
    echo "$summary"
    if [ -n "$notes" ]; then
        echo
        echo "$notes"
    fi
} >"$out"
echo
echo "written to $out"
