# shellcheck shell=bash disable=SC2154  # $pids and $logs come from the user (below)
# Starting and stopping one background process per component. Each runs in its
# own session (so its process group id is its pid and nothing it spawns escapes
# a group kill), with its pid in $pids/NAME.pid and its output in $logs/NAME.log.
#
# The one way the repository manages a host process: the cluster's components
# (up.sh, down.sh, component.sh), the custom metrics adapter
# (custom-metrics/adapter.sh) and `make run`'s host-process operator
# (scripts/run/on-kwok.sh). A user sets $pids and $logs (directories),
# optionally $process_mark, and defines `say MESSAGE`.
#
# process_mark: text every command line of ours contains (default: the
# cluster's state directory), to tell our live process from a reused pid.

pid_of() {
  local f=$pids/$1.pid
  [ -s "$f" ] && cat "$f"
}

# Alive, and really ours: the pid file could be stale and the pid reused.
running() {
  local pid; pid=$(pid_of "$1") || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "${process_mark:-$BERTH_CLUSTER_DIR/}"
}

# spawn NAME COMMAND...: start COMMAND detached from this shell.
spawn() {
  local name=$1; shift
  mkdir -p "$logs" "$pids"
  rm -f "$pids/$name.pid" # a stale one would be taken for the new process
  # Logs are appended across restarts; keep one older file beyond 50 MB.
  if [ "$(stat -c %s "$logs/$name.log" 2>/dev/null || echo 0)" -gt 52428800 ]; then
    mv "$logs/$name.log" "$logs/$name.log.1"
  fi
  echo "---- $(date -u +%FT%TZ) starting $name" >>"$logs/$name.log"
  # bash -c writes its own pid, then execs: the pid file always names the
  # component even if setsid had to fork. 8>&- : the component must not hold
  # the cluster lock (lock_cluster) after this script exits.
  # shellcheck disable=SC2016  # $$ and $@ are the inner shell's
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pids/$name.pid" "$@" \
    </dev/null >>"$logs/$name.log" 2>&1 8>&- &
  local waited=0
  until [ -s "$pids/$name.pid" ] || [ $waited -ge 50 ]; do sleep 0.1; waited=$((waited + 1)); done
}

# group_alive PGID: a live (non-zombie) process is left in the group. Our
# components are orphans reaped by pid 1, which may leave a zombie around for
# a while; `kill -0` would count it.
group_alive() {
  ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

# stop_process NAME [SECONDS]: TERM the whole process group, KILL after
# SECONDS (5). kube-apiserver stops listening at once on TERM but then lingers
# well over 15 s (draining watches); the state here is throwaway, so we do not
# wait.
stop_process() {
  local name=$1 grace=${2:-5} pid
  pid=$(pid_of "$name") || return 0
  if running "$name"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + grace))
    while group_alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if group_alive "$pid"; then
      say "$name still running $grace s after TERM, killing it"
      kill -KILL -- "-$pid" 2>/dev/null || true
      deadline=$((SECONDS + 5))
      while group_alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    fi
    if group_alive "$pid"; then
      say "could not stop $name (process group $pid)"; return 1
    fi
  fi
  rm -f "$pids/$name.pid"
}

# log_tail NAME: the end of a component's log since its last start, and its
# error lines first (a usage dump can push the real error out of the tail).
log_tail() {
  local f=$logs/$1.log
  [ -f "$f" ] || return 0
  local from; from=$(grep -n '^---- .* starting ' "$f" | tail -n 1 | cut -d: -f1)
  local errors
  errors=$(tail -n "+${from:-1}" "$f" |
    grep -E '^(Error|error|panic|fatal|F[0-9]{4}|E[0-9]{4})|"level":"(error|fatal|ERROR)"' | tail -n 5 || true)
  if [ -n "$errors" ]; then
    echo "----- errors in $f -----" >&2
    echo "$errors" >&2
  fi
  echo "----- last 30 lines of $f -----" >&2
  tail -n "+${from:-1}" "$f" | tail -n 30 >&2
  echo "-----" >&2
}

# wait_started NAME SECONDS WHAT CHECK...: polls CHECK every 0.2 s until it
# succeeds; fails, with NAME's log, when NAME exits first or SECONDS pass.
wait_started() {
  local name=$1 timeout=$2 what=$3; shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! running "$name"; then
      say "$name exited during startup"; log_tail "$name"; return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      say "timed out after ${timeout}s waiting for $what"; log_tail "$name"; return 1
    fi
    sleep 0.2
  done
}

# ---- Ports. Something else may already answer on a port (127.0.0.1:8080 is
# a popular one): a port counts as ours only when the socket belongs to the
# process we started, never because something answers there.

# listeners PORT [HOST]: the listening TCP sockets a bind of HOST:PORT would
# clash with (HOST itself or a wildcard address; any address without HOST),
# as `ss -ltnpH` lines.
listeners() {
  local port=$1 host=${2:-}
  host=${host#[}; host=${host%]}
  ss -ltnpH "sport = :$port" 2>/dev/null | awk -v host="$host" '{
    addr = $4; sub(/:[0-9]+$/, "", addr); gsub(/[][]/, "", addr); sub(/%.*/, "", addr)
    if (host == "" || addr == host || addr == "0.0.0.0" || addr == "*" || addr == "::") print
  }'
}

# port_owner PORT [HOST]: who holds it, for a message: `name (pid N)`, ...
port_owner() {
  local users
  users=$(listeners "$@" | grep -oE '\("[^"]*",pid=[0-9]+' |
    sed -E 's/\("([^"]*)",pid=([0-9]+)/\1 (pid \2)/' | sort -u | paste -sd, - | sed 's/,/, /g')
  echo "${users:-a process ss does not name}"
}

# port_in_use HOST PORT: succeeds, printing `HOST:PORT is already in use by
# OWNER`, when a bind there would fail.
port_in_use() {
  [ -n "$(listeners "$2" "$1")" ] || return 1
  echo "$1:$2 is already in use by $(port_owner "$2" "$1")"
}

# owns_port NAME PORT [HOST]: a process of NAME's group holds the listening
# socket: what answers there is the process started here.
owns_port() {
  local name=$1 pid p; shift
  pid=$(pid_of "$name") || return 1
  for p in $(listeners "$@" | grep -oE 'pid=[0-9]+' | cut -d= -f2 | sort -u); do
    [ "$(ps -o pgid= -p "$p" 2>/dev/null | tr -d ' ')" = "$pid" ] && return 0
  done
  return 1
}
