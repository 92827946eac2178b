# shellcheck shell=bash
# The real node: containerd (with Debian's runc and CNI plugins), CoreDNS,
# kubelet and kube-proxy on this machine, next to the kwok nodes. Pods on it
# are real processes in real network namespaces on the bridge $NODE_BRIDGE.
#
# Everything it creates is listed here so down.sh can take it away again:
#   processes   one process group per component (lib/process.sh); containerd's
#               shims are found by the containerd socket on their command line
#   files       $NODE_DIR (containerd root/state, kubelet root, pod logs, CNI
#               IPAM), plus containerd's shim sockets in /run/containerd/s
#               (a path containerd v2 fixes) and libcni's cache in /var/lib/cni
#   mounts      under $NODE_DIR (pod volumes, rootfs, netns, shm)
#   network     the bridge, its veths, the pods' network namespaces (under
#               containerd's state dir), kube-proxy's nft tables, kubelet's
#               KUBE-* iptables chains
#   cgroups     /sys/fs/cgroup/<controller>/kubepods
#   sysctls     NODE_SYSCTLS, saved before the first start and restored
# node_teardown removes all of it; node_leftovers lists whatever is still
# there compared with the machine before the first start.

NODE_DIR=$BERTH_CLUSTER_DIR/node
NODE_COMPONENTS=(containerd coredns kubelet kube-proxy)
NODE_LABEL=berth.dev/node=real
NODE_TAINT=berth.dev/node=real:NoSchedule
NODE_SOCKET=$NODE_DIR/containerd.sock
# Loopback ports of the node's health endpoints (kubelet's 10250 is on $NODE_IP).
KUBELET_HEALTHZ_PORT=10248
KUBE_PROXY_HEALTHZ_PORT=10256
KUBE_PROXY_METRICS_PORT=10249
COREDNS_HEALTH_PORT=10254
COREDNS_READY_PORT=10253
# Written by the kubelet, kube-proxy, the bridge plugin or us; put back on teardown.
NODE_SYSCTLS=(
  net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  net.ipv4.conf.all.route_localnet vm.overcommit_memory vm.panic_on_oom kernel.panic
  kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes
)
# Host directories the node's programs create outside $NODE_DIR (deepest first:
# teardown removes those that did not exist before, if empty).
NODE_HOST_DIRS="/run/containerd/s /run/containerd /var/lib/cni/results /var/lib/cni /var/log/containers /run/netns /opt/containerd /var/log/pods"
PAUSE_IMAGE=berth.local/pause:$(cat "$cluster_src/versions/pause")
RUNC=${BERTH_RUNC:-$(command -v runc || echo /usr/sbin/runc)}
CNI_BIN_DIR=${BERTH_CNI_BIN_DIR:-/usr/lib/cni}

# ---- Can this machine run a node? Prints the reason when it cannot.
node_unavailable_reason() {
  [ "$(id -u)" = 0 ] || { echo "not root (the kubelet, containerd and pod networking need root)"; return; }
  [ "$(uname -s)" = Linux ] || { echo "not Linux"; return; }
  [ -x "$RUNC" ] || { echo "no runc (apt-get install runc)"; return; }
  local plugin
  for plugin in bridge host-local loopback; do
    [ -x "$CNI_BIN_DIR/$plugin" ] || { echo "no CNI plugin $CNI_BIN_DIR/$plugin (apt-get install containernetworking-plugins)"; return; }
  done
  command -v nft >/dev/null || { echo "no nft (apt-get install nftables; kube-proxy's nftables mode runs it)"; return; }
  command -v iptables >/dev/null || { echo "no iptables (apt-get install iptables; the kubelet runs it)"; return; }
  [ -d /proc/sys/net/bridge ] || { echo "no br_netfilter (modprobe br_netfilter): Service traffic between pods on one bridge needs it"; return; }
  [ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] || { echo "no memory cgroup controller"; return; }
  if ! ip link add berth-probe0 type bridge 2>/dev/null; then
    echo "cannot create a network bridge (ip link add type bridge failed: no CAP_NET_ADMIN?)"; return
  fi
  ip link del berth-probe0
}

