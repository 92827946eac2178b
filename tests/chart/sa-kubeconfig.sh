#!/usr/bin/env bash
# Writes a kubeconfig that authenticates as a ServiceAccount: a token from
# `kubectl create token` (TokenRequest API), the server and CA of the current
# (admin) kubeconfig. Used to run the operator with exactly the chart's RBAC.
#
#   tests/chart/sa-kubeconfig.sh NAMESPACE SERVICEACCOUNT OUT [DURATION]
#
# KUBECTL (default: the local cluster's kubectl) and KUBECONFIG as usual.
set -euo pipefail
namespace=$1 sa=$2 out=$3 duration=${4:-2h}
kubectl=${KUBECTL:-$HOME/.cache/berth/bin/kubectl}

view() { "$kubectl" config view --raw --minify -o "jsonpath={$1}"; }
server=$(view .clusters[0].cluster.server)
ca=$(view '.clusters[0].cluster.certificate-authority-data')
if [[ -z $ca ]]; then
    ca_file=$(view '.clusters[0].cluster.certificate-authority')
    [[ -n $ca_file ]] || { echo "sa-kubeconfig: the current kubeconfig has no CA" >&2; exit 1; }
    ca=$(base64 -w0 <"$ca_file")
fi
token=$("$kubectl" create token "$sa" -n "$namespace" --duration "$duration")

umask 077
cat >"$out.tmp" <<YAML
apiVersion: v1
kind: Config
clusters:
  - name: cluster
    cluster:
      server: $server
      certificate-authority-data: $ca
users:
  - name: $namespace-$sa
    user:
      token: $token
contexts:
  - name: $namespace-$sa
    context: { cluster: cluster, user: $namespace-$sa, namespace: $namespace }
current-context: $namespace-$sa
YAML
mv "$out.tmp" "$out"
