# shellcheck shell=bash disable=SC2154,SC2034  # settings from lib.sh (sourced first by run.sh); pids, logs, process_mark are read by lib/process.sh
# `make run` without the real node (the fallback): the operator as a process on
# this machine and examples/ on kwok's simulated nodes, where pods are
# scheduled and marked Ready but no process runs (sourced).

# The operator is a process of tests/cluster/lib/process.sh (sourced by
# run.sh): pid in $run_dir/operator.pid, log in $run_dir/operator.log;
# registered with the local Prometheus as berth-run. The pods on kwok's nodes
# are not scraped: nothing answers at their IPs.
pids=$run_dir
logs=$run_dir
process_mark=target/debug/berth-operator
operator_log=$logs/operator.log
metrics_addr=${BERTH_RUN_METRICS_ADDR:-127.0.0.1:8080}
metrics_host=${metrics_addr%:*}
metrics_port=${metrics_addr##*:}
another_addr="choose another with BERTH_RUN_METRICS_ADDR=127.0.0.1:18080 (any free address)"

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

# Waits 10 s for in-flight reconciles to finish, then kills; Prometheus stops
# scraping it.
stop_host_operator() {
  stop_process operator 10
  "$prometheus_sh" unregister berth-run
}

# Ready means: the socket on the metrics port is this operator's own (not
# whatever else answers there), and it answers /readyz.
own_operator_ready() {
  owns_port operator "$metrics_port" "$metrics_host" &&
    curl -fsS --max-time 2 "http://$metrics_addr/readyz" >/dev/null 2>&1
}

start_host_operator() {
  stop_host_operator
  local taken
  if taken=$(port_in_use "$metrics_host" "$metrics_port"); then
    die "cannot start the operator on its metrics address (BERTH_RUN_METRICS_ADDR): $taken; $another_addr"
  fi
  spawn operator "$PWD/$process_mark" run --metrics-addr "$metrics_addr"
  if wait_started operator 30 "the operator's /readyz on $metrics_addr" own_operator_ready; then
    # No pod discovery finds a process: it registers with the local Prometheus
    # (job berth-operator, a file its file discovery reads within 5 s).
    "$prometheus_sh" register berth-run "$metrics_addr"
    return 0
  fi
  if running operator && ! owns_port operator "$metrics_port" "$metrics_host"; then
    die "what listens on $metrics_addr is not the operator started here (pid $(pid_of operator)):" \
      "$(port_owner "$metrics_port" "$metrics_host"); $another_addr"
  fi
  die "the operator did not become ready (log above, $operator_log)"
}
