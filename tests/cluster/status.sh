#!/usr/bin/env bash
# One line per component of the local cluster; exits non-zero if any is down.
#
#   tests/cluster/status.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"

if using_existing_cluster; then
  if "$BERTH_BIN/kubectl" get --raw /readyz >/dev/null 2>&1; then
    echo "existing cluster (KUBECONFIG=${KUBECONFIG:-}): ready"; exit 0
  fi
  echo "existing cluster (KUBECONFIG=${KUBECONFIG:-}): NOT reachable"; exit 1
fi

. "$here/lib/process.sh"
. "$here/lib/components.sh"

down=0
line() { printf '%-24s %-9s %s\n' "$1" "$2" "$3"; }
for c in "${COMPONENTS[@]}"; do
  if ! running "$c"; then line "$c" DOWN "not running"; down=1
  elif ! healthy "$c"; then line "$c" UNHEALTHY "pid $(pid_of "$c"), health check fails; log $logs/$c.log"; down=1
  else line "$c" ok "pid $(pid_of "$c"), $(component_address "$c")"; fi
done

# What the components are for, seen through the API.
if healthy kube-apiserver 2>/dev/null; then
  ready=$(kubectl get nodes -l type=kwok --no-headers 2>/dev/null | awk '$2=="Ready"' | wc -l)
  if [ "$ready" -ge 3 ]; then line nodes ok "$ready kwok nodes Ready"; else line nodes DOWN "$ready of 3 kwok nodes Ready"; down=1; fi
  if [ "$NODE" = 1 ]; then
    ready=$(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)
    pods=$(kubectl get pods -A --field-selector "spec.nodeName=$NODE_NAME" --no-headers 2>/dev/null | wc -l)
    if [ "$ready" = True ]; then line real-node ok "$NODE_NAME Ready at $NODE_IP, $pods pods"
    else line real-node DOWN "$NODE_NAME not Ready (${ready:-not registered})"; down=1; fi
  elif [ -s "$BERTH_CLUSTER_DIR/node-unavailable" ]; then
    line real-node none "$(cat "$BERTH_CLUSTER_DIR/node-unavailable")"
  fi
  avail=$(kubectl get apiservice v1beta1.metrics.k8s.io -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null)
  if [ "$avail" = True ]; then line metrics-api ok "v1beta1.metrics.k8s.io Available"
  else line metrics-api DOWN "v1beta1.metrics.k8s.io not Available (${avail:-not registered})"; down=1; fi
fi
[ -s "$KUBECONFIG_ADMIN" ] && echo "export KUBECONFIG=$KUBECONFIG_ADMIN"
exit $down
