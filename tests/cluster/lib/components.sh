# shellcheck shell=bash
# How each component is started and how we know it is healthy. One function
# pair per component: start_<name> and healthy_<name> (dashes as underscores).

b() { echo "$BERTH_BIN/$1"; }

# ---- etcd: plain HTTP on loopback; fsync off because the data is throwaway.
start_etcd() {
  spawn etcd "$(b etcd)" \
    --name berth \
    --data-dir "$BERTH_CLUSTER_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "berth=http://127.0.0.1:$ETCD_PEER_PORT" \
    --listen-metrics-urls "" \
    --unsafe-no-fsync \
    --log-level warn
}
healthy_etcd() { curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }

# ---- kube-apiserver. Without the real node: on loopback, and no
# --advertise-address (it defaults to the host's address, which only appears
# in the `kubernetes` Endpoints; 127.0.0.1 there fails validation). With it:
# on the node address, which is also what pods reach through the
# `kubernetes` Service (10.0.0.1:443).
start_kube_apiserver() {
  local advertise=()
  [ "$NODE" = 1 ] && advertise=(--advertise-address "$APISERVER_HOST")
  spawn kube-apiserver "$(b kube-apiserver)" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address "$APISERVER_HOST" "${advertise[@]}" \
    --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$pki/kube-apiserver.crt" \
    --tls-private-key-file "$pki/kube-apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction \
    --allow-privileged=true \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --requestheader-client-ca-file "$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User \
    --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$pki/front-proxy-client.crt" \
    --proxy-client-key-file "$pki/front-proxy-client.key"
}
healthy_kube_apiserver() { api_get /readyz >/dev/null; }

# ---- kube-controller-manager: every default controller (deployment,
# replicaset, garbage collector, HPA, ...), with the HPA made quick for tests.
start_kube_controller_manager() {
  local kc=$BERTH_CLUSTER_DIR/kube-controller-manager.kubeconfig
  spawn kube-controller-manager "$(b kube-controller-manager)" \
    --kubeconfig "$kc" \
    --authentication-kubeconfig "$kc" \
    --authorization-kubeconfig "$kc" \
    --bind-address 127.0.0.1 \
    --secure-port "$CONTROLLER_MANAGER_PORT" \
    --controllers '*' \
    --leader-elect=false \
    --use-service-account-credentials \
    --service-account-private-key-file "$pki/sa.key" \
    --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" \
    --cluster-signing-key-file "$pki/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --cluster-name berth \
    --horizontal-pod-autoscaler-sync-period 5s \
    --horizontal-pod-autoscaler-downscale-stabilization 15s
}
healthy_kube_controller_manager() { curl -fsSk --max-time 2 "https://127.0.0.1:$CONTROLLER_MANAGER_PORT/healthz" | grep -q ok; }

# ---- kube-scheduler
start_kube_scheduler() {
  local kc=$BERTH_CLUSTER_DIR/kube-scheduler.kubeconfig
  spawn kube-scheduler "$(b kube-scheduler)" \
    --kubeconfig "$kc" \
    --authentication-kubeconfig "$kc" \
    --authorization-kubeconfig "$kc" \
    --bind-address 127.0.0.1 \
    --secure-port "$SCHEDULER_PORT" \
    --leader-elect=false
}
healthy_kube_scheduler() { curl -fsSk --max-time 2 "https://127.0.0.1:$SCHEDULER_PORT/readyz" | grep -q ok; }