# Decides NODE (1 or 0) for up.sh. auto: the node when this machine can run
# it; with CI=true it must. The reason it cannot is kept in
# $BERTH_CLUSTER_DIR/node-unavailable for scripts/run.sh to repeat.
resolve_node_mode() {
  local wanted=$NODE reason=""
  # 0: asked for, or decided on an earlier start (the reason file stays).
  [ "$wanted" = 0 ] && return 0
  rm -f "$BERTH_CLUSTER_DIR/node-unavailable"
  case $wanted in 1 | auto) ;; *) die "BERTH_NODE must be auto, 1 or 0, not '$wanted'" ;; esac
  node_install_deps
  reason=$(node_unavailable_reason)
  if [ -z "$reason" ]; then
    NODE=1
  elif [ "$wanted" = 1 ] || [ "${CI:-}" = true ]; then
    die "the real node cannot run on this machine: $reason (BERTH_NODE=0 starts a kwok-only cluster)"
  else
    say "no real node: $reason. The cluster runs kwok's simulated nodes only (pods get no process)."
    echo "$reason" >"$BERTH_CLUSTER_DIR/node-unavailable"
    NODE=0
  fi
  node_mode
  # A cluster directory from before the node existed: record the decision.
  grep -q '^NODE=' "$BERTH_CLUSTER_DIR/config.env" 2>/dev/null ||
    { [ -s "$BERTH_CLUSTER_DIR/config.env" ] && echo "NODE=$NODE" >>"$BERTH_CLUSTER_DIR/config.env"; } || true
}

# The sandbox image, built from Kubernetes' pause.c and loaded by
# scripts/images.sh (which make images also runs for Berth's own images).
node_load_pause() {
  local images; images=$(node_ctr images ls -q 2>/dev/null) || true
  grep -qxF "$PAUSE_IMAGE" <<<"$images" && return 0
  "$cluster_src/../../scripts/images.sh" --load pause >/dev/null
}

