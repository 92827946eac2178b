#!/usr/bin/env bash
# A real Prometheus server for the local cluster, a process on this machine
# (built by build.sh from github.com/prometheus/prometheus, tools/prometheus):
# it scrapes the annotated pods on the real node, the operators running as
# processes here that register themselves, and itself, and evaluates the
# operator chart's rules (charts/berth-operator/rules/*.yaml). `up` also
# installs the Prometheus Operator's ServiceMonitor, PodMonitor and
# PrometheusRule CRDs (tools/prometheus-operator), so the kinds charts and
# the operator create exist; `down` stops Prometheus and leaves the CRDs.
#
#   prometheus.sh up | down | status
#   prometheus.sh register NAME HOST:PORT   scrape HOST:PORT's /metrics as job berth-operator
#   prometheus.sh unregister NAME           stop scraping it
#   prometheus.sh crd-files                 print the pinned CRD files' paths
#
#   curl 'http://127.0.0.1:9090/api/v1/query?query=up'
#
# `up` is idempotent: on a running Prometheus it rewrites the configuration
# and reloads it (POST /-/reload), which also reads new rule files.
#
# State: $BERTH_CLUSTER_DIR/prometheus/: prometheus.yml (from
# prometheus.yml.in), prometheus.pid and prometheus.log (kept by
# lib/process.sh as for the cluster's components), data/ (the TSDB, 6 h),
# targets/NAME.json (registrations).
# BERTH_PROMETHEUS_PORT: the port on 127.0.0.1 (9090).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cluster_src=$(cd "$here/.." && pwd)
repo=$(cd "$cluster_src/../.." && pwd)
# shellcheck source=tests/cluster/lib/common.sh
. "$cluster_src/lib/common.sh"
# shellcheck source=tests/cluster/lib/process.sh
. "$cluster_src/lib/process.sh"

PORT=${BERTH_PROMETHEUS_PORT:-9090}
url=http://127.0.0.1:$PORT
state=$BERTH_CLUSTER_DIR/prometheus
# lib/process.sh keeps Prometheus' pid and log here, not with the components'.
pids=$state
logs=$state
log=$logs/prometheus.log
config=$state/prometheus.yml
targets=$state/targets
operator_module=github.com/prometheus-operator/prometheus-operator
export PATH=$PATH:/usr/local/go/bin

# Ready: the Prometheus started here holds the port (not something that was
# there before) and answers.
ready() {
  owns_port prometheus "$PORT" 127.0.0.1 && curl -fsS --max-time 2 "$url/-/ready"
}

binaries() {
  if [ "${BERTH_SKIP_BUILD:-}" != 1 ]; then
    "$cluster_src/build.sh" prometheus promtool >/dev/null
  fi
  local b
  for b in prometheus promtool; do
    [ -x "$BERTH_BIN/$b" ] ||
      die "no $b in $BERTH_BIN: tests/cluster/build.sh prometheus promtool (BERTH_SKIP_BUILD=1 skipped it)"
  done
}

# The configuration from prometheus.yml.in, checked by promtool (syntax,
# relabeling, the rule files the glob matches) before Prometheus sees it.
write_config() {
  mkdir -p "$state" "$targets"
  sed -e "s|@PORT@|$PORT|g" -e "s|@STATE@|$state|g" \
    -e "s|@KUBECONFIG@|$KUBECONFIG_ADMIN|g" -e "s|@REPO@|$repo|g" \
    "$here/prometheus.yml.in" >"$config.new"
  local out
  if ! out=$("$BERTH_BIN/promtool" check config "$config.new" 2>&1); then
    echo "$out" >&2
    die "the Prometheus configuration does not load (promtool above, on $config.new; template" \
      "$here/prometheus.yml.in, rules $repo/charts/berth-operator/rules/*.yaml); fix it and run $0 up again"
  fi
  mv -f "$config.new" "$config"
}

reload() {
  local out code
  out=$(mktemp)
  code=$(curl -sS --max-time 30 -o "$out" -w '%{http_code}' -X POST "$url/-/reload") || code=000
  if [ "$code" != 200 ]; then
    cat "$out" >&2; rm -f "$out"
    die "Prometheus (pid $(pid_of prometheus)) refused the new configuration (HTTP $code, above; log $log)"
  fi
  rm -f "$out"
}

