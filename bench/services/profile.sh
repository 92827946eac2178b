#!/usr/bin/env bash
# Where a service's time goes under load: perf samples the server CPU
# ($SERVER_CPU, where the services and PostgreSQL are pinned) while wrk (CPU
# $LOAD_CPU) drives the service; writes to $OUT the split of that CPU
# between processes and the service's top entries by own time. Not a test;
# about a minute.
#
# - item (default): the item service in memory, GET /v1/items/{id}, then
#   POST /v1/items;
# - order: POST /v1/orders, the order service calling an item service, both
#   on $BENCH_PROFILE_STORE (memory, or postgres: the loopback cluster of
#   scripts/postgres.sh, pinned with them).
#
#   bench/services/profile.sh                    writes bench/services/profile.txt
#   BENCH_SERVICES_BIN=dir BENCH_PROFILE_OUT=f bench/services/profile.sh
#                                                profiles dir/item-service into f
#   BENCH_PROFILE_SERVICE=order BENCH_PROFILE_STORE=postgres bench/services/profile.sh
#                                                also profiles the orders floor
#                                                and its parts (BENCH_BIN/examples)
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${BENCH_PROFILE_SECONDS:-8}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
SERVICE=${BENCH_PROFILE_SERVICE:-item}
STORE=${BENCH_PROFILE_STORE:-memory}
OUT=${BENCH_PROFILE_OUT:-bench/services/profile.txt}
BIN=${BENCH_BIN:-${CARGO_TARGET_DIR:-target}/release}
SERVICES_BIN=${BENCH_SERVICES_BIN:-$BIN}
# shellcheck source=bench/services/lib.sh
source bench/services/lib.sh

if [[ -z ${BENCH_SERVICES_BIN:-}${BENCH_BIN:-} ]]; then
    cargo build --release -p item-service -p order-service --bins
    if [[ $SERVICE == order ]]; then cargo build --release -p order-service --example order_floor; fi
fi

db_env=()
if [[ $STORE == postgres ]]; then
    pin_postgres
    db_env=("DATABASE_URL=$PG_URL")
fi
suffix=$(date +%s)

# start BINARY PORT SCHEMA [VAR=VALUE...]: runs BINARY on the server CPU.
start() {
    local binary=$1 port=$2 schema=$3 name
    name=$(basename "$binary")
    shift 3
    local env=("${db_env[@]}")
    [[ $STORE == postgres ]] && env+=("DATABASE_SCHEMA=${schema}_$suffix")
    taskset -c "$SERVER_CPU" env HOST=127.0.0.1 PORT="$port" RUST_LOG=warn LOG_FORMAT=json "${env[@]}" "$@" \
        "$binary" >"$WORK/$name-$port.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && return 0; sleep 0.1; done
    echo "$name did not start:" >&2
    cat "$WORK/$name-$port.log" >&2
    exit 1
}

start "$SERVICES_BIN/item-service" 18096 profile_item
ITEM=${PIDS[-1]}
TARGET=$ITEM
if [[ $SERVICE == order ]]; then
    start "$SERVICES_BIN/order-service" 18095 profile_orders ITEM_URL=http://127.0.0.1:18096
    TARGET=${PIDS[-1]}
    start "$BIN/examples/order_floor" 18097 profile_orders_own
    OWN=${PIDS[-1]}
    start "$BIN/examples/order_floor" 18098 profile_orders_floor ITEM_URL=http://127.0.0.1:18096
    FLOOR=${PIDS[-1]}
fi

