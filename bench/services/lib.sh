# shellcheck shell=bash
# What bench/services/run.sh and profile.sh both set up; sourced, not run.
# Expects SERVER_CPU; defines WORK and PIDS and cleans both up on exit.

WORK=$(mktemp -d)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n "${PG_PID:-}" ]]; then taskset -a -p -c "0-$(($(nproc) - 1))" "$PG_PID" >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# pin_postgres: starts the loopback PostgreSQL of scripts/postgres.sh if it
# is not running, sets PG_URL, and pins the cluster to the server CPU (new
# backends fork from the postmaster and inherit its CPU).
pin_postgres() {
    # shellcheck disable=SC2034 # used by the scripts that source this
    PG_URL=$(scripts/postgres.sh)
    local dir=${BERTH_PG_DIR:-/var/tmp/berth-postgres}
    PG_PID=$(head -n1 "$dir/postmaster.pid")
    taskset -a -p -c "$SERVER_CPU" "$PG_PID" >/dev/null
    local child
    for child in $(pgrep -P "$PG_PID"); do taskset -p -c "$SERVER_CPU" "$child" >/dev/null; done
}

# new_item PORT STOCK: creates an item priced 12.50 EUR; prints its id.
new_item() {
    curl -fs -X POST "http://127.0.0.1:$1/v1/items" -H 'content-type: application/json' \
        -d "{\"name\":\"Seed\",\"price_minor\":1250,\"currency\":\"EUR\",\"stock\":$2}" |
        python3 -c 'import sys, json; print(json.load(sys.stdin)["id"])'
}
