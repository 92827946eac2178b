# shellcheck shell=bash disable=SC2154  # $pki comes from lib/common.sh, sourced first
# The cluster's certificates and keys, made with openssl once per cluster
# directory (kept across down/up so kubeconfigs handed out stay valid).
#
#   ca            signs every serving and client certificate below
#   front-proxy-ca  signs only the aggregator's client certificate, so
#                 aggregated API servers (metrics-server) trust nothing else
#                 as a front proxy
#   sa.key/.pub   service-account token signing

# cert NAME CN [O] [SANS] [CA]: a key and a 1-year certificate signed by CA.
cert() {
  local name=$1 cn=$2 org=${3:-} sans=${4:-} ca=${5:-ca}
  [ -s "$pki/$name.crt" ] && return 0
  local subj="/CN=$cn"; [ -n "$org" ] && subj="/O=$org$subj"
  local ext; ext=$(mktemp)
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$sans" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$sans"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$ext"
  openssl genrsa -out "$pki/$name.key" 2048 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" \
    -CAcreateserial -days 365 -sha256 -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$ext" "$pki/$name.csr"
}

ca() {
  local name=$1 cn=$2
  [ -s "$pki/$name.crt" ] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -out "$pki/$name.crt" \
    -days 3650 -sha256 -subj "/CN=$cn" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
}

make_pki() {
  mkdir -p "$pki"; chmod 700 "$pki"
  ca ca berth-local-ca
  ca front-proxy-ca berth-local-front-proxy-ca
  local loopback="IP:127.0.0.1,DNS:localhost"
  # Certificates from before the node existed lack its address.
  if [ -s "$pki/kube-apiserver.crt" ] &&
    ! openssl x509 -in "$pki/kube-apiserver.crt" -noout -ext subjectAltName | grep -q "IP Address:$NODE_IP\b"; then
    rm -f "$pki/kube-apiserver.crt" "$pki/kube-apiserver.key"
  fi
  cert kube-apiserver kube-apiserver "" \
    "$loopback,IP:$NODE_IP,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  # The aggregator dials metrics-server by ExternalName 127.0.0.1 but checks
  # the name <service>.<namespace>.svc.
  cert metrics-server-serving metrics-server "" \
    "$loopback,DNS:metrics-server.kube-system.svc"
  cert kwok-serving kwok "" "$loopback"
  cert admin berth-admin system:masters
  cert kube-controller-manager system:kube-controller-manager
  cert kube-scheduler system:kube-scheduler
  # kwok plays every kubelet (nodes, leases, pod status of all nodes), which
  # the Node authorizer would not let one identity do.
  cert kwok kwok-controller system:masters
  cert metrics-server system:metrics-server
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  cert front-proxy-client front-proxy-client "" "" front-proxy-ca
  # The real node: the kubelet as the Node authorizer expects it, its serving
  # certificate (metrics-server and the API server verify it against our CA),
  # kube-proxy (bound to system:node-proxier by default) and CoreDNS.
  cert kubelet "system:node:$NODE_NAME" system:nodes
  cert kubelet-serving "system:node:$NODE_NAME" system:nodes "IP:$NODE_IP,DNS:$NODE_NAME"
  cert kube-proxy system:kube-proxy
  cert coredns system:coredns
  [ -s "$pki/sa.key" ] || {
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  }
  chmod 600 "$pki"/*.key
}

# kubeconfig FILE USER: certificates embedded, so the file can be copied.
# Rewritten on every start, so a changed port is picked up.
kubeconfig() {
  local file=$1 user=$2
  cat >"$file.tmp" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: berth
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$pki/$user.crt")
    client-key-data: $(base64 -w0 <"$pki/$user.key")
contexts:
- name: berth
  context:
    cluster: berth
    user: $user
current-context: berth
KUBECONFIG
  chmod 600 "$file.tmp"; mv "$file.tmp" "$file"
}

make_kubeconfigs() {
  kubeconfig "$KUBECONFIG_ADMIN" admin
  local c
  for c in kube-controller-manager kube-scheduler kwok metrics-server kubelet kube-proxy coredns; do
    kubeconfig "$BERTH_CLUSTER_DIR/$c.kubeconfig" "$c"
  done
}
