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
  grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$BERTH_CLUSTER_DIR/"
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

# stop_process NAME: TERM the whole process group, KILL after 5 s.
# kube-apiserver stops listening at once on TERM but then lingers well over
# 15 s (draining watches); the state here is throwaway, so we do not wait.
stop_process() {
  local name=$1 pid
  pid=$(pid_of "$name") || return 0
  if running "$name"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 5))
    while group_alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if group_alive "$pid"; then
      say "$name still running 5 s after TERM, killing it"
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
