#!/usr/bin/env bash
# Checks that the running cluster does what the e2e tests rely on, in a
# namespace of its own that it deletes afterwards:
#   /version, 3 Ready kwok nodes, a Deployment reaching 3/3 Ready, deleted pods
#   going away, garbage collection of owned objects, `kubectl top` showing the
#   CPU of the kwok usage annotation, and (with --hpa) an HPA scaling up and down.
#
#   tests/cluster/smoke.sh [--hpa]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
hpa=0; [ "${1:-}" = --hpa ] && hpa=1

if using_existing_cluster; then kubectl() { "$BERTH_BIN/kubectl" "$@"; }; fi
ns=berth-smoke-$$
k() { kubectl -n "$ns" "$@"; }
t0=$SECONDS
step() { echo "[smoke] $(printf '%3ds' $((SECONDS - t0))) $*"; }
fail() { echo "[smoke] FAILED: $*" >&2; k get all >&2 || true; exit 1; }
# until_true SECONDS DESCRIPTION COMMAND...: condition polling, no fixed sleeps.
until_true() {
  local timeout=$1 what=$2; shift 2
  wait_for "$timeout" "$what" "$@" || fail "$what (within ${timeout}s)"
}
trap 'kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true' EXIT

version=$(kubectl get --raw /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')
step "server version $version"

ready_nodes() { [ "$(kubectl get nodes -l type=kwok --no-headers | awk '$2 == "Ready"' | wc -l)" -ge 3 ]; }
until_true 60 "3 kwok nodes Ready" ready_nodes
step "3 kwok nodes Ready"

kubectl create namespace "$ns" >/dev/null
until_true 30 "default ServiceAccount in $ns" k get serviceaccount default
k apply -f - >/dev/null <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {kwok.x-k8s.io/usage-cpu: 250m, kwok.x-k8s.io/usage-memory: 64Mi}
    spec:
      containers:
      - {name: web, image: example.invalid/web, resources: {requests: {cpu: 100m, memory: 64Mi}}}
YAML
until_true 90 "Deployment web 3/3 Ready" k rollout status deployment/web --timeout=5s
step "Deployment 3/3 Ready"

cpu_shown() { k top pods --no-headers 2>/dev/null | awk '$2 ~ /^2[45][0-9]m$/' | grep -q .; }
until_true 90 "kubectl top to show ~250m CPU from the usage annotation" cpu_shown
step "kubectl top: $(k top pods --no-headers | head -1)"

k delete deployment web --wait=false >/dev/null
no_pods() { [ -z "$(k get pods,replicasets --no-headers 2>/dev/null)" ]; }
until_true 60 "pods and ReplicaSet of the deleted Deployment to be gone" no_pods
step "deleted Deployment: ReplicaSet and pods gone (garbage collector + kwok pod-delete)"

k create configmap owner >/dev/null
uid=$(k get configmap owner -o jsonpath='{.metadata.uid}')
k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: owned
  ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: owner, uid: $uid}]
YAML
k delete configmap owner >/dev/null
owned_gone() { ! k get configmap owned >/dev/null 2>&1; }
until_true 60 "owned ConfigMap to be garbage-collected" owned_gone
step "owned ConfigMap garbage-collected"

if [ $hpa = 1 ]; then
  k apply -f - >/dev/null <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: busy}
spec:
  replicas: 1
  selector: {matchLabels: {app: busy}}
  template:
    metadata:
      labels: {app: busy}
      annotations: {kwok.x-k8s.io/usage-cpu: 500m}
    spec:
      containers:
      - {name: busy, image: example.invalid/busy, resources: {requests: {cpu: 100m}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: busy}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: busy}
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
YAML
  replicas() { [ "$(k get deployment busy -o jsonpath='{.spec.replicas}/{.status.readyReplicas}')" = "$1/$1" ]; }
  s=$SECONDS
  until_true 120 "HPA to scale busy up to 4" replicas 4
  step "HPA scaled up 1 -> 4 in $((SECONDS - s))s (usage 500m of 100m requested)"
  k patch deployment busy -p '{"spec":{"template":{"metadata":{"annotations":{"kwok.x-k8s.io/usage-cpu":"5m"}}}}}' >/dev/null
  s=$SECONDS
  until_true 120 "HPA to scale busy down to 1" replicas 1
  step "HPA scaled down 4 -> 1 in $((SECONDS - s))s after the usage annotation was lowered"
fi
echo "[smoke] ok: cluster passed every check in $((SECONDS - t0))s"
