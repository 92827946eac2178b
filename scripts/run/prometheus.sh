# shellcheck shell=bash disable=SC2154,SC2034  # settings from lib.sh (sourced first by run.sh); the queries are run.sh's too
# Prometheus beside the local cluster (tests/cluster/prometheus/prometheus.sh,
# a process on this machine): started if it is not (`make run` starts it
# first), then a bounded wait until it scrapes what `make run` installed and
# answers the queries the summary prints (sourced).

prometheus_sh=tests/cluster/prometheus/prometheus.sh
prom_url=http://127.0.0.1:${BERTH_PROMETHEUS_PORT:-9090}
prom_log=$cluster_dir/prometheus/prometheus.log
# How long the check waits for the scrapes (each pod of item and order is
# scraped every 10 s, the interval run.sh gives the services chart; the
# operator's every 5 s).
prom_timeout=${BERTH_RUN_PROMETHEUS_TIMEOUT:-90}
# The queries the summary prints, and the check runs. item's requests per
# second (5 min window; health, readiness and metrics routes left out): the
# recording rule of charts/berth-operator/rules/berth.rules.yaml. The
# operator's own gauge, scraped from its pod.
item_rate_query="namespace_microservice:http_requests:rate5m{namespace=\"$namespace\",microservice=\"item\"}"
operator_query="berth_managed_microservices{namespace=\"$operator_namespace\"}"

# No Prometheus of ours on a cluster we did not start (prometheus.sh skips it).
prometheus_local() { [ "${BERTH_USE_EXISTING_CLUSTER:-}" != 1 ]; }

prometheus_answers() { curl -fsS --max-time 2 -o /dev/null "$prom_url/-/ready" 2>/dev/null; }

# Started before run.sh by `make run`; this is for run.sh alone.
prometheus_up() {
  prometheus_local || return 0
  prometheus_answers && return 0
  step "Prometheus ($prometheus_sh up)"
  "$prometheus_sh" up 2>&1 | sed 's/^/    /'
  prometheus_answers || die "Prometheus does not answer on $prom_url (its log: $prom_log)"
}

# prom_query EXPR: the API's JSON answer; empty when Prometheus does not answer.
prom_query() {
  curl -fsS --max-time 5 "$prom_url/api/v1/query" --data-urlencode "query=$1" 2>/dev/null || true
}

# prom_value EXPR: the value of its series (the last, if several); empty for none.
prom_value() { prom_query "$1" | sed -n 's/.*"value":\[[0-9.e+-]*,"\([^"]*\)"\].*/\1/p'; }

# The ready-to-paste command for a query.
prom_curl() { echo "curl -s $(q "$prom_url/api/v1/query") --data-urlencode $(q "query=$1")"; }

# live_pods NAMESPACE SELECTOR: its Running pods that are not being deleted
# (what Prometheus' pods job scrapes, on the real node).
live_pods() {
  kubectl get pods -n "$1" -l "$2" --field-selector=status.phase=Running -o \
    go-template='{{range .items}}{{if not .metadata.deletionTimestamp}}{{.metadata.name}}{{"\n"}}{{end}}{{end}}'
}

# unscraped NAMESPACE WHAT SELECTOR: one line per pod of SELECTOR whose `up`
# is not 1 in Prometheus' pods job, or one saying WHAT has no pod.
unscraped() {
  local ns=$1 what=$2 pods answer pod
  pods=$(live_pods "$ns" "$3" 2>/dev/null) || true
  if [ -z "$pods" ]; then
    echo "$what: no Running pod (kubectl get pods -n $ns -l $3)"
    return 0
  fi
  answer=$(prom_query "up{job=\"pods\",namespace=\"$ns\",pod=~\"$(paste -sd'|' <<<"$pods")\"} == 1")
  for pod in $pods; do
    grep -q "\"pod\":\"$pod\"" <<<"$answer" || echo "$what: up{job=\"pods\",namespace=\"$ns\",pod=\"$pod\"} is not 1 (or not there)"
  done
}

# What the check still misses, one line each; nothing when all is there.
prometheus_missing() {
  unscraped "$namespace" "ms/item" berth.dev/microservice=item
  unscraped "$namespace" "ms/order" berth.dev/microservice=order
  unscraped "$operator_namespace" "the operator" app.kubernetes.io/instance=berth,app.kubernetes.io/component=operator
  local rate
  rate=$(prom_value "$item_rate_query")
  case $rate in
    "") echo "item's request rate: no result for $item_rate_query (a recording rule: curl -s $prom_url/api/v1/rules)" ;;
    0 | 0.0) echo "item's request rate: $item_rate_query is 0 (Prometheus has seen no increase yet)" ;;
  esac
}

# prometheus_check_node: bounded wait until Prometheus scrapes every pod of
# item, order and the operator (up == 1) and item's request rate is there and
# above 0. The requests of try_shop each create their counter series, which a
# rate only sees rise from the next scrape on: a GET /v1/items every 2 s while
# waiting gives it an increase to see.
prometheus_check_node() {
  prometheus_local || return 0
  step "Prometheus ($prom_url): waiting up to $prom_timeout s for item's, order's and the operator's pods to be scraped, and item's request rate (a GET /v1/items every 2 s meanwhile)"
  local start=$SECONDS deadline=$((SECONDS + prom_timeout)) missing item_url rate
  item_url=$(service_url item 2>/dev/null) || item_url=
  while :; do
    prometheus_answers || die "Prometheus does not answer on $prom_url (make prometheus-up; its log: $prom_log)"
    mapfile -t missing < <(prometheus_missing)
    [ "${#missing[@]}" -gt 0 ] || break
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "run.sh: after $prom_timeout s, Prometheus still misses:" >&2
      printf '    %s\n' "${missing[@]}" >&2
      echo "    Look: curl -s $prom_url/api/v1/targets (each target's health and lastError)," >&2
      echo "    curl -s '$prom_url/api/v1/query?query=up', and its log $prom_log" >&2
      exit 1
    fi
    [ -z "$item_url" ] || curl -fsS --max-time 2 -o /dev/null "$item_url/v1/items" 2>/dev/null || true
    sleep 2
  done
  rate=$(LC_ALL=C printf '%.3g' "$(prom_value "$item_rate_query")" 2>/dev/null) || true
  say "after $((SECONDS - start)) s: up == 1 for every pod of item, order and the operator; item: ${rate:-?} requests/s (5 min rate)"
}

# prometheus_check_kwok: the host-process operator, registered as berth-run,
# is scraped (up == 1 in job berth-operator).
prometheus_check_kwok() {
  prometheus_local || return 0
  step "Prometheus ($prom_url): waiting up to $prom_timeout s for the operator (registered as berth-run) to be scraped"
  local start=$SECONDS deadline=$((SECONDS + prom_timeout))
  until [ "$(prom_value "up{job=\"berth-operator\",instance=\"$metrics_addr\"}")" = 1 ]; do
    prometheus_answers || die "Prometheus does not answer on $prom_url (make prometheus-up; its log: $prom_log)"
    [ "$SECONDS" -lt "$deadline" ] ||
      die "after $prom_timeout s, up{job=\"berth-operator\",instance=\"$metrics_addr\"} is not 1 in Prometheus." \
        "Look: curl -s $prom_url/api/v1/targets, ls $cluster_dir/prometheus/targets/, and its log $prom_log"
    sleep 2
  done
  say "after $((SECONDS - start)) s: up == 1 for the operator at $metrics_addr"
}