# ---- kwok: plays the kubelet of every node annotated kwok.x-k8s.io/node=fake
# and serves their resource metrics (from the pods' usage annotations) on one
# loopback port, the nodes' kubelet port. Node leases are off unless a duration
# is given; without them the node lifecycle controller marks the nodes Unknown
# after 50 s and their pods NotReady for good.
start_kwok() {
  local configs; configs=$(printf '%s,' "$cluster_src"/kwok/*.yaml); configs=${configs%,}
  # Each kwok process has a new identity, and waits for leases held by the
  # previous one to expire (40 s) before it manages those nodes: hand them over
  # now by deleting the leases (every node here is a kwok node, and nobody
  # holds their leases while kwok is down).
  if healthy_kube_apiserver; then
    kubectl -n kube-node-lease delete lease --all >/dev/null 2>&1 || true
  fi
  spawn kwok "$(b kwok)" \
    --kubeconfig "$BERTH_CLUSTER_DIR/kwok.kubeconfig" \
    --config "$configs" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --cidr "$POD_CIDR" \
    --node-ip 127.0.0.1 \
    --node-port "$KWOK_PORT" \
    --node-lease-duration-seconds 40 \
    --server-address "127.0.0.1:$KWOK_PORT" \
    --tls-cert-file "$pki/kwok-serving.crt" \
    --tls-private-key-file "$pki/kwok-serving.key"
}
healthy_kwok() { curl -fsS --max-time 2 --cacert "$pki/ca.crt" "https://127.0.0.1:$KWOK_PORT/healthz" | grep -q ok; }

# ---- metrics-server: scrapes kwok like it would scrape kubelets (every 10 s,
# its minimum; the request timeout must be shorter than that); the API
# server reaches it through the APIService that up.sh registers.
start_metrics_server() {
  local kc=$BERTH_CLUSTER_DIR/metrics-server.kubeconfig
  # It reads the front-proxy CA from a kube-system ConfigMap at startup.
  kubectl apply -f "$cluster_src/manifests/metrics-server-rbac.yaml" >/dev/null
  spawn metrics-server "$(b metrics-server)" \
    --kubeconfig "$kc" \
    --authentication-kubeconfig "$kc" \
    --authorization-kubeconfig "$kc" \
    --bind-address 127.0.0.1 \
    --secure-port "$METRICS_SERVER_PORT" \
    --tls-cert-file "$pki/metrics-server-serving.crt" \
    --tls-private-key-file "$pki/metrics-server-serving.key" \
    --kubelet-certificate-authority "$pki/ca.crt" \
    --kubelet-use-node-status-port \
    --kubelet-preferred-address-types InternalIP \
    --metric-resolution 10s \
    --kubelet-request-timeout 5s
}
# /livez: serving. (/readyz also waits for a first complete scrape.)
healthy_metrics_server() { curl -fsS --max-time 2 --cacert "$pki/ca.crt" "https://127.0.0.1:$METRICS_SERVER_PORT/livez" | grep -q ok; }

component_port() {
  case $1 in
    etcd) echo "$ETCD_PORT" ;;
    kube-apiserver) echo "$APISERVER_PORT" ;;
    kube-controller-manager) echo "$CONTROLLER_MANAGER_PORT" ;;
    kube-scheduler) echo "$SCHEDULER_PORT" ;;
    kwok) echo "$KWOK_PORT" ;;
    metrics-server) echo "$METRICS_SERVER_PORT" ;;
    kubelet) echo "$KUBELET_HEALTHZ_PORT" ;;
    kube-proxy) echo "$KUBE_PROXY_HEALTHZ_PORT" ;;
    coredns) echo "$COREDNS_READY_PORT" ;;
  esac
}

# Where a component serves, for status.sh.
component_address() {
  case $1 in
    kube-apiserver) echo "$APISERVER_HOST:$APISERVER_PORT" ;;
    containerd) echo "$NODE_SOCKET" ;;
    kubelet) echo "$NODE_IP:10250 (healthz 127.0.0.1:$KUBELET_HEALTHZ_PORT)" ;;
    coredns) echo "$NODE_IP:53 (ready 127.0.0.1:$COREDNS_READY_PORT)" ;;
    *) echo "127.0.0.1:$(component_port "$1")" ;;
  esac
}

# Seconds a component may take to become healthy after start.
component_timeout() {
  case $1 in
    kube-apiserver | kubelet) echo 90 ;;
    *) echo 60 ;;
  esac
}

is_component() { local c; for c in "${COMPONENTS[@]}"; do [ "$c" = "$1" ] && return 0; done; return 1; }
healthy() { "healthy_${1//-/_}" 2>/dev/null; }

# start_component NAME: start unless running; wait until healthy or fail
# naming the component and showing its log.
start_component() {
  local name=$1
  if running "$name"; then
    wait_for "$(component_timeout "$name")" "$name to be healthy" healthy "$name" && return 0
    say "$name is running but not healthy"; log_tail "$name"; return 1
  fi
  local port; port=$(component_port "$name")
  if [ -n "$port" ] && port_open "$port"; then
    say "cannot start $name: 127.0.0.1:$port is already in use by another process"
    say "(stop it, or choose another port with BERTH_*_PORT; see tests/cluster/README.md)"
    return 1
  fi
  local start=$SECONDS
  "start_${name//-/_}"
  local pid; pid=$(pid_of "$name") || true
  local deadline=$((SECONDS + $(component_timeout "$name")))
  until healthy "$name"; do
    if ! running "$name"; then
      say "$name exited during startup"; log_tail "$name"; return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      say "$name did not become healthy within $(component_timeout "$name")s"; log_tail "$name"; return 1
    fi
    sleep 0.2
  done
  say "$name healthy (pid $pid, $((SECONDS - start))s)"
}

# ---- metrics-server registration. The APIService exists only while
# metrics-server runs: an unavailable aggregated API makes namespace deletion
# hang (the namespace controller cannot list every resource type).
register_metrics_server() {
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata:
  name: metrics-server
  namespace: kube-system
spec:
  # The aggregator dials an ExternalName service at its name; Endpoints may
  # not hold loopback addresses, so this is how it reaches 127.0.0.1.
  type: ExternalName
  externalName: 127.0.0.1
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta1.metrics.k8s.io
spec:
  group: metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  service:
    name: metrics-server
    namespace: kube-system
    port: $METRICS_SERVER_PORT
  caBundle: $(base64 -w0 <"$pki/ca.crt")
YAML
  wait_for 60 "APIService v1beta1.metrics.k8s.io to be Available" \
    kubectl wait --for=condition=Available --timeout=5s apiservice/v1beta1.metrics.k8s.io
}

unregister_metrics_server() {
  healthy_kube_apiserver 2>/dev/null || return 0
  kubectl delete apiservice v1beta1.metrics.k8s.io --ignore-not-found --wait=false >/dev/null 2>&1 || true
}

# Hooks around start/stop of single components.
after_start() { if [ "$1" = metrics-server ]; then register_metrics_server; fi; }
before_stop() { if [ "$1" = metrics-server ]; then unregister_metrics_server; fi; }

# shellcheck source=node.sh
. "$cluster_src/lib/node.sh"
