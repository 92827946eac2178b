#!/usr/bin/env bash
# Scale benchmark of the operator on a cluster of its own (never the shared
# default one): for each N, create N MicroServices (each -> Deployment,
# Service, HPA), and measure converge time, the floor (a plain client creating
# the same children), memory, CPU, API requests by verb, a quiet interval, an
# update wave, a restart, and the managedFields trimming before/after.
#
#   bench/scale/run.sh [N...]            default: 100 500 1000
#   QUIET=180 bench/scale/run.sh 500     seconds of the quiet interval
#
# API requests are counted inside the operator by a layer on its kube Client
# (berth_api_requests_total{verb,resource}), so they are exactly the
# operator's requests: no other client on the cluster is counted.
# Output: a block per N on stdout and in target/bench-scale/results.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

export BERTH_CLUSTER_DIR=${BERTH_CLUSTER_DIR:-$HOME/.cache/berth/cluster-scale}
if [[ $BERTH_CLUSTER_DIR == "$HOME/.cache/berth/cluster" ]]; then
  echo "refusing to load the shared default cluster; set BERTH_CLUSTER_DIR to another directory" >&2
  exit 2
fi
export BERTH_APISERVER_PORT=${BERTH_APISERVER_PORT:-7443} BERTH_ETCD_PORT=${BERTH_ETCD_PORT:-3379}
export BERTH_ETCD_PEER_PORT=${BERTH_ETCD_PEER_PORT:-3380} BERTH_CONTROLLER_MANAGER_PORT=${BERTH_CONTROLLER_MANAGER_PORT:-11257}
export BERTH_SCHEDULER_PORT=${BERTH_SCHEDULER_PORT:-11259} BERTH_KWOK_PORT=${BERTH_KWOK_PORT:-11247}
export BERTH_METRICS_SERVER_PORT=${BERTH_METRICS_SERVER_PORT:-5443}
# A /24 Service range holds 253 Services: N=500 needs more (wipe an older
# cluster-scale directory once, `tests/cluster/down.sh --wipe`, to change it).
export BERTH_SERVICE_CIDR=${BERTH_SERVICE_CIDR:-10.0.0.0/20}
# kwok nodes only: the real node belongs to the default cluster (one per machine).
export BERTH_NODE=0
export KUBECONFIG=$BERTH_CLUSTER_DIR/kubeconfig
QUIET=${QUIET:-180}
PARALLEL=${PARALLEL:-4}
SIZES=("$@"); [[ ${#SIZES[@]} -gt 0 ]] || SIZES=(100 500 1000)
OUT=$ROOT/target/bench-scale; mkdir -p "$OUT"
RESULTS=$OUT/results.txt
K="$(tests/cluster/build.sh --print)/kubectl"
LABEL=berth.dev/microservice
PORT=18181
CLK=$(getconf CLK_TCK)

tests/cluster/up.sh >/dev/null
cargo build --release -q -p berth-operator
BIN=$ROOT/target/release/berth-operator
"$K" apply --server-side -f crds/microservice.yaml >/dev/null
"$K" wait --for=condition=Established crd/microservices.berth.dev >/dev/null

log() { echo "$*" | tee -a "$RESULTS"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# N MicroServices as YAML (one document each), image tag $2.
microservices() { # ns n tag
  for ((i = 0; i < $2; i++)); do
    cat <<YAML
---
apiVersion: berth.dev/v1alpha1
kind: MicroService
metadata: { name: svc-$i, namespace: $1 }
spec:
  image: registry.local/app:$3
  resources: { requests: { cpu: 10m, memory: 16Mi } }
  autoscaling: { minReplicas: 1, maxReplicas: 2 }
YAML
  done
}

# Sends the documents of file $1 with `kubectl $2...` in $PARALLEL processes.
in_parallel() { # file args...
  local file=$1; shift
  local dir; dir=$(mktemp -d)
  awk -v dir="$dir" -v p="$PARALLEL" '/^---$/ { n++ } { print > (dir "/part-" (n % p) ".yaml") }' "$file"
  local pids=()
  for part in "$dir"/part-*.yaml; do "$K" "$@" -f "$part" >/dev/null & pids+=($!); done
  wait "${pids[@]}"
  rm -rf "$dir"
}

fresh_namespace() {
  "$K" delete namespace "$1" --ignore-not-found --wait=true --timeout=600s >/dev/null
  "$K" create namespace "$1" >/dev/null
}

metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 ~ "^"m"({|$)" { s += $NF } END { printf "%d", s }'; }
requests_by_verb() {
  curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^berth_api_requests_total\{/ {
      match($0, /verb="[^"]*"/); v = substr($0, RSTART + 6, RLENGTH - 7)
      if (match($0, /resource="\/[^"]*"/)) v = v "(" substr($0, RSTART + 10, RLENGTH - 11) ")"
      s[v] += $NF }
    END { for (v in s) printf "%s=%d ", v, s[v] }' | tr ' ' '\n' | sort | tr '\n' ' '
}
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }
cpu_s() { awk -v t="$CLK" '{ printf "%.1f", ($14 + $15) / t }' "/proc/$1/stat"; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

start_operator() { # ns extra-args...
  local ns=$1; shift
  "$BIN" run --namespace "$ns" --metrics-addr "127.0.0.1:$PORT" "$@" >>"$OUT/operator-$ns.log" 2>&1 &
  OP=$!
  until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.1; done
}
stop_operator() { kill -9 "$OP" 2>/dev/null || true; wait "$OP" 2>/dev/null || true; }

# Waits until the operator's writes have not changed for 10 s (pods turning
# Ready are real status news); prints the count.
settle() {
  local last=-1 same=0 w
  while ((same < 10)); do
    w=$(metric berth_api_writes_total)
    if [[ $w == "$last" ]]; then same=$((same + 1)); else same=0; last=$w; fi
    sleep 1
  done
  echo "$last"
}

# Waits until every Deployment has finished rolling out (status catches up
# with the spec), so what follows is not disturbed by real status news.
rolled_out() {
  until [[ $("$K" get deployments -n "$1" -l "$LABEL" -o jsonpath='{range .items[*]}{.metadata.generation}/{.status.observedGeneration}/{.status.replicas}/{.status.updatedReplicas}/{.status.readyReplicas}{"\n"}{end}' |
    awk -F/ '!($1 == $2 && $3 == $4 && $4 == $5)' | wc -l) == 0 ]]; do sleep 1; done
}

children() { "$K" get "$1" -n "$2" -l "$LABEL" -o name | wc -l; }
statuses_current() {
  "$K" get microservices -n "$1" -o jsonpath='{range .items[*]}{.metadata.generation}/{.status.observedGeneration}{"\n"}{end}' |
    awk -F/ '$1 == $2' | wc -l
}
deployments_with() {
  "$K" get deployments -n "$1" -l "$LABEL" -o jsonpath='{range .items[*]}{.spec.template.spec.containers[0].image}{"\n"}{end}' |
    grep -c ":$2\$" || true
}

bench() {
  local n=$1 ns=bench-n$1 floor=bench-floor-n$1
  log ""
  log "## N=$n ($(date -u +%FT%TZ), $(nproc) cores, $(uname -r), QUIET=${QUIET}s, PARALLEL=$PARALLEL)"
  fresh_namespace "$ns"
  microservices "$ns" "$n" 1 >"$OUT/ms-$n.yaml"
  microservices "$ns" "$n" 2 >"$OUT/ms-$n-v2.yaml"

  start_operator "$ns"
  local start_cpu; start_cpu=$(cpu_s "$OP")
  log "operator ready and idle: RSS $(mb "$(rss_kb "$OP")"), CPU ${start_cpu}s"

  # Converge: every child exists and every status is written.
  local t0; t0=$(now)
  in_parallel "$OUT/ms-$n.yaml" create
  local created; created=$(since "$t0")
  local peak=0 r
  while :; do
    r=$(rss_kb "$OP"); ((r > peak)) && peak=$r
    if (( $(children deployments "$ns") == n && $(children services "$ns") == n &&
          $(children horizontalpodautoscalers "$ns") == n && $(statuses_current "$ns") == n )); then break; fi
    sleep 1
  done
  local converge; converge=$(since "$t0")
  log "create: $n MicroServices sent in ${created}s; converged (all ${n}x3 children + all statuses) in ${converge}s"
  log "  operator after converge: RSS $(mb "$(rss_kb "$OP")"), peak RSS (VmHWM) $(mb "$(hwm_kb "$OP")"), CPU $(cpu_s "$OP")s"
  log "  requests by verb: $(requests_by_verb)"
  log "  writes (berth_api_writes_total): $(metric berth_api_writes_total)"

  # Steady state.
  rolled_out "$ns"
  local settled; settled=$(settle)
  local q_rss0 q_w0; q_rss0=$(rss_kb "$OP"); q_w0=$(metric berth_api_writes_total)
  local q_req0; q_req0=$(requests_by_verb)
  local min=$q_rss0 max=$q_rss0
  for ((s = 0; s < QUIET; s += 5)); do
    sleep 5; r=$(rss_kb "$OP"); ((r < min)) && min=$r; ((r > max)) && max=$r
  done
  log "quiet ${QUIET}s (after writes settled at $settled): writes $q_w0 -> $(metric berth_api_writes_total); RSS $(mb "$q_rss0") -> $(mb "$(rss_kb "$OP")") (min $(mb "$min"), max $(mb "$max")); CPU $(cpu_s "$OP")s"
  log "  requests before: $q_req0"
  log "  requests after:  $(requests_by_verb)"

  # Update wave: every image changes at once.
  local w0; w0=$(metric berth_api_writes_total)
  t0=$(now)
  in_parallel "$OUT/ms-$n-v2.yaml" apply --server-side --force-conflicts --field-manager=bench
  while (( $(deployments_with "$ns" 2) < n )); do sleep 1; done
  log "update wave: all $n Deployments on the new image $(since "$t0")s after the first apply; writes +$(( $(metric berth_api_writes_total) - w0 )); peak RSS $(mb "$(hwm_kb "$OP")"); CPU $(cpu_s "$OP")s"
  log "  requests by verb: $(requests_by_verb)"
  rolled_out "$ns"
  settle >/dev/null

  # Restart: kill -9, start again, no writes for correct objects.
  stop_operator
  t0=$(now)
  start_operator "$ns"
  local ready; ready=$(since "$t0")
  while (( $(metric berth_reconciles_total) < n )); do sleep 0.5; done
  local all; all=$(since "$t0")
  sleep 5
  log "restart: ready (caches synced) in ${ready}s; all $n reconciled in ${all}s; writes after restart: $(metric berth_api_writes_total); children found unchanged: $(metric berth_children_unchanged_total)"
  log "  after restart: RSS $(mb "$(rss_kb "$OP")"), peak $(mb "$(hwm_kb "$OP")"), CPU $(cpu_s "$OP")s; requests: $(requests_by_verb)"

  # Memory choice, before/after: the same objects cached with every managedFields entry.
  stop_operator
  start_operator "$ns" --untrimmed-cache
  while (( $(metric berth_reconciles_total) < n )); do sleep 0.5; done
  sleep 5
  log "untrimmed managedFields (before): RSS $(mb "$(rss_kb "$OP")"), peak $(mb "$(hwm_kb "$OP")") (compare with the restart line above: trimmed)"
  stop_operator

  # Floor: a plain client creates the same children (exported from Berth's,
  # owner references and server fields removed; replicas 0 so the cluster is
  # not asked for N more pods) as fast as the API server takes them.
  fresh_namespace "$floor"
  "$K" get deployments,services,horizontalpodautoscalers -n "$ns" -l "$LABEL" -o json |
    jq -c --arg ns "$floor" '.items[]
      | del(.status, .metadata.uid, .metadata.resourceVersion, .metadata.creationTimestamp,
            .metadata.managedFields, .metadata.ownerReferences, .metadata.generation, .metadata.annotations)
      | .metadata.namespace = $ns
      | if .kind == "Service" then del(.spec.clusterIP, .spec.clusterIPs) else . end
      | if .kind == "Deployment" then .spec.replicas = 0 else . end
      | if .kind == "HorizontalPodAutoscaler" then .spec.minReplicas = 1 else . end' |
    awk '{ print "---"; print }' >"$OUT/floor-$n.yaml"
  t0=$(now)
  in_parallel "$OUT/floor-$n.yaml" create
  local floor_s; floor_s=$(since "$t0")
  log "floor: $((n * 3)) children created directly by kubectl create x$PARALLEL in ${floor_s}s; Berth/floor = $(awk -v a="$converge" -v b="$floor_s" 'BEGIN { printf "%.2f", a / b }')"

  "$K" delete namespace "$floor" "$ns" --wait=true --timeout=900s >/dev/null
}

for n in "${SIZES[@]}"; do bench "$n"; done
