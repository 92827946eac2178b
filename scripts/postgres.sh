#!/usr/bin/env bash
# A throwaway PostgreSQL for the services' tests and benchmarks, on loopback,
# and for the services' pods on the local cluster's real node.
#
#   scripts/postgres.sh            install if missing, start (idempotent), print the URL
#   scripts/postgres.sh --export   the same, but print `export BERTH_TEST_DATABASE_URL=...` for eval
#   scripts/postgres.sh --pods-url the same server, also on the node address, for pods:
#                                  prints postgres://berth:berth@$BERTH_NODE_IP:$BERTH_PG_PORT/berth_test
#   scripts/postgres.sh stop       stop the cluster
#
# Installs PostgreSQL from Debian packages when no server binaries exist,
# keeps its own cluster under $BERTH_PG_DIR (not the distribution's), and
# listens on 127.0.0.1:$BERTH_PG_PORT only. --pods-url adds $BERTH_NODE_IP
# (default 10.245.0.1, the real node's address on the bridge the cluster
# creates; it must exist on this machine) and lets $BERTH_NODE_POD_CIDR
# (default 10.245.0.0/24) in with a password; it restarts the server only when
# the listen addresses change. Never 0.0.0.0, never the machine's own network.
# Exits non-zero when any step fails, so CI fails rather than skipping the
# PostgreSQL tests.
set -euo pipefail

PG_DIR=${BERTH_PG_DIR:-/var/tmp/berth-postgres}
PG_PORT=${BERTH_PG_PORT:-55432}
NODE_IP=${BERTH_NODE_IP:-10.245.0.1}
POD_CIDR=${BERTH_NODE_POD_CIDR:-10.245.0.0/24}
DB_NAME=berth_test
DB_USER=berth
DB_PASSWORD=berth
URL="postgres://${DB_USER}:${DB_PASSWORD}@127.0.0.1:${PG_PORT}/${DB_NAME}"
PODS_URL="postgres://${DB_USER}:${DB_PASSWORD}@${NODE_IP}:${PG_PORT}/${DB_NAME}"
# Only the service's own database and role, from the pods' range, with a password.
HBA_PODS="host ${DB_NAME} ${DB_USER} ${POD_CIDR} scram-sha-256"

log() { echo "postgres.sh: $*" >&2; }
die() { log "$*"; exit 1; }

find_bin() {
    local dir
    dir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)
    if [[ -n "$dir" && -x "$dir/initdb" ]]; then echo "$dir"; return 0; fi
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
    return 1
}

install_postgres() {
    log "PostgreSQL not found; installing from Debian packages"
    if [[ $(id -u) -ne 0 ]]; then die "need root to apt-get install postgresql"; fi
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

running() { as_owner "$BIN/pg_ctl" -D "$PG_DIR" status >/dev/null 2>&1; }

# start LISTEN_ADDRESSES (comma-separated). The server must not inherit the
# lock (fd 9), or it would hold it for as long as it runs.
start() {
    log "starting PostgreSQL on $1 port $PG_PORT"
    as_owner "$BIN/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w -t 60 start \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=$1 -c max_connections=300 -c fsync=off -c synchronous_commit=off" >&2 9>&- \
        || { log "start failed; server log:"; tail -n 30 "$PG_DIR/server.log" >&2; exit 1; }
}

psql_admin() { as_owner "$BIN/psql" -h "$PG_DIR" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }

# True when a listening socket is bound to ADDRESS:$PG_PORT (postgres only
# warns when one of its listen addresses cannot be bound, e.g. it was missing).
listening_on() { [[ -n $(ss -ltnH "src $1:$PG_PORT" 2>/dev/null) ]]; }

# The pods' way in: the node address beside loopback, and a password rule for
# their range. pg_hba.conf is re-read without a restart; listen_addresses is not.
open_to_pods() {
    # (not `ip | grep -q`: grep's early exit fails the pipe under pipefail)
    [[ $(ip -o addr show) == *"inet ${NODE_IP}/"* ]] ||
        die "$NODE_IP (BERTH_NODE_IP) is not an address of this machine: start the cluster with its real node first (tests/cluster/up.sh; kubectl get node berth-node-0)"
    local want="127.0.0.1,$NODE_IP"
    if [[ $(psql_admin -c 'SHOW listen_addresses') != "$want" ]] || ! listening_on "$NODE_IP"; then
        log "restarting PostgreSQL to listen on $want"
        as_owner "$BIN/pg_ctl" -D "$PG_DIR" -m fast -w stop >&2
        start "$want"
        wait_for_server
    fi
    if ! grep -qxF "$HBA_PODS" "$PG_DIR/pg_hba.conf"; then
        echo "$HBA_PODS" >>"$PG_DIR/pg_hba.conf"
        psql_admin -c 'SELECT pg_reload_conf()' >/dev/null
    fi
    # scram-sha-256 needs a SCRAM verifier (a role made under md5 has none).
    if [[ -z $(psql_admin -c "SELECT 1 FROM pg_authid WHERE rolname = '$DB_USER' AND rolpassword LIKE 'SCRAM-SHA-256\$%'") ]]; then
        psql_admin -c "SET password_encryption = 'scram-sha-256'; ALTER ROLE $DB_USER PASSWORD '$DB_PASSWORD'"
    fi
    # From this machine the source address is $NODE_IP itself, inside the pod
    # range: this is the path, the rule and the password a pod uses.
    PGPASSWORD=$DB_PASSWORD PGCONNECT_TIMEOUT=5 "$BIN/psql" "$PODS_URL" -qtAc 'SELECT 1' >/dev/null ||
        die "cannot connect as $DB_USER to $NODE_IP:$PG_PORT (server log: $PG_DIR/server.log)"
}

wait_for_server() {
    for _ in $(seq 1 30); do psql_admin -c 'SELECT 1' >/dev/null 2>&1 && return 0; sleep 1; done
    die "PostgreSQL does not answer (server log: $PG_DIR/server.log)"
}

# make test-services and make run may call this at the same time.
exec 9>"$PG_DIR.lock"
flock 9

BIN=$(find_bin || true)
if [[ -z "$BIN" ]]; then install_postgres; BIN=$(find_bin); fi

case "${1:-}" in
    stop)
        if [[ -f "$PG_DIR/PG_VERSION" ]]; then as_owner "$BIN/pg_ctl" -D "$PG_DIR" -m fast -w stop >&2 || true; fi
        exit 0 ;;
    ""|--export|--pods-url) ;;
    *) die "unknown argument '$1' (--export, --pods-url or stop)" ;;
esac

if [[ ! -f "$PG_DIR/PG_VERSION" ]]; then
    log "creating a cluster in $PG_DIR"
    mkdir -p "$PG_DIR"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$PG_DIR"
    chmod 700 "$PG_DIR"
    as_owner "$BIN/initdb" -D "$PG_DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
fi

running || start 127.0.0.1
wait_for_server
if [[ -z $(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'") ]]; then
    psql_admin -c "CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD'"
fi
if [[ -z $(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") ]]; then
    psql_admin -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
fi

case "${1:-}" in
    --export) echo "export BERTH_TEST_DATABASE_URL=$URL" ;;
    --pods-url) open_to_pods; echo "$PODS_URL" ;;
    *) echo "$URL" ;;
esac