# Debian's runc, CNI plugins, nft and iptables, when missing and we are root.
node_install_deps() {
  local missing=()
  [ -x "$RUNC" ] || missing+=(runc)
  [ -x "$CNI_BIN_DIR/bridge" ] || missing+=(containernetworking-plugins)
  command -v nft >/dev/null || missing+=(nftables)
  command -v iptables >/dev/null || missing+=(iptables)
  [ ${#missing[@]} = 0 ] && return 0
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 0
  say "installing ${missing[*]} from Debian packages"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }
  RUNC=$(command -v runc || echo /usr/sbin/runc)
}

# ---- What the machine looked like before the node first started: the
# yardstick for "teardown leaves nothing behind". Taken once, kept until wipe.
node_state_snapshot() {
  echo "links: $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort | tr '\n' ' ')"
  echo "netns: $(ip netns list 2>/dev/null | awk '{print $1}' | sort | tr '\n' ' ')"
  echo "nft-tables: $(nft list tables 2>/dev/null | sort | tr '\n' ' ')"
  echo "iptables-chains: $(iptables-save 2>/dev/null | grep -c '^:KUBE-\|^:CNI-')"
  echo "mounts-under-node: $(awk -v d="$NODE_DIR" 'index($5, d) == 1' /proc/self/mountinfo | wc -l)"
  echo "kubepods-cgroups: $(find /sys/fs/cgroup -maxdepth 2 -name kubepods 2>/dev/null | wc -l)"
  echo "shims: $(pgrep -f -- "-address $NODE_SOCKET" | wc -l)"
  echo "dirs: $(for d in $NODE_HOST_DIRS; do [ -e "$d" ] && printf '%s ' "$d"; done)"
  local s; for s in "${NODE_SYSCTLS[@]}"; do echo "sysctl $s=$(sysctl -n "$s" 2>/dev/null)"; done
}

node_save_host_state() {
  mkdir -p "$NODE_DIR"
  [ -s "$NODE_DIR/host-before.txt" ] || node_state_snapshot >"$NODE_DIR/host-before.txt"
}

# Differences between the machine now and before the node's first start.
node_leftovers() {
  [ -s "$NODE_DIR/host-before.txt" ] || return 0
  { diff <(grep -v '^sysctl net.bridge' "$NODE_DIR/host-before.txt") <(node_state_snapshot | grep -v '^sysctl net.bridge') || true; } |
    sed -n 's/^> /now:    /p; s/^< /before: /p'
}

# ---- Network: the bridge (the node's address, the API server's and cluster
# DNS's) exists before the control plane starts, since the API server binds it.
node_network_up() {
  node_save_host_state
  if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    ip link add "$NODE_BRIDGE" type bridge
  fi
  # Not `ip addr show | grep -q`: grep's early exit fails the pipeline (pipefail).
  [[ $(ip -o -4 addr show dev "$NODE_BRIDGE") == *" $NODE_IP/"* ]] ||
    ip addr add "$NODE_IP/${NODE_POD_CIDR#*/}" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  # Pod -> Service -> pod on the same bridge: bridged frames must pass
  # kube-proxy's rules (br_netfilter), and the bridge plugin routes.
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
}

node_network_down() {
  local link
  # Veths whose pod is gone but whose host end stayed (a sandbox removed
  # without CNI DEL) are attached to our bridge; nothing else is.
  for link in $(ip -o link show master "$NODE_BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$link" 2>/dev/null || true
  done
  ip link del "$NODE_BRIDGE" 2>/dev/null || true
  nft delete table ip kube-proxy 2>/dev/null || true
  nft delete table ip6 kube-proxy 2>/dev/null || true
  # The kubelet's canary and hint chains (KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT).
  local table chain
  for table in mangle nat filter; do
    for chain in $(iptables-save -t "$table" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p'); do
      iptables -t "$table" -F "$chain" 2>/dev/null || true
      iptables -t "$table" -X "$chain" 2>/dev/null || true
    done
    for chain in $(ip6tables-save -t "$table" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p'); do
      ip6tables -t "$table" -F "$chain" 2>/dev/null || true
      ip6tables -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
  # iptables-nft leaves its (now empty) tables behind; drop those that were
  # not there before the node started.
  local before; before=$(sed -n 's/^nft-tables: //p' "$NODE_DIR/host-before.txt" 2>/dev/null)
  while read -r _ family name; do
    [ -n "$name" ] || continue
    [[ " $before " == *"table $family $name "* ]] && continue
    case $name in filter | nat | mangle) nft delete table "$family" "$name" 2>/dev/null || true ;; esac
  done < <(nft list tables 2>/dev/null)
}

node_restore_sysctls() {
  local line key value
  while read -r line; do
    line=${line#sysctl }; key=${line%%=*}; value=${line#*=}
    [ -n "$value" ] || continue
    [ "$(sysctl -n "$key" 2>/dev/null)" = "$value" ] || sysctl -qw "$key=$value" 2>/dev/null || true
  done < <(grep '^sysctl ' "$NODE_DIR/host-before.txt" 2>/dev/null)
}

# write_if_changed FILE: stdin into FILE, leaving FILE alone when the content
# is the same (kube-proxy exits when its configuration file changes).
write_if_changed() {
  local new; new=$(cat)
  [ -f "$1" ] && [ "$(cat "$1")" = "$new" ] && return 0
  printf '%s\n' "$new" >"$1.tmp" && mv "$1.tmp" "$1"
}

# ---- Configuration files, brought up to date on every start.
node_write_config() {
  mkdir -p "$NODE_DIR"/{cni/net.d,cni/ipam,kubelet,pod-logs,containerd}
  write_if_changed "$NODE_DIR/containerd.toml" <<TOML
# containerd for the local cluster's real node. Every path is under
# $NODE_DIR, except the shim sockets (/run/containerd/s, fixed in containerd v2).
version = 4
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
# Version 4 moved the servers' addresses into plugins: a [grpc] section
# would be ignored and containerd would take /run/containerd/containerd.sock.
[plugins.'io.containerd.server.v1.grpc']
  address = "$NODE_SOCKET"
[plugins.'io.containerd.server.v1.ttrpc']
  address = "$NODE_SOCKET.ttrpc"
[plugins.'io.containerd.server.v1.debug']
  address = ""
[plugins.'io.containerd.server.v1.metrics']
  address = ""
[plugins.'io.containerd.internal.v1.opt']
  path = "$NODE_DIR/containerd/opt"
[plugins.'io.containerd.nri.v1.nri']
  disable = true
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  # The pause image is built here (make images), never pulled.
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$PAUSE_IMAGE"
[plugins.'io.containerd.cri.v1.runtime']
  # Without CAP_SYS_RESOURCE a negative oom_score_adj is refused and every
  # sandbox fails ("can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  # Pod network namespaces under our state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$CNI_BIN_DIR"]
    conf_dir = "$NODE_DIR/cni/net.d"
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$RUNC"
        Root = "$NODE_DIR/runc"
        SystemdCgroup = false
TOML
  # No masquerade and no portmap: pods talk to each other, to Services and to
  # the node's own address only, so the bridge plugin adds no iptables rules.
  write_if_changed "$NODE_DIR/cni/net.d/10-berth.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "berth",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$NODE_POD_CIDR", "gateway": "$NODE_IP" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "$NODE_DIR/cni/ipam"
      }
    }
  ]
}
JSON
  write_if_changed "$NODE_DIR/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: $pki/ca.crt }
authorization: { mode: Webhook }
containerRuntimeEndpoint: unix://$NODE_SOCKET
# This machine has hybrid cgroups (v1 controllers) and no systemd; kubelet
# 1.36 refuses cgroup v1 unless told (KEP-5573).
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
podLogsDir: $NODE_DIR/pod-logs
registerWithTaints:
- { key: ${NODE_TAINT%%=*}, value: real, effect: NoSchedule }
# A shared disk that is mostly full must not evict the test pods or collect
# the images loaded by make images (they cannot be pulled back).
evictionHard: { memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1% }
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 110
YAML
  write_if_changed "$NODE_DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: { kubeconfig: $BERTH_CLUSTER_DIR/kube-proxy.kubeconfig }
hostnameOverride: $NODE_NAME
# One nft table of its own (ip kube-proxy): teardown deletes it whole.
mode: nftables
clusterCIDR: $NODE_POD_CIDR
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
# NodePorts only on the node's address, never on this machine's own interfaces.
nodePortAddresses: [$NODE_IP/32]
# Leave the host's conntrack sysctls alone.
conntrack: { maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s }
YAML
  # Cluster DNS on the node's address; names outside the cluster go to the
  # host's resolvers.
  write_if_changed "$NODE_DIR/Corefile" <<COREFILE
.:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:$COREDNS_HEALTH_PORT
    ready 127.0.0.1:$COREDNS_READY_PORT
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $BERTH_CLUSTER_DIR/coredns.kubeconfig berth
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    cache 30
}
COREFILE
}

