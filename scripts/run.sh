#!/usr/bin/env bash
# `make run`: the CRD, the operator (in the background) and the item and order
# examples on the local cluster, which `make run` has already started (or on
# the cluster in KUBECONFIG with BERTH_USE_EXISTING_CLUSTER=1).
#   scripts/run.sh          start (again) and apply the examples
#   scripts/run.sh --stop   stop the operator
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(tests/cluster/build.sh --print)
run_dir="$HOME/.cache/berth/run"
pid_file="$run_dir/operator.pid"
log="$run_dir/operator.log"
namespace=${BERTH_RUN_NAMESPACE:-shop}
metrics_addr=${BERTH_RUN_METRICS_ADDR:-127.0.0.1:8080}
if [ "${BERTH_USE_EXISTING_CLUSTER:-}" != 1 ]; then
  export KUBECONFIG="${BERTH_CLUSTER_DIR:-$HOME/.cache/berth/cluster}/kubeconfig"
fi
kubectl() { "$bin/kubectl" "$@"; }
mkdir -p "$run_dir"

stop_operator() {
  if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    kill -TERM "$(cat "$pid_file")"
    for _ in $(seq 50); do kill -0 "$(cat "$pid_file")" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -f "$pid_file"
}

if [ "${1:-}" = "--stop" ]; then
  stop_operator
  echo "operator stopped (the cluster keeps running: make cluster-down stops it)"
  exit 0
fi

echo "==> CRD"
kubectl apply --server-side --field-manager=berth-run -f crds/microservice.yaml >/dev/null
kubectl wait --for=condition=Established crd/microservices.berth.dev --timeout=60s >/dev/null

echo "==> operator (log: $log)"
stop_operator
nohup target/debug/berth-operator run --metrics-addr "$metrics_addr" >>"$log" 2>&1 &
echo $! >"$pid_file"
for _ in $(seq 150); do
  curl -fsS "http://$metrics_addr/readyz" >/dev/null 2>&1 && break
  kill -0 "$(cat "$pid_file")" 2>/dev/null || { echo "the operator exited:"; tail -n 20 "$log"; exit 1; }
  sleep 0.2
done
curl -fsS "http://$metrics_addr/readyz" >/dev/null || { echo "the operator is not ready:"; tail -n 20 "$log"; exit 1; }

echo "==> examples in namespace $namespace"
kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply --server-side --field-manager=berth-run -n "$namespace" -f examples/item.yaml -f examples/order.yaml
kubectl wait --for=condition=Ready -n "$namespace" ms/item ms/order --timeout=120s

cat <<EOT

Berth is running. Look at:
  export KUBECONFIG=$KUBECONFIG
  $bin/kubectl get ms -n $namespace                 # image, desired/ready replicas, autoscaling range, Ready
  $bin/kubectl get ms -n $namespace -o wide         # + reason and URL
  $bin/kubectl get deploy,svc,hpa,pdb,pods -n $namespace
  $bin/kubectl describe ms order -n $namespace      # conditions, dependencies, events
  curl -s http://$metrics_addr/metrics | grep ^berth_   # the operator's metrics
  tail -f $log                                      # the operator's log
Pods run on kwok's simulated nodes (no containers): they become Running and Ready,
so everything Berth manages is real API state. Stop: make stop; make cluster-down.
EOT
kubectl get ms -n "$namespace"
