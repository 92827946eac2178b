# shellcheck shell=bash
# Starting and stopping one background process per component. Each runs in its
# own session (so its process group id is its pid and nothing it spawns escapes
# a group kill), with its pid in $pids/NAME.pid and its output in $logs/NAME.log.

pid_of() {
  local f=$pids/$1.pid
  [ -s "$f" ] && cat "$f"
}

# Alive, and really ours: the pid file could be stale and the pid reused.
running() {
  local pid; pid=$(pid_of "$1") || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$BERTH_CLUSTER_DIR"
}

# spawn NAME COMMAND...: start COMMAND detached from this shell.
spawn() {
  local name=$1; shift
  mkdir -p "$logs" "$pids"
  rm -f "$pids/$name.pid" # a stale one would be taken for the new process
  echo "---- $(date -u +%FT%TZ) starting $name" >>"$logs/$name.log"
  # bash -c writes its own pid, then execs: the pid file always names the
  # component even if setsid had to fork. 8>&- : the component must not hold
  # the cluster lock (lock_cluster) after this script exits.
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pids/$name.pid" "$@" \
    </dev/null >>"$logs/$name.log" 2>&1 8>&- &
  local waited=0
  until [ -s "$pids/$name.pid" ] || [ $waited -ge 50 ]; do sleep 0.1; waited=$((waited + 1)); done
}

# stop_process NAME: TERM the whole process group, KILL after 15 s.
stop_process() {
  local name=$1 pid
  pid=$(pid_of "$name") || return 0
  if running "$name"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while kill -0 -- "-$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if kill -0 -- "-$pid" 2>/dev/null; then
      say "$name did not stop on TERM, killing"
      kill -KILL -- "-$pid" 2>/dev/null || true
      sleep 0.2
    fi
    if kill -0 -- "-$pid" 2>/dev/null; then
      say "could not stop $name (pid $pid)"; return 1
    fi
  fi
  rm -f "$pids/$name.pid"
}

log_tail() {
  local f=$logs/$1.log
  [ -f "$f" ] || return 0
  echo "----- last 30 lines of $f -----" >&2
  tail -n 30 "$f" >&2
  echo "-----" >&2
}
