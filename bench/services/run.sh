#!/usr/bin/env bash
# Benchmark of the reference services on loopback (not a test: it asserts
# nothing and takes about four minutes).
#
# Measures throughput and p50/p99 latency with wrk of
#   GET /v1/items/{id}, POST /v1/items (item service) and POST /v1/orders
#   (order service calling the item service), on the in-memory store and on
#   PostgreSQL, and in the same run, with the same load and pinning:
# - each row's floor: a bare axum handler doing the same work and nothing
#   else (examples/item_floor.rs and examples/order_floor.rs in the
#   services: the same store, model and validation, no middleware). For
#   POST /v1/orders the floor makes the order's three item calls (get,
#   reserve, confirm) to the same item service over a bare hyper client;
#   its parts are measured too, each alone from wrk's CPU: the order's own
#   work (the same floor without item calls), GET /v1/items/{id} (the GET
#   row) and reserve + confirm (a row alternating the two,
#   bench/services/reserve_confirm.lua), and the report gives the service's
#   share of their sum as well;
# - the ceiling: a bare axum hello server (examples/hello.rs in
#   berth-service-kit), which does less work than any route.
# The server side (the service under test, the item service behind the order
# service, and PostgreSQL) is pinned to CPU $SERVER_CPU, wrk to CPU $LOAD_CPU.
# Request logs are off (RUST_LOG=warn) so the figures measure the service.
#
#   bench/services/run.sh            writes bench/services/results.md
#   BENCH_DURATION=5s BENCH_CONNECTIONS=16 bench/services/run.sh
#   BENCH_BIN=dir                    builds nothing: takes the binaries from dir
#                                    (services) and dir/examples (floors, hello)
#   BENCH_SERVICES_BIN=dir           takes item-service and order-service from
#                                    dir (e.g. a copy built before a change)
#   BENCH_STORES=postgres BENCH_ROWS=orders BENCH_OUT=/tmp/orders.md
#                                    a quick partial run: only the stores named,
#                                    and with BENCH_ROWS=orders only POST
#                                    /v1/orders, its floor and its parts (no
#                                    ceiling, no item floors, no POST /v1/items)
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
OUT=${BENCH_OUT:-bench/services/results.md}
STORES=${BENCH_STORES:-memory postgres}
ROWS=${BENCH_ROWS:-all}
BIN=${BENCH_BIN:-${CARGO_TARGET_DIR:-target}/release}
SERVICES_BIN=${BENCH_SERVICES_BIN:-$BIN}
# shellcheck source=bench/services/lib.sh
source bench/services/lib.sh

if ! command -v wrk >/dev/null; then
    echo "wrk not found; installing it from Debian packages" >&2
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

if [[ -z ${BENCH_BIN:-} ]]; then
    cargo build --release -p item-service -p order-service --bins
    cargo build --release -p berth-service-kit --example hello
    cargo build --release -p item-service --example item_floor
    cargo build --release -p order-service --example order_floor
fi

pin_postgres

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

