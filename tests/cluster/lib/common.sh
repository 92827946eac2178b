# shellcheck shell=bash
# Shared settings and helpers for the local cluster scripts (sourced, not run).
# Everything the cluster writes lives under $BERTH_CLUSTER_DIR, never in the repo.

cluster_src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BERTH_CLUSTER_DIR=${BERTH_CLUSTER_DIR:-$HOME/.cache/berth/cluster}
BERTH_BIN=${BERTH_BIN:-$("$cluster_src/build.sh" --print)}

# Loopback ports. Override any of them to run beside something that already
# uses the default (e.g. a second cluster with its own BERTH_CLUSTER_DIR).
ETCD_PORT=${BERTH_ETCD_PORT:-2379}
ETCD_PEER_PORT=${BERTH_ETCD_PEER_PORT:-2380}
APISERVER_PORT=${BERTH_APISERVER_PORT:-6443}
CONTROLLER_MANAGER_PORT=${BERTH_CONTROLLER_MANAGER_PORT:-10257}
SCHEDULER_PORT=${BERTH_SCHEDULER_PORT:-10259}
KWOK_PORT=${BERTH_KWOK_PORT:-10247}
METRICS_SERVER_PORT=${BERTH_METRICS_SERVER_PORT:-4443}

# Services get 10.0.0.0/24 (the `kubernetes` Service is 10.0.0.1); kwok hands
# out fake pod IPs from a separate, larger range so ~1000 pods fit.
# BERTH_SERVICE_CIDR widens it for a cluster of its own (the scale benchmark:
# a /24 holds 253 Services). Wipe the state directory to change it.
SERVICE_CIDR=${BERTH_SERVICE_CIDR:-10.0.0.0/24}
POD_CIDR=10.244.0.0/16

# The real node (lib/node.sh): BERTH_NODE=auto (default) runs it when the
# machine can (root, runc, ...; with CI=true it must), 1 requires it, 0 keeps
# the cluster kwok-only (the scale and fault clusters). One machine holds one
# real node: its bridge and addresses are fixed.
NODE=${BERTH_NODE:-auto}
NODE_NAME=berth-node-0
NODE_BRIDGE=berth0
NODE_POD_CIDR=10.245.0.0/24
# The bridge's address: the node's InternalIP, and with the node on also the
# API server's and cluster DNS's address (pods cannot reach loopback).
NODE_IP=10.245.0.1

# A cluster directory keeps the ports it was first started with (config.env,
# written by up.sh), so component.sh, status.sh and down.sh reach that cluster
# even from a shell with other BERTH_*_PORT values. `down.sh --wipe` to change.
if [ -s "$BERTH_CLUSTER_DIR/config.env" ]; then
  . "$BERTH_CLUSTER_DIR/config.env"
fi

# What follows from NODE (auto until up.sh decides it on a first start).
node_mode() {
  # Start order; stop order is the reverse.
  COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok metrics-server)
  if [ "$NODE" = 1 ]; then COMPONENTS+=(containerd coredns kubelet kube-proxy); fi
  # With the node the API server listens on the node address, which the host
  # reaches as well as the pods; without it on loopback only.
  if [ "$NODE" = 1 ]; then APISERVER_HOST=$NODE_IP; else APISERVER_HOST=127.0.0.1; fi
  APISERVER_URL=https://$APISERVER_HOST:$APISERVER_PORT
}
node_mode

pki=$BERTH_CLUSTER_DIR/pki
logs=$BERTH_CLUSTER_DIR/logs
pids=$BERTH_CLUSTER_DIR/pids
KUBECONFIG_ADMIN=$BERTH_CLUSTER_DIR/kubeconfig

save_config() {
  [ -s "$BERTH_CLUSTER_DIR/config.env" ] && return 0
  mkdir -p "$BERTH_CLUSTER_DIR"
  local v
  for v in ETCD_PORT ETCD_PEER_PORT APISERVER_PORT CONTROLLER_MANAGER_PORT SCHEDULER_PORT KWOK_PORT METRICS_SERVER_PORT NODE; do
    echo "$v=${!v}"
  done >"$BERTH_CLUSTER_DIR/config.env"
}

say() { echo "[cluster] $*" >&2; }
die() { echo "[cluster] ERROR: $*" >&2; exit 1; }

kubectl() { "$BERTH_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# The API server as the admin user, without going through kubectl.
api_get() {
  curl -fsS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "$APISERVER_URL$1"
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s.
wait_for() {
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Serialises up/down/component changes of one cluster directory.
lock_cluster() {
  mkdir -p "$BERTH_CLUSTER_DIR"
  exec 8>"$BERTH_CLUSTER_DIR/.lock"
  flock 8
}

# Using a cluster we did not start (kind, a real one): explicit opt-in only, so
# a KUBECONFIG left pointing at a shared cluster is never used by accident.
using_existing_cluster() { [ "${BERTH_USE_EXISTING_CLUSTER:-0}" = 1 ]; }
