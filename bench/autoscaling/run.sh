#!/usr/bin/env bash
# How fast a MicroService scales on the local cluster, next to the HPA's
# configured periods (the floor the operator cannot beat: it is not in the
# scaling path at all, the HPA scales the Deployment directly).
#
#   bench/autoscaling/run.sh [ROUNDS]     (default 3; needs `make cluster-up`,
#                                          `cargo build -p berth-operator`)
#
# Each round: a load step on every pod of a 1..5 MicroService, then the load
# removed. Measured from the step: the first scale-up (Deployment
# spec.replicas > 1) and the final count (5 asked for and 5 Ready); from the
# removal: scale-down (back to 1 asked for). "Load" is a stand-in, as in the
# e2e test: kwok reports pod CPU from the annotation kwok.x-k8s.io/usage-cpu
# (500m on a 100m request, target 50 %). Only CPU: requests per second come
# from the pods' own request counters (tests/cluster/custom-metrics scrapes
# their /metrics), which kwok pods, running no process, do not have.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
ROUNDS=${1:-3}
CLUSTER_DIR=${BERTH_CLUSTER_DIR:-$HOME/.cache/berth/cluster}
export KUBECONFIG=${KUBECONFIG:-$CLUSTER_DIR/kubeconfig}
KUBECTL=${KUBECTL:-$HOME/.cache/berth/bin/kubectl}
OPERATOR=${BERTH_OPERATOR_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/berth-operator}
k() { "$KUBECTL" "$@"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# The configured periods, read from the running processes where we can.
flag_of() { # PIDFILE FLAG DEFAULT
  local pid value=""
  pid=$(cat "$CLUSTER_DIR/pids/$1" 2>/dev/null || true)
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ]; then
    value=$(tr '\0' '\n' <"/proc/$pid/cmdline" | awk -v f="$2" 'p { print; exit } $0 == f { p = 1 } index($0, f "=") == 1 { sub(/^[^=]*=/, ""); print; exit }')
  fi
  echo "${value:-$3}"
}
SYNC=$(flag_of kube-controller-manager.pid --horizontal-pod-autoscaler-sync-period "15s (default)")
STABILIZATION=$(flag_of kube-controller-manager.pid --horizontal-pod-autoscaler-downscale-stabilization "5m0s (default)")
RESOLUTION=$(flag_of metrics-server.pid --metric-resolution "60s (default)")
WINDOW=15 # behavior.scaleDown.stabilizationWindowSeconds of the bench MicroService

ns=bench-autoscaling-$(date +%s)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
oplog=$(mktemp /tmp/bench-autoscaling-operator.XXXX.log)
loadpid=""
cleanup() {
  if [ -n "$loadpid" ]; then kill "$loadpid" 2>/dev/null || true; fi
  if [ -n "${oppid:-}" ]; then kill "$oppid" 2>/dev/null || true; fi
  k delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

k apply --server-side --force-conflicts --field-manager berth-bench -f "$root/crds/microservice.yaml" >/dev/null
k wait --for=condition=Established crd/microservices.berth.dev --timeout=30s >/dev/null
k create namespace "$ns" >/dev/null
"$OPERATOR" run --namespace "$ns" --metrics-addr "127.0.0.1:$port" >"$oplog" 2>&1 &
oppid=$!

# load VALUE: keep every pod of the service annotated with its CPU use (new pods too).
load() {
  [ -n "$loadpid" ] && kill "$loadpid" 2>/dev/null; loadpid=""
  ( while true; do
      for pod in $(k -n "$ns" get pods -l berth.dev/microservice=web -o name 2>/dev/null); do
        k -n "$ns" annotate --overwrite "$pod" "kwok.x-k8s.io/usage-cpu=$1" >/dev/null 2>&1 || true
      done
      sleep 1
    done ) &
  loadpid=$!
}
replicas() { k -n "$ns" get deploy web -o jsonpath='{.spec.replicas} {.status.readyReplicas}' 2>/dev/null; }
wait_until() { # TIMEOUT CHECK...: seconds-since-epoch when CHECK first holds
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@"; do
    [ "$(date +%s)" -ge "$deadline" ] && { echo "timed out: $*" >&2; return 1; }
    sleep 0.25
  done
  now
}
above_one() { read -r want _ <<<"$(replicas)"; [ "${want:-0}" -gt 1 ]; }
at() { read -r want ready <<<"$(replicas)"; [ "${want:-0}" = "$1" ] && [ "${ready:-0}" = "$2" ]; }
asks() { read -r want _ <<<"$(replicas)"; [ "${want:-0}" = "$1" ]; }
hpa_active() { [ "$(k -n "$ns" get hpa web -o jsonpath='{.status.conditions[?(@.type=="ScalingActive")].status}' 2>/dev/null)" = True ]; }

# bench NAME TARGET LOADED IDLE
bench() {
  local name=$1 target=$2 loaded=$3 idle=$4
  k -n "$ns" delete ms web --ignore-not-found --wait=true >/dev/null
  k -n "$ns" apply --server-side --field-manager berth-bench -f - >/dev/null <<YAML
apiVersion: berth.dev/v1alpha1
kind: MicroService
metadata: { name: web }
spec:
  image: registry.local/web:1.0.0
  resources: { requests: { cpu: 100m } }
  autoscaling:
    minReplicas: 1
    maxReplicas: 5
    $target
    behavior:
      scaleDown: { stabilizationWindowSeconds: $WINDOW }
YAML
  load "$idle"
  wait_until 90 at 1 1 >/dev/null
  wait_until 90 hpa_active >/dev/null
  sleep 12 # the idle level is what the HPA last read
  local round
  for round in $(seq "$ROUNDS"); do
    local t0 t_first t_final t1 t_down
    t0=$(now); load "$loaded"
    t_first=$(wait_until 120 above_one)
    t_final=$(wait_until 120 at 5 5)
    t1=$(now); load "$idle"
    t_down=$(wait_until 180 asks 1)
    wait_until 60 at 1 1 >/dev/null
    printf '| %s | %s | %s | %s | %s |\n' "$name" "$round" "$(secs "$t0" "$t_first")" "$(secs "$t0" "$t_final")" "$(secs "$t1" "$t_down")"
    sleep 5
  done
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r); $ROUNDS rounds"
echo
echo "Configured: HPA sync period $SYNC; controller-manager downscale stabilization $STABILIZATION,"
echo "overridden per HPA by behavior.scaleDown.stabilizationWindowSeconds=$WINDOW s; metrics-server"
echo "resolution $RESOLUTION; HPA default scale-up policy (max of 4 pods or 100 % per 15 s: 1 -> 5 in one step)."
echo
echo "| metric | round | load step -> first scale-up (s) | load step -> 5 Ready (s) | load removed -> 1 asked for (s) |"
echo "| --- | --- | --- | --- | --- |"
bench "cpu 50 % (500m of 100m)" "targetCPUUtilizationPercentage: 50" 500m 5m
