#!/usr/bin/env bash
# Benchmark of the reference services on loopback (not a test: it asserts
# nothing and takes about two minutes).
#
# Measures throughput and p50/p99 latency with wrk of
#   GET /v1/items/{id}, POST /v1/items (item service) and POST /v1/orders
#   (order service calling the item service), on the in-memory store and on
#   PostgreSQL, and, in the same run and with the same load, a bare axum
#   hello server (examples/hello.rs in berth-service-kit) as the ceiling.
# The server side (the service under test, the item service behind the order
# service, and PostgreSQL) is pinned to CPU $SERVER_CPU, wrk to CPU $LOAD_CPU.
# Request logs are off (RUST_LOG=warn) so the figures measure the service.
#
#   bench/services/run.sh            writes bench/services/results.md
#   BENCH_DURATION=5s BENCH_CONNECTIONS=16 bench/services/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
OUT=${BENCH_OUT:-bench/services/results.md}
BIN=${CARGO_TARGET_DIR:-target}/release
WORK=$(mktemp -d)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n "${PG_PID:-}" ]]; then taskset -a -p -c "0-$(($(nproc) - 1))" "$PG_PID" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

if ! command -v wrk >/dev/null; then
    echo "wrk not found; installing it from Debian packages" >&2
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

cargo build --release -p item-service -p order-service --bins
cargo build --release -p berth-service-kit --example hello

PG_URL=$(scripts/postgres.sh)
PG_DIR=${BERTH_PG_DIR:-/var/tmp/berth-postgres}
PG_PID=$(head -n1 "$PG_DIR/postmaster.pid")
# New backends fork from the postmaster and inherit its CPU.
taskset -a -p -c "$SERVER_CPU" "$PG_PID" >/dev/null
for child in $(pgrep -P "$PG_PID"); do taskset -p -c "$SERVER_CPU" "$child" >/dev/null; done

# start NAME PORT BINARY [VAR=VALUE...]: runs a server on the server CPU.
start() {
    local name=$1 port=$2 binary=$3
    shift 3
    taskset -c "$SERVER_CPU" env HOST=127.0.0.1 PORT="$port" RUST_LOG=warn LOG_FORMAT=json "$@" "$binary" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    local path=/healthz
    [[ $name == hello ]] && path=/hello
    for _ in $(seq 1 100); do
        curl -fs "http://127.0.0.1:$port$path" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$name did not start:" >&2
    cat "$WORK/$name.log" >&2
    exit 1
}

stop_all() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
}

# load LABEL STORE URL [SCRIPT]: one wrk run; appends a row to rows.tsv.
load() {
    local label=$1 store=$2 url=$3 script=${4:-}
    local args=(-t1 "-c$CONNECTIONS" "-d$DURATION" --latency)
    [[ -n $script ]] && args+=(-s "bench/services/$script")
    echo "== $label ($store): wrk ${args[*]} $url" >&2
    taskset -c "$LOAD_CPU" wrk "${args[@]}" "$url" >"$WORK/wrk.out"
    cat "$WORK/wrk.out" >&2
    local rps p50 p99 total non2xx errors
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk.out")
    p50=$(awk '$1 == "50%" {print $2}' "$WORK/wrk.out")
    p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk.out")
    total=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$WORK/wrk.out")
    errors=$(awk '/Socket errors:/ {print $0}' "$WORK/wrk.out" | sed 's/^ *Socket errors: *//')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$store" "$rps" "$p50" "$p99" "$total" "${non2xx:-0}" "${errors:-none}" >>"$WORK/rows.tsv"
}

json_field() { python3 -c "import sys, json; print(json.load(sys.stdin)[\"$1\"])"; }