# ---- The components (start_<name> / healthy_<name>, as in components.sh).
start_containerd() {
  node_write_config
  # containerd finds its shim (containerd-shim-runc-v2) on PATH, also when it
  # reconnects to the shims of running pods after a restart: ours first.
  PATH="$BERTH_BIN:$PATH" spawn containerd "$(b containerd)" --config "$NODE_DIR/containerd.toml" --log-level warn
}
healthy_containerd() { "$(b ctr)" --address "$NODE_SOCKET" version >/dev/null 2>&1; }

start_coredns() {
  kubectl apply -f "$cluster_src/manifests/coredns-rbac.yaml" >/dev/null
  spawn coredns "$(b coredns)" -conf "$NODE_DIR/Corefile"
}
healthy_coredns() { curl -fsS --max-time 2 "http://127.0.0.1:$COREDNS_READY_PORT/ready" >/dev/null; }

start_kubelet() {
  spawn kubelet "$(b kubelet)" \
    --config "$NODE_DIR/kubelet.yaml" \
    --kubeconfig "$BERTH_CLUSTER_DIR/kubelet.kubeconfig" \
    --root-dir "$NODE_DIR/kubelet" \
    --hostname-override "$NODE_NAME" \
    --node-ip "$NODE_IP" \
    --node-labels "$NODE_LABEL"
}
healthy_kubelet() { curl -fsS --max-time 2 "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz" | grep -q ok; }

