# shellcheck shell=bash disable=SC2154  # its settings come from lib.sh, sourced first by run.sh
# `make run` without the real node (the fallback): the operator as a process on
# this machine and examples/ on kwok's simulated nodes, where pods are
# scheduled and marked Ready but no process runs (sourced).
pid_file=$run_dir/operator.pid
operator_log=$run_dir/operator.log
metrics_addr=${BERTH_RUN_METRICS_ADDR:-127.0.0.1:8080}

deploy_on_kwok() {
  # A run with the node installed the charts: their operator would be a second
  # writer, and helm owns item and order.
  uninstall shop "$namespace"
  uninstall berth "$operator_namespace"
  step "operator build (cargo build -p berth-operator)"
  cargo build -q -p berth-operator
  step "CRD"
  apply_crd
  step "operator, a process on this machine (log: $operator_log)"
  start_host_operator
  step "examples/item.yaml and examples/order.yaml in namespace $namespace"
  ensure_namespace "$namespace"
  kubectl apply --server-side --field-manager=berth-run -n "$namespace" -f examples/item.yaml -f examples/order.yaml >/dev/null
  wait_ready item order
}

stop_host_operator() {
  if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    kill -TERM "$(cat "$pid_file")"
    for _ in $(seq 50); do kill -0 "$(cat "$pid_file")" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -f "$pid_file"
}

# The listening sockets on the metrics port, with their processes.
listeners() { ss -ltnpH "sport = :${metrics_addr##*:}" 2>/dev/null; }

# Something else may answer /readyz on that address (127.0.0.1:8080 is a
# popular port): only a socket of the process started here counts.
start_host_operator() {
  stop_host_operator
  local host=${metrics_addr%:*} port=${metrics_addr##*:} other="choose another with BERTH_RUN_METRICS_ADDR=127.0.0.1:18080 (any free address)"
  if (exec 3<>"/dev/tcp/${host//[\[\]]/}/$port") 2>/dev/null; then
    die "$metrics_addr, the operator's metrics address, is already taken: $(listeners | tr -s ' ' || true); $other"
  fi
  nohup target/debug/berth-operator run --metrics-addr "$metrics_addr" >>"$operator_log" 2>&1 &
  local pid=$!
  echo "$pid" >"$pid_file"
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$operator_log" >&2; die "the operator exited (log above, $operator_log)"; }
    if [[ $(listeners) == *"pid=$pid,"* ]] && curl -fsS --max-time 2 "http://$metrics_addr/readyz" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  [[ $(listeners) == *"pid=$pid,"* ]] ||
    die "what listens on $metrics_addr is not the operator started here (pid $pid): $(listeners | tr -s ' ' || true); $other"
  tail -n 20 "$operator_log" >&2
  die "the operator is not ready after 30 s (log above, $operator_log)"
}