# load KIND LABEL STORE URL [SCRIPT]: one wrk run; appends a row to rows.tsv.
# KIND: ceiling, floor (the bare handler for the service row of the same
# label), part (a part of POST /v1/orders' floor) or service.
load() {
    local kind=$1 label=$2 store=$3 url=$4 script=${5:-}
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
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$label" "$store" "$rps" "$p50" "$p99" "$total" "${non2xx:-0}" "${errors:-none}" >>"$WORK/rows.tsv"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

if [[ $ROWS == all ]]; then
    # The ceiling.
    start hello 18090 "$BIN/examples/hello"
    load ceiling "GET /hello" "-" "http://127.0.0.1:18090/hello"
    load ceiling "POST /hello" "-" "http://127.0.0.1:18090/hello" post_item.lua
    stop_all
fi

suffix=$(date +%s)
for store in $STORES; do
    # db_env SCHEMA: the variables of a process keeping its data in
    # PostgreSQL schema SCHEMA (of this run), one a line; none in memory.
    db_env() { if [[ $store == postgres ]]; then printf '%s\n' "DATABASE_URL=$PG_URL" "DATABASE_SCHEMA=$1_$suffix"; fi; }
    mapfile -t env < <(db_env bench_item)
    start item 18091 "$SERVICES_BIN/item-service" "${env[@]}"
    mapfile -t env < <(db_env bench_orders)
    start order 18092 "$SERVICES_BIN/order-service" ITEM_URL=http://127.0.0.1:18091 "${env[@]}"
    mapfile -t env < <(db_env bench_item_floor)
    start item_floor 18093 "$BIN/examples/item_floor" "${env[@]}"
    mapfile -t env < <(db_env bench_orders_own)
    start order_own 18094 "$BIN/examples/order_floor" "${env[@]}"
    mapfile -t env < <(db_env bench_orders_floor)
    start order_floor 18095 "$BIN/examples/order_floor" ITEM_URL=http://127.0.0.1:18091 "${env[@]}"

    one=$(new_item 18091 10)
    floor_one=$(new_item 18093 10)
    ids=()
    for _ in $(seq 1 50); do ids+=("$(new_item 18091 1000000000)"); done
    export ITEM_IDS
    ITEM_IDS=$(IFS=,; echo "${ids[*]}")
    # Each row right after its floor, so both see the same moment's load.
    [[ $ROWS == all ]] && load floor "GET /v1/items/{id}" "$store" "http://127.0.0.1:18093/v1/items/$floor_one"
    load service "GET /v1/items/{id}" "$store" "http://127.0.0.1:18091/v1/items/$one"
    if [[ $ROWS == all ]]; then
        load floor "POST /v1/items" "$store" "http://127.0.0.1:18093/v1/items" post_item.lua
        load service "POST /v1/items" "$store" "http://127.0.0.1:18091/v1/items" post_item.lua
    fi
    load part "PUT /v1/reservations/{key} + POST .../confirm" "$store" "http://127.0.0.1:18091" reserve_confirm.lua
    load part "POST /v1/orders, its own work" "$store" "http://127.0.0.1:18094/v1/orders" post_order.lua
    load floor "POST /v1/orders" "$store" "http://127.0.0.1:18095/v1/orders" post_order.lua
    load service "POST /v1/orders" "$store" "http://127.0.0.1:18092/v1/orders" post_order.lua
    stop_all
done

python3 - "$WORK/rows.tsv" "$OUT" "$LOAD_BEFORE" "$DURATION" "$CONNECTIONS" "$SERVER_CPU" "$LOAD_CPU" <<'PY'
import platform, subprocess, sys, datetime
rows_path, out, load_before, duration, conns, server_cpu, load_cpu = sys.argv[1:]
rows = [line.rstrip("\n").split("\t") for line in open(rows_path)]
rps = {(kind, label, store): float(r) for kind, label, store, r, *_ in rows}
ceiling = {label.split()[0]: r for (kind, label, _), r in rps.items() if kind == "ceiling"}


def floor_of(label, store):
    """The floor's req/s for a service row: its bare handler's."""
    return rps.get(("floor", label, store))


def sum_of_parts(store):
    """POST /v1/orders' sum of its parts' per-request costs, each measured
    alone from the load generator's CPU: the order's own work, one GET of an
    item, one reserve and one confirm. It leaves out what the order service
    pays to make its three calls (the client side of each exchange,
    including the kernel's loopback delivery to the item service), which
    the end-to-end floor includes."""
    own = rps.get(("part", "POST /v1/orders, its own work", store))
    get = rps.get(("service", "GET /v1/items/{id}", store))
    pair = rps.get(("part", "PUT /v1/reservations/{key} + POST .../confirm", store))
    if not own or not get or not pair:
        return None
    return 1 / (1 / own + 1 / get + 2 / pair)


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
    "  (get, reserve, confirm) plus the order store writes.",
    "- Floors: bare axum handlers on the same store doing the same work (examples/item_floor.rs, examples/order_floor.rs);",
    "  the orders floor makes the same three item calls to the same item service over a bare hyper client.",
    "  Ceiling: a bare axum hello server (examples/hello.rs). Same load, same pinning, same run.",
    "",
    "## Results",
    "",
    "| endpoint | store | req/s | p50 | p99 | requests | non-2xx | socket errors | floor req/s | share of floor | share of ceiling |",
    "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
]
names = {"ceiling": " (ceiling)", "floor": " (floor)", "part": " (part of the orders floor)", "service": ""}
for kind, label, store, r, p50, p99, total, non2xx, errors in rows:
    r = float(r)
    method = label.split()[0]
    floor, of_floor, of_ceiling = "", "", ""
    if kind == "service":
        f = floor_of(label, store)
        if f:
            floor, of_floor = f"{f:,.0f}", f"{r / f:.1%}"
    if kind in ("service", "floor") and method in ceiling:
        of_ceiling = f"{r / ceiling[method]:.1%}"
    lines.append(f"| {label}{names[kind]} | {store} | {r:,.0f} | {p50} | {p99} | {total} | {non2xx} | {errors} | {floor} | {of_floor} | {of_ceiling} |")
lines += [
    "",
    "Share of floor: a row's req/s over its floor's, the bare handler doing the same work in the same run.",
    "Share of ceiling: over the hello server's req/s for the same method.",
    "",
    "POST /v1/orders against the sum of its parts, 1 / (1/its own work + 1/GET /v1/items/{id} + 2/reservations",
    "part), each part measured alone with wrk on the other CPU (so without the client side of the three calls):",
]
for store in dict.fromkeys(store for _, _, store, *_ in rows if store != "-"):
    parts, service = sum_of_parts(store), rps.get(("service", "POST /v1/orders", store))
    if parts and service:
        lines.append(f"- {store}: {service:,.0f} req/s of {parts:,.0f}, {service / parts:.1%}")
print("\n".join(lines))
# What follows "## Notes" in the file is written by hand: kept.
try:
    previous = open(out).read()
    notes = previous[previous.index("\n## Notes"):]
except (OSError, ValueError):
    notes = ""
open(out, "w").write("\n".join(lines) + "\n" + notes)
PY
