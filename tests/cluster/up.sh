#!/usr/bin/env bash
# Starts the local Kubernetes cluster (or checks one that runs): etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kwok with 3 fake
# nodes, metrics-server, and the real node (containerd, CoreDNS, kubelet,
# kube-proxy; lib/node.sh) where the machine can run it. Idempotent:
# components already running and healthy are left alone. Builds the binaries
# first if they are missing.
#
#   tests/cluster/up.sh
#
# BERTH_CLUSTER_DIR  state: certificates, etcd data, logs, pids, kubeconfig
#                    (default ~/.cache/berth/cluster)
# BERTH_USE_EXISTING_CLUSTER=1  use the cluster $KUBECONFIG points at instead:
#                    only check that it answers, start nothing
# BERTH_ASSETS / KUBEBUILDER_ASSETS  directory of ready-made binaries (build.sh)
# BERTH_SKIP_BUILD=1 use the binaries in the cache as they are (no build.sh)
# BERTH_NODE         auto (default), 1 or 0: the real node, see lib/common.sh
# BERTH_*_PORT       ports, see lib/common.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"

if using_existing_cluster; then
  : "${KUBECONFIG:?BERTH_USE_EXISTING_CLUSTER=1 needs KUBECONFIG}"
  [ "${BERTH_SKIP_BUILD:-0}" = 1 ] || "$here/build.sh" kubectl >/dev/null
  "$BERTH_BIN/kubectl" get --raw /readyz >/dev/null ||
    die "existing cluster at KUBECONFIG=$KUBECONFIG is not reachable or not ready"
  say "using the existing cluster of KUBECONFIG=$KUBECONFIG (nothing started)"
  "$BERTH_BIN/kubectl" version 2>/dev/null | sed 's/^/[cluster] /' >&2 || true
  exit 0
fi

. "$here/lib/process.sh"
. "$here/lib/pki.sh"
. "$here/lib/components.sh"

[ "${BERTH_SKIP_BUILD:-0}" = 1 ] || "$here/build.sh" >/dev/null
lock_cluster
start=$SECONDS

resolve_node_mode
save_config
make_pki
make_kubeconfigs
if [ "$NODE" = 1 ]; then node_network_up; fi

if ! start_component etcd; then
  # etcd runs without fsync: after a machine restart its data can be torn.
  # The data is throwaway, so set it aside once and start empty.
  [ -d "$BERTH_CLUSTER_DIR/etcd" ] || die "etcd failed to start (log: $logs/etcd.log)"
  aside=$BERTH_CLUSTER_DIR/etcd.broken-$(date -u +%Y%m%dT%H%M%S)
  say "etcd failed on its existing data; moving it to $aside and starting empty"
  mv "$BERTH_CLUSTER_DIR/etcd" "$aside"
  start_component etcd || die "etcd failed to start (log: $logs/etcd.log)"
fi
for c in kube-apiserver kube-controller-manager kube-scheduler kwok; do
  start_component "$c" || die "$c failed to start (log: $logs/$c.log)"
done

# Fake nodes: kwok marks them Ready and keeps their leases fresh.
for i in 0 1 2; do
  sed "s/NODE_NAME/kwok-node-$i/g" "$here/manifests/kwok-node.yaml"
  echo ---
done | kubectl apply -f - >/dev/null
wait_for 60 "the 3 kwok nodes to be Ready" \
  kubectl wait --for=condition=Ready --timeout=5s node/kwok-node-0 node/kwok-node-1 node/kwok-node-2 || {
  kubectl get nodes >&2 || true; log_tail kwok; die "kwok nodes did not become Ready"; }
# metrics-server scrapes a node at its InternalIP. Nodes kept in etcd from an
# earlier run have been seen without addresses (kwok only writes them while
# initialising a node), which silently stops every CPU-based HPA: put them back.
for i in 0 1 2; do
  if [ -z "$(kubectl get node "kwok-node-$i" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')" ]; then
    kubectl patch node "kwok-node-$i" --subresource=status --type=merge \
      -p "{\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"127.0.0.1\"},{\"type\":\"Hostname\",\"address\":\"kwok-node-$i\"}]}}" >/dev/null
    say "kwok-node-$i had no address; restored 127.0.0.1"
  fi
done

if running metrics-server && healthy metrics-server; then
  register_metrics_server || die "metrics-server's APIService did not become Available"
else
  start_component metrics-server || die "metrics-server failed to start (log: $logs/metrics-server.log)"
  register_metrics_server || { log_tail metrics-server; die "metrics-server's APIService did not become Available"; }
fi

if [ "$NODE" = 1 ]; then
  start_component containerd || die "containerd failed to start (log: $logs/containerd.log)"
  node_load_pause || die "the pause image could not be built or loaded into the node's containerd"
  for c in coredns kubelet kube-proxy; do
    start_component "$c" || die "$c failed to start (log: $logs/$c.log)"
  done
  node_wait_ready || die "node $NODE_NAME did not become Ready (log: $logs/kubelet.log)"
fi

# Pods need their namespace's default ServiceAccount (made by the controller
# manager) before the ServiceAccount admission plugin lets them in.
wait_for 60 "the default ServiceAccount" kubectl -n default get serviceaccount default ||
  { log_tail kube-controller-manager; die "kube-controller-manager did not create the default ServiceAccount"; }

if [ "$NODE" = 1 ]; then
  say "real node $NODE_NAME at $NODE_IP: pods with nodeSelector $NODE_LABEL and a toleration of ${NODE_TAINT} run there"
fi
say "cluster ready in $((SECONDS - start))s: $(api_get /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p') at $APISERVER_URL"
say "kubeconfig: $KUBECONFIG_ADMIN"
say "logs:       $logs/<component>.log"
say "kubectl:    $BERTH_BIN/kubectl"
say "stop with tests/cluster/down.sh (or make cluster-down)"
echo "export KUBECONFIG=$KUBECONFIG_ADMIN"