start_kube_proxy() {
  spawn kube-proxy "$(b kube-proxy)" --config "$NODE_DIR/kube-proxy.yaml"
}
healthy_kube_proxy() { curl -fsS --max-time 2 "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz" >/dev/null; }

# After the components: the node is Ready, and the pause image is there
# (without it no pod starts; make images builds and loads it).
node_wait_ready() {
  wait_for 90 "node $NODE_NAME to be Ready" \
    kubectl wait --for=condition=Ready --timeout=5s "node/$NODE_NAME" || {
    kubectl describe node "$NODE_NAME" >&2 || true; log_tail kubelet; return 1; }
  # A node kept in etcd keeps a cordon from an interrupted teardown.
  kubectl uncordon "$NODE_NAME" >/dev/null
}

node_ctr() { "$(b ctr)" --address "$NODE_SOCKET" -n k8s.io "$@"; }

# ---- Teardown, first half (control plane still up): cordon the node and
# delete its pods, so the kubelet stops every sandbox through CNI (veths and
# IPs released). Their controllers recreate them when the node is back.
node_drain() {
  healthy_kube_apiserver 2>/dev/null && running kubelet || return 0
  kubectl cordon "$NODE_NAME" >/dev/null 2>&1 || return 0
  kubectl delete pods -A --field-selector "spec.nodeName=$NODE_NAME" --grace-period=2 --wait=false >/dev/null 2>&1 || true
  healthy_containerd || return 0
  # Running tasks, pause sandboxes included: none once the kubelet has
  # stopped every pod (and called CNI DEL for each sandbox).
  local deadline=$((SECONDS + 45))
  while [ -n "$(node_ctr tasks ls -q 2>/dev/null)" ] && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
  [ -z "$(node_ctr tasks ls -q 2>/dev/null)" ] || say "some containers outlived the drain; killing them"
}

# Second half (every component stopped): whatever is left, by our paths only.
node_teardown() {
  [ -d "$NODE_DIR" ] || return 0
  # Shims serving our containerd (their command line names its socket), and
  # the socket each leaves in /run/containerd/s when killed: containerd names
  # it sha256("<containerd socket>/<namespace>/<shim id>") (pkg/shim/util_unix.go).
  local pid id
  while read -r pid id; do
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "/run/containerd/s/$(printf '%s' "$NODE_SOCKET/k8s.io/$id" | sha256sum | cut -d' ' -f1)"
  done < <(pgrep -af -- "-address $NODE_SOCKET" | sed -n 's/^\([0-9]*\) .* -id \([0-9a-f]*\) .*/\1 \2/p')
  # Containers the drain could not stop: their processes are in kubepods cgroups.
  find /sys/fs/cgroup/*/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u |
    xargs -r kill -KILL 2>/dev/null || true
  # kube-proxy's own clean-up, then the rest of the network.
  if [ -x "$(b kube-proxy)" ]; then
    "$(b kube-proxy)" --cleanup --config "$NODE_DIR/kube-proxy.yaml" >>"$logs/kube-proxy.log" 2>&1 || true
  fi
  node_network_down
  # Mounts under the node directory, deepest first (pod volumes, rootfs, shm, netns).
  local mnt
  while read -r mnt; do
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
  done < <(awk -v d="$NODE_DIR" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  # Pod cgroups, deepest first (rmdir fails while a process is still inside).
  find /sys/fs/cgroup/*/kubepods -depth -type d -exec rmdir {} + 2>/dev/null || true
  # Per-run state that must not survive: sandboxes, IP leases, pod logs.
  rm -rf "$NODE_DIR/containerd/state" "$NODE_DIR/runc" "$NODE_DIR/cni/ipam" "$NODE_DIR/pod-logs"
  # The kubelet links every container's log into /var/log/containers (a fixed path).
  find /var/log/containers -maxdepth 1 -lname "$NODE_DIR/*" -delete 2>/dev/null || true
  local d before; before=$(sed -n 's/^dirs: //p' "$NODE_DIR/host-before.txt" 2>/dev/null)
  for d in $NODE_HOST_DIRS; do
    [[ " $before " == *" $d "* ]] || rmdir "$d" 2>/dev/null || true
  done
  node_restore_sysctls
}
