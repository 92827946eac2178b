#!/usr/bin/env bash
# The custom metrics API (custom.metrics.k8s.io) on the local cluster:
# builds berth-custom-metrics (main.go and its *.go) from Go modules, starts it on
# loopback and registers it with the aggregation layer; `down` unregisters
# it first, then stops it (an APIService without a server behind it makes
# namespace deletion hang for everyone on the cluster).
#
#   adapter.sh up | down | status
#
# State: $BERTH_CLUSTER_DIR/custom-metrics/ (adapter.pid and adapter.log, kept
# by lib/process.sh as for the cluster's components; serving certificate).
# Binary: ~/.cache/berth/custom-metrics/berth-custom-metrics-<hash of go.sum,
# go.mod and the non-test *.go files>.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cluster_src=$(cd "$here/.." && pwd)
# shellcheck source=tests/cluster/lib/common.sh
. "$cluster_src/lib/common.sh"
# shellcheck source=tests/cluster/lib/pki.sh
. "$cluster_src/lib/pki.sh"
# shellcheck source=tests/cluster/lib/process.sh
. "$cluster_src/lib/process.sh"

PORT=${BERTH_CUSTOM_METRICS_PORT:-6643}
state=$BERTH_CLUSTER_DIR/custom-metrics
# lib/process.sh keeps the adapter's pid and log here, not with the components'.
pids=$state
logs=$state
log=$logs/adapter.log
cache=${BERTH_CACHE:-$HOME/.cache/berth}/custom-metrics
export PATH=$PATH:/usr/local/go/bin

binary() {
  local src key
  # Every source file of the binary (main.go, exposition.go, tracker.go), not the tests.
  mapfile -t src < <(find "$here" -maxdepth 1 -name '*.go' ! -name '*_test.go' | sort)
  key=$(cat "$here/go.sum" "$here/go.mod" "${src[@]}" | sha256sum | cut -c1-12)
  local bin=$cache/berth-custom-metrics-$key
  if [ ! -x "$bin" ]; then
    mkdir -p "$cache"
    say "building berth-custom-metrics (sigs.k8s.io/custom-metrics-apiserver; ~5 min cold on 2 cores)"
    (cd "$here" && CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" . && mv "$bin.tmp" "$bin")
  fi
  echo "$bin"
}

# Ready: the adapter started here holds the port (not something that was
# there before) and answers.
ready() {
  owns_port adapter "$PORT" 127.0.0.1 && curl -fsSk --max-time 2 "https://127.0.0.1:$PORT/healthz"
}

register() {
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata:
  name: berth-custom-metrics
  namespace: kube-system
spec:
  type: ExternalName
  externalName: 127.0.0.1
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta2.custom.metrics.k8s.io
spec:
  group: custom.metrics.k8s.io
  version: v1beta2
  groupPriorityMinimum: 100
  versionPriority: 200
  service: { name: berth-custom-metrics, namespace: kube-system, port: $PORT }
  caBundle: $(base64 -w0 <"$pki/ca.crt")
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta1.custom.metrics.k8s.io
spec:
  group: custom.metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  service: { name: berth-custom-metrics, namespace: kube-system, port: $PORT }
  caBundle: $(base64 -w0 <"$pki/ca.crt")
YAML
  kubectl apply -f "$here/rbac.yaml" >/dev/null
  wait_for 60 "APIService v1beta2.custom.metrics.k8s.io to be Available" \
    kubectl wait --for=condition=Available --timeout=5s apiservice/v1beta2.custom.metrics.k8s.io
}

up() {
  if running adapter; then say "custom metrics adapter already running (pid $(pid_of adapter))"; register; return; fi
  local taken
  if taken=$(port_in_use 127.0.0.1 "$PORT"); then
    die "cannot start the custom metrics adapter: $taken; stop it, or choose another port with BERTH_CUSTOM_METRICS_PORT"
  fi
  local bin; bin=$(binary)
  mkdir -p "$state"
  # Serving certificate from the cluster CA for the name the aggregator checks.
  cert custom-metrics-serving berth-custom-metrics "" \
    "IP:127.0.0.1,DNS:localhost,DNS:berth-custom-metrics.kube-system.svc"
  # Like kwok, it runs as the admin (system:masters): it lists pods, reads the
  # front-proxy CA from kube-system/extension-apiserver-authentication and
  # delegates authn/authz (TokenReview, SubjectAccessReview).
  spawn adapter "$bin" \
    --lister-kubeconfig "$KUBECONFIG_ADMIN" \
    --authentication-kubeconfig "$KUBECONFIG_ADMIN" \
    --authorization-kubeconfig "$KUBECONFIG_ADMIN" \
    --bind-address 127.0.0.1 --secure-port "$PORT" \
    --tls-cert-file "$pki/custom-metrics-serving.crt" \
    --tls-private-key-file "$pki/custom-metrics-serving.key"
  wait_started adapter 60 "the custom metrics adapter to listen on $PORT" ready ||
    die "the custom metrics adapter did not start (log above, $log)"
  register
  say "custom.metrics.k8s.io served by berth-custom-metrics (pid $(pid_of adapter), port $PORT, log $log)"
}

down() {
  if api_get /readyz >/dev/null 2>&1; then
    kubectl delete apiservice v1beta2.custom.metrics.k8s.io v1beta1.custom.metrics.k8s.io \
      --ignore-not-found --wait=false >/dev/null 2>&1 || true
  fi
  stop_process adapter 5
}

status() {
  if running adapter; then echo "custom-metrics  running (pid $(pid_of adapter), port $PORT)"; else echo "custom-metrics  stopped"; return 1; fi
}

if [ "${BERTH_USE_EXISTING_CLUSTER:-}" = 1 ]; then
  say "custom metrics: skipped on an existing cluster (it brings its own custom.metrics.k8s.io, e.g. prometheus-adapter)"
  exit 0
fi

# An adapter started before lib/process.sh managed it left custom-metrics/pid.
if [ -s "$state/pid" ] && [ ! -s "$pids/adapter.pid" ]; then mv "$state/pid" "$pids/adapter.pid"; fi

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
