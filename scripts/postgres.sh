#!/usr/bin/env bash
# A throwaway PostgreSQL for the services' tests and benchmarks, on loopback.
#
#   scripts/postgres.sh            install if missing, start (idempotent), print the URL
#   scripts/postgres.sh --export   the same, but print `export BERTH_TEST_DATABASE_URL=...` for eval
#   scripts/postgres.sh stop       stop the cluster
#
# Installs PostgreSQL from Debian packages when no server binaries exist,
# keeps its own cluster under $BERTH_PG_DIR (not the distribution's), and
# listens on 127.0.0.1:$BERTH_PG_PORT only. Exits non-zero when any step
# fails, so CI fails rather than skipping the PostgreSQL tests.
set -euo pipefail

PG_DIR=${BERTH_PG_DIR:-/var/tmp/berth-postgres}
PG_PORT=${BERTH_PG_PORT:-55432}
DB_NAME=berth_test
DB_USER=berth
DB_PASSWORD=berth
URL="postgres://${DB_USER}:${DB_PASSWORD}@127.0.0.1:${PG_PORT}/${DB_NAME}"

log() { echo "postgres.sh: $*" >&2; }

find_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
    if [[ -n "$dir" && -x "$dir/initdb" ]]; then echo "$dir"; return 0; fi
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
    return 1
}

install_postgres() {
    log "PostgreSQL not found; installing from Debian packages"
    if [[ $(id -u) -ne 0 ]]; then log "need root to apt-get install postgresql"; exit 1; fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
}

# initdb and postgres refuse to run as root: run them as the postgres user.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir "$PG_DIR" --shell /usr/sbin/nologin postgres
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

BIN=$(find_bin || true)
if [[ -z "$BIN" ]]; then install_postgres; BIN=$(find_bin); fi

if [[ "${1:-}" == "stop" ]]; then
    if [[ -f "$PG_DIR/PG_VERSION" ]]; then as_owner "$BIN/pg_ctl" -D "$PG_DIR" -m fast -w stop >&2 || true; fi
    exit 0
fi

if [[ ! -f "$PG_DIR/PG_VERSION" ]]; then
    log "creating a cluster in $PG_DIR"
    mkdir -p "$PG_DIR"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$PG_DIR"
    chmod 700 "$PG_DIR"
    as_owner "$BIN/initdb" -D "$PG_DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
fi

if ! as_owner "$BIN/pg_ctl" -D "$PG_DIR" status >/dev/null 2>&1; then
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    as_owner "$BIN/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w -t 60 start \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off" >&2 \
        || { log "start failed; server log:"; tail -n 30 "$PG_DIR/server.log" >&2; exit 1; }
fi

psql_admin() { as_owner "$BIN/psql" -h "$PG_DIR" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
for _ in $(seq 1 30); do psql_admin -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
if [[ -z $(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'") ]]; then
    psql_admin -c "CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD'"
fi
if [[ -z $(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") ]]; then
    psql_admin -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
fi

if [[ "${1:-}" == "--export" ]]; then
    echo "export BERTH_TEST_DATABASE_URL=$URL"
else
    echo "$URL"
fi
