# shellcheck shell=bash disable=SC2154  # its settings come from lib.sh, sourced first by run.sh
# One item, one order and its read-back, sent from this machine through the
# Services' ClusterIPs (kube-proxy) to the pods on the real node (sourced).

# service_url NAME: http://<ClusterIP>:<port>
service_url() {
  kubectl get svc "$1" -n "$namespace" -o jsonpath='http://{.spec.clusterIP}:{.spec.ports[0].port}'
}

# wait_http URL: a new Service can answer nothing for about a second after its
# pods are ready, until kube-proxy has synced: poll, up to 60 s.
wait_http() {
  local deadline=$((SECONDS + 60))
  until curl -fsS --max-time 2 -o /dev/null "$1" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || die "$1 did not answer within 60 s (kubectl get endpointslices -n $namespace)"
    sleep 0.2
  done
}

# shown CURL-ARGS...: print the command, run it once, print the answer; fails
# on an HTTP error. The answer is also left in $answer.
shown() {
  echo "\$ $(q curl "$@")"
  answer=$(curl "$@") || { echo "$answer"; die "the request failed"; }
  echo "$answer"
  echo
}

# The first "id" of a JSON answer (item and order both put theirs first).
json_id() { sed -n 's/^{"id":"\([^"]*\)".*/\1/p' <<<"$1"; }

try_shop() {
  item_url=$(service_url item)
  order_url=$(service_url order)
  step "requests through the Services, from this machine"
  wait_http "$item_url/readyz"
  wait_http "$order_url/readyz"
  local json=(-sS --fail-with-body --max-time 15 -H 'content-type: application/json')
  shown "${json[@]}" -X POST "$item_url/v1/items" \
    -d '{"name":"Berth mug","description":"made by make run","price_minor":1250,"currency":"EUR","stock":10}'
  local item_id order_id
  item_id=$(json_id "$answer")
  [ -n "$item_id" ] || die "no id in the item service's answer"
  # The key makes a retry of this POST return the same order, never a second one.
  shown "${json[@]}" -X POST "$order_url/v1/orders" -H "idempotency-key: make-run-$item_id" \
    -d "{\"lines\":[{\"item_id\":\"$item_id\",\"quantity\":2}]}"
  order_id=$(json_id "$answer")
  [ -n "$order_id" ] || die "no id in the order service's answer"
  shown -sS --fail-with-body --max-time 15 "$order_url/v1/orders/$order_id"
  echo "\$ kubectl get ms -n $namespace"
  kubectl get ms -n "$namespace"
}