# ServiceMonitor, PodMonitor and PrometheusRule (monitoring.coreos.com/v1)
# from the pinned module (go.sum verifies it). Server-side: the CRDs are too
# large for the last-applied annotation of a client-side apply.
crd_files() {
  command -v go >/dev/null || die "the Prometheus Operator's CRDs need Go (go mod download); put it on PATH"
  local dir
  dir=$(cd "$cluster_src/tools/prometheus-operator" &&
    go mod download "$operator_module" && go list -m -f '{{.Dir}}' "$operator_module") ||
    die "cannot get $operator_module (tests/cluster/tools/prometheus-operator/go.mod) from the Go module proxy"
  local kind
  for kind in servicemonitors podmonitors prometheusrules; do
    echo "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml"
  done
}

install_crds() {
  local files crds=() f
  files=$(crd_files)
  for f in $files; do crds+=(-f "$f"); done
  kubectl apply --server-side --force-conflicts --field-manager=berth-cluster "${crds[@]}" >/dev/null
  kubectl wait --for=condition=Established --timeout=60s \
    crd/servicemonitors.monitoring.coreos.com crd/podmonitors.monitoring.coreos.com \
    crd/prometheusrules.monitoring.coreos.com >/dev/null
}

up() {
  api_get /readyz >/dev/null 2>&1 ||
    die "the local cluster does not answer at $APISERVER_URL: start it first (make cluster-up)"
  binaries
  if running prometheus; then
    # Before the configuration is rewritten: it names the port.
    ready >/dev/null 2>&1 ||
      die "Prometheus runs (pid $(pid_of prometheus)) but does not answer on $url as its own" \
        "(started with another BERTH_PROMETHEUS_PORT, or still starting?); $0 down, then $0 up"
    write_config
    reload
    say "Prometheus already running (pid $(pid_of prometheus)): configuration rewritten and reloaded"
  else
    local taken
    if taken=$(port_in_use 127.0.0.1 "$PORT"); then
      die "cannot start Prometheus: $taken; stop it, or choose another port with BERTH_PROMETHEUS_PORT"
    fi
    write_config
    mkdir -p "$state/data"
    # Short retention: a test cluster's data is only looked at while it runs.
    # --web.enable-lifecycle: POST /-/reload (how `up` applies a new config).
    spawn prometheus "$BERTH_BIN/prometheus" \
      --config.file="$config" \
      --storage.tsdb.path="$state/data" \
      --storage.tsdb.retention.time=6h \
      --web.listen-address="127.0.0.1:$PORT" \
      --web.enable-lifecycle
    wait_started prometheus 60 "Prometheus to answer $url/-/ready" ready ||
      die "Prometheus did not start (log above, $log)"
  fi
  install_crds
  say "Prometheus on $url (pid $(pid_of prometheus), log $log, config $config);" \
    "try: curl '$url/api/v1/query?query=up'"
}

down() {
  stop_process prometheus 10
}

status() {
  if running prometheus; then echo "prometheus      running (pid $(pid_of prometheus), $url)"; else echo "prometheus      stopped"; return 1; fi
}

# register NAME HOST:PORT: a file Prometheus' file discovery reads within 5 s;
# written whole, then renamed, so it is never read half-written.
register() {
  local name=${1:-} addr=${2:-}
  # Not starting with '.': the temporary file is .NAME.tmp.
  [[ $name =~ ^[A-Za-z0-9_-][A-Za-z0-9._-]*$ ]] ||
    die "usage: $0 register NAME HOST:PORT (NAME: letters, digits, '.', '_', '-', not first '.'; got '$name')"
  [[ $addr =~ ^[^/[:space:]\"]+:[0-9]+$ ]] ||
    die "$0 register $name: '$addr' is not HOST:PORT (e.g. 127.0.0.1:8080)"
  mkdir -p "$targets"
  printf '[{"targets": ["%s"], "labels": {"job": "berth-operator"}}]\n' "$addr" >"$targets/.$name.tmp"
  mv -f "$targets/.$name.tmp" "$targets/$name.json"
}

unregister() {
  local name=${1:-}
  [[ $name =~ ^[A-Za-z0-9_-][A-Za-z0-9._-]*$ ]] || die "usage: $0 unregister NAME"
  rm -f "$targets/$name.json"
}

case "${1:-}" in
  up | down | status)
    # Like the custom metrics adapter: a Prometheus here reaches only the local
    # cluster's pod network; a cluster of our own is what it is for.
    if using_existing_cluster; then
      say "prometheus: skipped on an existing cluster (a Prometheus on this machine cannot reach its pods; use the cluster's own)"
      exit 0
    fi
    "$1"
    ;;
  register) shift; register "$@" ;;
  unregister) shift; unregister "$@" ;;
  # The CRD files (from the pinned module), for a test that installs and
  # removes them itself, on the cluster its own client talks to.
  crd-files) crd_files ;;
  *) echo "usage: $0 up|down|status|register NAME HOST:PORT|unregister NAME|crd-files" >&2; exit 2 ;;
esac
