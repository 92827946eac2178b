#!/usr/bin/env bash
# The contract test: each service's own /openapi.json against the service, as
# a client generated from that document would see it. Schemathesis (pinned in
# scripts/contract/requirements.txt, installed into a venv of its own under
# ~/.cache/berth, made again when the list changes) runs every check in all
# four phases: the documents' examples, the coverage of each constraint's
# edges, fuzzing, and stateful sequences that follow the documents' links
# (create an item -> reserve it -> confirm or release; place an order ->
# cancel it). Any failure fails the run. Before order's run a few items are
# created in the item service, and the hooks (scripts/contract/hooks.py) make
# valid generated orders name them, so orders get placed rather than refused.
#
# The stateful phase runs in a second round, on services started afresh: a
# state machine whose steps find what the earlier phases left behind (keys
# already released, items by the thousand) takes different steps for the
# same draws, Hypothesis calls that flaky, and schemathesis ends the phase
# there, after a fifth of its scenarios.
#
#   scripts/contract/run.sh              both services, in memory
#   CONTRACT_DATABASE_URL=postgres://... scripts/contract/run.sh
#                                        both services on that PostgreSQL
#
# The services are the debug binaries, built here, on loopback ports chosen
# free at start; order calls item. Runs are deterministic (a fixed seed,
# CONTRACT_SEED) and bounded (CONTRACT_MAX_EXAMPLES per operation). The
# reports are left in target/contract/<service>/<round>.xml, the services'
# logs in target/contract/<service>-<round>.log. What the
# documents cannot say (a stale If-Match is a 412; an order may name items
# that do not exist or repeat one) and how the phases run are in
# scripts/contract/schemathesis.toml, with reasons.
#
# Without python3 (and its venv module) the test is skipped with a warning,
# except under CI=true, where that is a failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=${CONTRACT_VENV:-$HOME/.cache/berth/venv-contract}
REQUIREMENTS=scripts/contract/requirements.txt
SEED=${CONTRACT_SEED:-20261130}
MAX_EXAMPLES=${CONTRACT_MAX_EXAMPLES:-100}
OUT=target/contract
BIN=${CARGO_TARGET_DIR:-target}/debug
PIDS=()

log() { echo "contract: $*" >&2; }
die() { log "$*"; exit 1; }

stop_services() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
trap stop_services EXIT

# The venv, made again when the pinned list changes; the installed list is
# copied last, so a failed install is retried next time.
ensure_venv() {
    if ! command -v python3 >/dev/null || ! python3 -m venv --help >/dev/null 2>&1; then
        if [[ ${CI:-} == true ]]; then
            die "python3 with its venv module is required (Debian: apt-get install python3-venv)"
        fi
        log "SKIPPED: python3 with its venv module not found (Debian: apt-get install python3-venv)"
        exit 0
    fi
    if cmp -s "$REQUIREMENTS" "$VENV/requirements.txt"; then return; fi
    log "installing schemathesis into $VENV"
    python3 -m venv --clear "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    cp "$REQUIREMENTS" "$VENV/requirements.txt"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start NAME ROUND PORT [VAR=VALUE...]: runs target/debug/NAME-service until
# ready.
start() {
    local name=$1 round=$2 port=$3
    shift 3
    env HOST=127.0.0.1 PORT="$port" LOG_FORMAT=text RUST_LOG=warn SHUTDOWN_DELAY_MS=0 "$@" \
        "$BIN/$name-service" >"$OUT/$name-$round.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 300); do
        curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
        kill -0 "${PIDS[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    cat "$OUT/$name-$round.log" >&2
    die "$name-service did not become ready on port $port"
}

# seed_items PORT: creates items in the item service for orders to name;
# prints their ids, comma-separated. Same currency, plenty of stock: a valid
# order of them is placed.
seed_items() {
    local port=$1 ids=() n
    for n in 1 2 3 4 5; do
        ids+=("$(curl -fsS -H 'content-type: application/json' \
            -d "{\"name\":\"Contract item $n\",\"price_minor\":${n}50,\"currency\":\"EUR\",\"stock\":1000000000}" \
            "http://127.0.0.1:$port/v1/items" |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')")
    done
    (IFS=,; echo "${ids[*]}")
}

# check NAME ROUND PHASES PORT [VAR=VALUE...]: schemathesis against one
# service, with those variables for the hooks; returns its status.
check() {
    local name=$1 round=$2 phases=$3 port=$4
    shift 4
    log "$name-service, $round round: schemathesis, every check, phases $phases (seed $SEED, at most $MAX_EXAMPLES examples per operation)"
    env "$@" nice -n 19 "$VENV/bin/schemathesis" --config-file scripts/contract/schemathesis.toml \
        run "http://127.0.0.1:$port/openapi.json" \
        --checks all \
        --phases "$phases" \
        --seed "$SEED" \
        --max-examples "$MAX_EXAMPLES" \
        --workers 1 \
        --generation-database none \
        --no-color \
        --report junit --report-junit-path "$OUT/$name/$round.xml"
}

# run_round ROUND PHASES: both services started afresh (in memory, or in
# schemas of this round on PostgreSQL), then schemathesis against each.
run_round() {
    local round=$1 phases=$2 item_env=() order_env=() item_port order_port item_ids
    if [[ -n ${CONTRACT_DATABASE_URL:-} ]]; then
        item_env=(DATABASE_URL="$CONTRACT_DATABASE_URL" DATABASE_SCHEMA="contract_item_$round")
        order_env=(DATABASE_URL="$CONTRACT_DATABASE_URL" DATABASE_SCHEMA="contract_orders_$round")
    fi
    item_port=$(free_port)
    start item "$round" "$item_port" "${item_env[@]}"
    order_port=$(free_port)
    start order "$round" "$order_port" ITEM_URL="http://127.0.0.1:$item_port" "${order_env[@]}"
    check item "$round" "$phases" "$item_port" || failed+=("item ($round)")
    # After item's run, which would change or delete them.
    item_ids=$(seed_items "$item_port")
    [[ $item_ids =~ ^[0-9a-f-]{36}(,[0-9a-f-]{36})*$ ]] || die "could not create the items orders name: '$item_ids'"
    check order "$round" "$phases" "$order_port" CONTRACT_ITEM_IDS="$item_ids" || failed+=("order ($round)")
    stop_services
}

ensure_venv
mkdir -p "$OUT"
cargo build -p item-service -p order-service --bins

if [[ -n ${CONTRACT_DATABASE_URL:-} ]]; then
    log "on PostgreSQL, schemas contract_item_<round> and contract_orders_<round>"
fi
failed=()
run_round unit examples,coverage,fuzzing
run_round stateful stateful
if ((${#failed[@]})); then
    die "the document disagrees with the service: ${failed[*]} (reports under $OUT/)"
fi
log "both services keep their documents"
