#!/usr/bin/env bash
# `make run`: Berth and the item and order services on this machine, for real.
#
#   scripts/run.sh          bring everything up, or upgrade it (idempotent), and use it once
#   scripts/run.sh --stop   uninstall both Helm releases and stop a host-process
#                           operator; the cluster keeps running (make cluster-down)
#
# With the local cluster's real node (tests/cluster/up.sh starts one when the
# machine can run it; BERTH_NODE=auto|1|0): the images loaded into the node,
# PostgreSQL open to the pods, the operator and the services installed with
# their Helm charts, then an item, an order and its read-back through the
# Services from this machine (scripts/run/on-node.sh, requests.sh), and a
# bounded wait until the local Prometheus scrapes the services' and the
# operator's pods and shows item's request rate (scripts/run/prometheus.sh).
# Without it: the operator as a process on this machine and examples/ on kwok's
# simulated nodes (scripts/run/on-kwok.sh), saying why; Prometheus scrapes
# that operator, and no pod. With CI=true a missing node is a failure, never
# the fallback.
#
# BERTH_RUN_NAMESPACE     the services' namespace (shop)
# BERTH_RUN_METRICS_ADDR  the host-process operator's metrics address (127.0.0.1:8080)
# BERTH_RUN_PROMETHEUS_TIMEOUT  seconds to wait for Prometheus' scrapes (90)
# BERTH_PROMETHEUS_PORT   the local Prometheus' port on 127.0.0.1 (9090)
# BERTH_USE_EXISTING_CLUSTER=1  the cluster of $KUBECONFIG instead of the local one
# shellcheck source-path=SCRIPTDIR/..
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/run/lib.sh
. tests/cluster/lib/process.sh
. scripts/run/cluster.sh
. scripts/run/prometheus.sh
. scripts/run/on-node.sh
. scripts/run/on-kwok.sh
. scripts/run/requests.sh

if [ "${1:-}" = --stop ]; then
  if api_answers; then
    uninstall shop "$namespace"
    uninstall berth "$operator_namespace"
  else
    say "the cluster does not answer: no release to uninstall"
  fi
  stop_host_operator
  echo "stopped (the cluster keeps running: make cluster-down stops it; PostgreSQL: scripts/postgres.sh stop)"
  exit 0
fi

# row TEXT COMMENT: one line of a summary, comments aligned.
row() { printf '  %-56s # %s\n' "$1" "$2"; }

summary_node() {
  local server item_url order_url metrics
  server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  item_url=$(service_url item)
  order_url=$(service_url order)
  metrics=$(kubectl get svc berth-operator-metrics -n "$operator_namespace" \
    -o jsonpath='http://{.spec.clusterIP}:{.spec.ports[0].port}' 2>/dev/null || true)
  echo
  echo "Berth and the shop run on node $node (real containers). From this machine:"
  echo "  export KUBECONFIG=$KUBECONFIG"
  echo "  alias kubectl=$bin/kubectl"
  row "kubectl get ms,svc,pods -n $namespace -o wide" "the MicroServices, ClusterIPs, pods"
  row "curl $item_url/v1/items" "item, through its Service"
  row "curl $order_url/v1/orders" "order, through its Service"
  row "curl -s ${metrics:-http://<berth-operator-metrics>:8080}/metrics" "the operator's metrics (berth_*)"
  if prometheus_local; then
    echo "Prometheus (a process on this machine, HTTP API only: no web UI), query API $prom_url/api/v1/query:"
    echo "  # item's requests per second, 5 min rate (recording rule, charts/berth-operator/rules/)"
    echo "  $(prom_curl "$item_rate_query")"
    echo "  # the MicroServices the operator manages (its pod's /metrics, scraped every 5 s)"
    echo "  $(prom_curl "$operator_query")"
    row "curl -s $prom_url/api/v1/targets" "what it scrapes: health, lastError"
  fi
  echo "Logs:"
  row "kubectl logs -n $namespace deploy/item" "the services (deploy/order too), JSON lines"
  row "kubectl logs -n $operator_namespace deploy/berth-operator" "the operator (release berth)"
  row "$cluster_dir/logs/" "the cluster's components, the node's too"
  row "/var/tmp/berth-postgres/server.log" "PostgreSQL"
  ! prometheus_local || row "$prom_log" "Prometheus"
  echo "Addresses and ports, all on this machine:"
  echo "  API server  $server"
  ! prometheus_local || echo "  Prometheus  ${prom_url#http://}: job pods (item and order every 10 s, the operator every 5 s)"
  echo "  node        $node_ip on the bridge berth0; pods 10.245.0.0/24; CoreDNS $node_ip:53"
  echo "  Services    10.0.0.0/24: item ${item_url#http://}, order ${order_url#http://}"
  echo "  PostgreSQL  127.0.0.1:55432, and $node_ip:55432 for pods (password); database berth_test"
  echo "Stop: make stop (helm uninstall shop and berth); make cluster-down (the cluster and"
  echo "      Prometheus); scripts/postgres.sh stop (PostgreSQL)."
}

summary_kwok() {
  echo
  echo "Berth runs WITHOUT the real node: $1"
  echo "Pods are simulated: kwok schedules them and marks them Running and Ready, but no"
  echo "container runs, so nothing answers requests. Every object Berth manages"
  echo "(Deployments, Services, HPA, PDB) is real API state."
  echo "  export KUBECONFIG=$KUBECONFIG"
  echo "  alias kubectl=$bin/kubectl"
  row "kubectl get ms -n $namespace -o wide" "image, replicas, Ready, reason, URL"
  row "kubectl get deploy,svc,hpa,pdb,pods -n $namespace" "what Berth made of them"
  row "kubectl describe ms order -n $namespace" "conditions, dependencies, events"
  row "curl -s http://$metrics_addr/metrics" "the operator's metrics (BERTH_RUN_METRICS_ADDR)"
  row "tail -f $operator_log" "the operator's log"
  if prometheus_local; then
    echo "Prometheus (a process on this machine, query API $prom_url/api/v1/query) scrapes"
    echo "the operator, registered as berth-run (job berth-operator); the pods on kwok are not"
    echo "scrapeable (nothing answers at their IPs), so the services have no series:"
    echo "  $(prom_curl "berth_managed_microservices{instance=\"$metrics_addr\"}")"
    row "curl -s $prom_url/api/v1/targets" "what it scrapes: health, lastError"
  fi
  echo "The API server listens on $(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')."
  echo "Stop: make stop (the operator); make cluster-down (the cluster)."
}

cluster_up
prometheus_up
if has_node; then
  deploy_on_node
  try_shop
  prometheus_check_node
  summary_node
else
  reason=$(node_absent_reason)
  [ "${CI:-}" != true ] || die "CI=true and the cluster has no real node ($node): $reason"
  step "no real node: $reason"
  say "falling back to kwok's simulated nodes and the operator as a host process"
  deploy_on_kwok
  kubectl get ms -n "$namespace"
  prometheus_check_kwok
  summary_kwok "$reason"
fi
