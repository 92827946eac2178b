# shellcheck shell=bash disable=SC2154  # its settings come from lib.sh, sourced first by run.sh
# `make run` on the cluster's real node: the images in the node's containerd,
# PostgreSQL open to the pods, the operator and the services installed with
# their Helm charts, as on any cluster (sourced).

# Both charts' pods go to the real node: kwok's nodes run no process.
placement=$run_dir/real-node.values.yaml

deploy_on_node() {
  kubectl wait --for=condition=Ready "node/$node" --timeout=120s >/dev/null ||
    die "node $node is not Ready: tests/cluster/status.sh, and its logs in $cluster_dir/logs/"
  node_ip=$(kubectl get node "$node" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
  # A kwok-only run's operator (a host process) would fight the chart's.
  stop_host_operator

  step "images (make images: built and loaded into $node's containerd)"
  make --no-print-directory images

  step "PostgreSQL for the pods"
  db_url=$(BERTH_NODE_IP=${BERTH_NODE_IP:-$node_ip} scripts/postgres.sh --pods-url)
  say "$db_url"

  step "CRD"
  apply_crd
  cat >"$placement" <<'YAML'
nodeSelector: { berth.dev/node: real }
tolerations: [{ key: berth.dev/node, operator: Equal, value: real, effect: NoSchedule }]
YAML

  step "operator: helm upgrade --install berth charts/berth-operator -n $operator_namespace"
  helm upgrade --install berth charts/berth-operator -n "$operator_namespace" --create-namespace \
    --set image.repository=berth.local/berth-operator --set leaderElection.enabled=true \
    -f "$placement" --force-conflicts --wait --timeout 180s >/dev/null || {
    kubectl get pods -n "$operator_namespace" -o wide >&2 || true
    die "the operator did not become ready (kubectl logs -n $operator_namespace deploy/berth-operator)"
  }

  step "Secrets item-postgres and order-postgres (key url) in namespace $namespace"
  ensure_namespace "$namespace"
  local service
  for service in item order; do
    kubectl create secret generic "$service-postgres" -n "$namespace" --from-literal=url="$db_url" \
      --dry-run=client -o yaml | kubectl apply --server-side --field-manager=berth-run -f - >/dev/null
  done
  remove_kwok_examples

  # Prometheus scrapes both services every 10 s instead of the operator's
  # default 30 s: the check after the requests (prometheus.sh) sees them sooner.
  step "services: helm upgrade --install shop charts/berth-services -n $namespace (scraped every 10 s)"
  helm upgrade --install shop charts/berth-services -n "$namespace" \
    --set registry=berth.local --set imagePullPolicy=IfNotPresent \
    --set item.monitoring.interval=10s --set order.monitoring.interval=10s \
    -f "$placement" --force-conflicts >/dev/null
  wait_ready item order
}

# item and order applied from examples/ by a kwok-only run belong to no
# release: helm would refuse to take them over.
remove_kwok_examples() {
  local ms
  for ms in item order; do
    [ -n "$(kubectl get ms "$ms" -n "$namespace" --ignore-not-found -o name)" ] || continue
    [ "$(kubectl get ms "$ms" -n "$namespace" -o jsonpath='{.metadata.annotations.meta\.helm\.sh/release-name}')" != shop ] || continue
    say "deleting ms/$ms, applied from examples/ by a kwok-only run"
    kubectl delete ms "$ms" -n "$namespace" --wait=true >/dev/null
  done
}