new_item() { # PORT STOCK -> id
    curl -fs -X POST "http://127.0.0.1:$1/v1/items" -H 'content-type: application/json' \
        -d "{\"name\":\"Seed\",\"price_minor\":1250,\"currency\":\"EUR\",\"stock\":$2}" | json_field id
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# The ceiling.
start hello 18090 "$BIN/examples/hello"
load "GET /hello (ceiling)" "-" "http://127.0.0.1:18090/hello"
load "POST /hello (ceiling)" "-" "http://127.0.0.1:18090/hello" post_item.lua
stop_all

suffix=$(date +%s)
for store in memory postgres; do
    db_env=()
    if [[ $store == postgres ]]; then db_env=(DATABASE_URL="$PG_URL" DATABASE_SCHEMA="bench_item_$suffix"); fi
    start item 18091 "$BIN/item-service" "${db_env[@]}"
    order_db_env=()
    if [[ $store == postgres ]]; then order_db_env=(DATABASE_URL="$PG_URL" DATABASE_SCHEMA="bench_orders_$suffix"); fi
    start order 18092 "$BIN/order-service" ITEM_URL=http://127.0.0.1:18091 "${order_db_env[@]}"

    one=$(new_item 18091 10)
    ids=()
    for _ in $(seq 1 50); do ids+=("$(new_item 18091 1000000000)"); done
    load "GET /v1/items/{id}" "$store" "http://127.0.0.1:18091/v1/items/$one"
    load "POST /v1/items" "$store" "http://127.0.0.1:18091/v1/items" post_item.lua
    ITEM_IDS=$(IFS=,; echo "${ids[*]}") load "POST /v1/orders" "$store" "http://127.0.0.1:18092/v1/orders" post_order.lua
    stop_all
done

python3 - "$WORK/rows.tsv" "$OUT" "$LOAD_BEFORE" "$DURATION" "$CONNECTIONS" "$SERVER_CPU" "$LOAD_CPU" <<'PY'
import platform, subprocess, sys, datetime
rows_path, out, load_before, duration, conns, server_cpu, load_cpu = sys.argv[1:]
rows = [line.rstrip("\n").split("\t") for line in open(rows_path)]
ceiling = {r[0].split()[0]: float(r[2]) for r in rows if "ceiling" in r[0]}
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return "?"
cpu = sh("lscpu | sed -n 's/^Model name: *//p'") or platform.processor()
mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
lines = [
    "# Service benchmark",
    "",
    f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by `bench/services/run.sh` (`make bench-services`).",
    "",
    "## Machine",
    f"- CPU: {cpu}, {sh('nproc')} cores visible; memory {mem}",
    f"- Kernel: {platform.release()}; {sh('rustc -V')}; {sh('wrk -v 2>&1 | head -n1')}; {sh('psql -V')}",
    f"- Load average (1/5/15 min) before the run: {load_before} (other work was running on this shared machine)",
    "",
    "## Method",
    f"- wrk, 1 thread, {conns} connections, {duration} per row, loopback only, release builds (thin LTO).",
    f"- Server side pinned to CPU {server_cpu} (`taskset`): the service under test, for orders also the item service it calls,",
    "  and for the postgres rows the whole PostgreSQL cluster (fsync off, over loopback TCP). wrk pinned to CPU " + load_cpu + ".",
    "- Request logs off (`RUST_LOG=warn`); metrics, request ids and body limits on, as in production.",
    "- POST /v1/orders: one line of quantity 1 over 50 items; each order is 3 HTTP calls to the item service",
    "  (get, reserve, confirm) plus the order store writes. Ceiling: a bare axum/hyper hello server, same load.",
    "",
    "## Results",
    "",
    "| endpoint | store | req/s | p50 | p99 | requests | non-2xx | socket errors | share of ceiling |",
    "|---|---|---:|---:|---:|---:|---:|---|---:|",
]
for label, store, rps, p50, p99, total, non2xx, errors in rows:
    method = label.split()[0]
    ratio = f"{float(rps) / ceiling[method]:.1%}" if method in ceiling and "ceiling" not in label else "100%"
    lines.append(f"| {label} | {store} | {float(rps):,.0f} | {p50} | {p99} | {total} | {non2xx} | {errors} | {ratio} |")
lines.append("")
lines.append("The share of ceiling divides a row's req/s by the hello server's for the same method.")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