{
    echo "# perf profile of $SERVICE-service ($STORE store) under wrk -c$CONNECTIONS"
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC'); binary: $SERVICES_BIN/$SERVICE-service; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT"

# profile NAME URL [SCRIPT [FOCUS]]: samples the server CPU for $DURATION s
# under wrk; the top entries are FOCUS's (a pid; default the service's).
profile() {
    local name=$1 url=$2 script=${3:-} focus=${4:-$TARGET}
    local args=(-t1 "-c$CONNECTIONS" "-d$((DURATION + 2))s")
    [[ -n $script ]] && args+=(-s "bench/services/$script")
    taskset -c "$LOAD_CPU" wrk "${args[@]}" "$url" >"$WORK/wrk.out" &
    local wrk=$! data=$WORK/perf.data
    sleep 1
    perf stat -C "$SERVER_CPU" -e context-switches -x, -o "$WORK/stat" -- sleep "$DURATION" 2>/dev/null &
    local stat=$!
    perf record -q -F 999 -C "$SERVER_CPU" -o "$data" -- sleep "$DURATION" 2>/dev/null || true
    wait "$stat" "$wrk" || true
    {
        echo
        echo "## $name: $(awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk.out") req/s while sampled"
        echo
        local rps
        rps=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk.out")
        awk -F, -v rps="$rps" -v seconds="$DURATION" -v cpu="$SERVER_CPU" '$3 == "context-switches" {
            printf "Context switches on CPU %s: %.1f per request\n\n", cpu, $1 / seconds / rps }' "$WORK/stat"
        echo "### CPU $SERVER_CPU by process, % of samples and µs of CPU per request"
        perf script -i "$data" -F comm,pid 2>/dev/null | awk -v item="$ITEM" -v target="$TARGET" -v floor="${FLOOR:-}" -v own="${OWN:-}" '
            {
                pid = $NF; name = $1
                if (pid == item) name = "item-service"; else if (pid == target) name = "order-service"
                else if (pid == floor) name = "order_floor"; else if (pid == own) name = "order_floor_own_work"
                else if (pid == 0) name = "idle"
                n[name]++; total++
            }
            END { for (name in n) print n[name] / total * 100, name }' |
            sort -rn | awk -v rps="$rps" '
            { printf "%6.2f%%  %6.0f µs  %s\n", $1, $1 / 100 * 1e6 / rps, $2 }'
        echo
        echo "### $(ps -o comm= -p "$focus"): top entries by own time, % of CPU $SERVER_CPU (perf report --no-children)"
        perf report -i "$data" --pid "$focus" --no-children --sort symbol --stdio -g none --percent-limit 0.4 2>/dev/null |
            grep -E "^ +[0-9]" | sed -E "s/ +- +- *$//" | awk "NR <= 40"
        if [[ $STORE == postgres ]]; then
            echo
            echo "### postgres: top entries by own time, % of CPU $SERVER_CPU"
            perf report -i "$data" --comm postgres --no-children --sort symbol --stdio -g none --percent-limit 0.5 2>/dev/null |
                grep -E "^ +[0-9]" | sed -E "s/ +- +- *$//" | awk "NR <= 25"
        fi
    } >>"$OUT"
}

if [[ $SERVICE == order ]]; then
    ids=()
    for _ in $(seq 1 50); do ids+=("$(new_item 18096 1000000000)"); done
    export ITEM_IDS
    ITEM_IDS=$(IFS=,; echo "${ids[*]}")
    profile "POST /v1/orders" "http://127.0.0.1:18095/v1/orders" post_order.lua
    # Its parts as the benchmark measures them, for the CPU per request.
    profile "POST /v1/orders (floor: the same work, item calls included, bare)" "http://127.0.0.1:18098/v1/orders" post_order.lua "$FLOOR"
    profile "POST /v1/orders (its own work, part)" "http://127.0.0.1:18097/v1/orders" post_order.lua "$OWN"
    profile "GET /v1/items/{id} (part)" "http://127.0.0.1:18096/v1/items/${ids[0]}" "" "$ITEM"
    profile "PUT /v1/reservations/{key} + POST .../confirm (part)" "http://127.0.0.1:18096" reserve_confirm.lua "$ITEM"
else
    id=$(new_item 18096 10)
    profile "GET /v1/items/{id}" "http://127.0.0.1:18096/v1/items/$id"
    profile "POST /v1/items" "http://127.0.0.1:18096/v1/items" post_item.lua
fi
cat "$OUT"
