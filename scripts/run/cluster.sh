# shellcheck shell=bash disable=SC2154  # its settings come from lib.sh, sourced first by run.sh
# The cluster under `make run`, and whether it has its real node (sourced).

# Starts the local cluster (idempotent), keeping what up.sh said: when the
# real node is missing, its reason is in there.
cluster_up() {
  step "cluster (tests/cluster/up.sh; its output also in $run_dir/cluster-up.log)"
  tests/cluster/up.sh 2>&1 >/dev/null | tee "$run_dir/cluster-up.log" | sed 's/^/    /'
}

# The node's state, as up.sh recorded it in config.env.
cluster_setting() {
  (
    # shellcheck disable=SC1091  # written by up.sh
    if [ -s "$cluster_dir/config.env" ]; then . "$cluster_dir/config.env"; fi
    echo "${!1:-}"
  )
}

has_node() {
  if [ "${BERTH_USE_EXISTING_CLUSTER:-}" = 1 ]; then
    kubectl get node "$node" >/dev/null 2>&1
  else
    [ "$(cluster_setting NODE)" = 1 ]
  fi
}

# Why the cluster runs without its node, in up.sh's words (it keeps the
# reason the machine cannot run one in node-unavailable).
node_absent_reason() {
  if [ "${BERTH_USE_EXISTING_CLUSTER:-}" = 1 ]; then
    echo "the cluster of KUBECONFIG=$KUBECONFIG has no node $node"
  elif [ "${BERTH_NODE:-}" = 0 ]; then
    echo "BERTH_NODE=0 asks for a kwok-only cluster"
  elif [ -s "$cluster_dir/node-unavailable" ]; then
    cat "$cluster_dir/node-unavailable"
  elif [ "$(cluster_setting NODE)" = 0 ]; then
    echo "the cluster in $cluster_dir was first started kwok-only and stays so (its config.env says NODE=0);" \
      "make cluster-wipe, then make run, decides again"
  else
    echo "up.sh recorded no reason (its output: $run_dir/cluster-up.log)"
  fi
}
