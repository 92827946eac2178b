#!/usr/bin/env bash
# Scale benchmark of the operator on a cluster of its own (never the shared
# default one). Two modes:
#
#   bench/scale/run.sh [N...]                  default: 100 500 1000
#     For each N: create N MicroServices (each -> Deployment, Service, HPA)
#     and measure converge time, requests per MicroService, memory and CPU
#     (per MicroService too), a restart into a quiet interval that holds one
#     full resync, an update wave, a restart after it, the managedFields
#     trimming before/after, then the floor: Berth's namespace is deleted and
#     a plain client creates the same children (fair floor) and changes their
#     image (update-wave floor), timed like Berth.
#   bench/scale/run.sh --operator-only [N...]  default: 10000
#     The operator alone: N MicroServices with `replicas: 0` and no
#     autoscaling (-> Deployment at 0 replicas and Service; the cluster makes
#     no pods). Converge, requests per MicroService, memory, CPU, a restart
#     (caches synced, list pages, all reconciled, writes) and one full resync.
#     No floor, no update wave.
#
# Settings (environment):
#   QUIET=180        seconds of the quiet interval; must be longer than RESYNC
#   RESYNC=60        --resync-seconds of the operator during the quiet interval,
#                    so one full resync of all N falls inside it (default 600)
#   CONCURRENCY=8    the operator's --concurrency, and the number of parallel
#                    kubectl processes of the floors (the same parallelism)
#   PARALLEL=4       kubectl processes creating the MicroServices (the update
#                    wave sends their change with CONCURRENCY, as its floor does)
#   OLD_FLOOR=1      also time the floor of earlier rounds (children at 0
#                    replicas, time until `kubectl create` returns) and print
#                    both floors and both ratios, to show the change of yardstick
#   TIMEOUT=1800     seconds any single wait may take before the run fails
#
# Converge, for Berth and the floors alike, is one shared measurement
# (`measure`): from just before the first request, the requests are sent in
# the background while a loop polls the API server once a second until every
# child exists (for Berth, also every status.observedGeneration current). The
# bench namespaces hold nothing else, so children are counted per namespace.
#
# API requests are counted inside the operator by a layer on its kube Client
# (berth_api_requests_total{verb,resource}), so they are exactly the
# operator's requests: no other client on the cluster is counted. At the end
# of each N the API server's own priority-and-fairness figures are printed.
# Output: a block per N on stdout and in target/bench-scale/results.txt.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/../.."
ROOT=$PWD

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
MODE=full
if [[ ${1:-} == --operator-only ]]; then MODE=operator-only; shift; fi
SIZES=("$@")
if ((${#SIZES[@]} == 0)); then
  if [[ $MODE == full ]]; then SIZES=(100 500 1000); else SIZES=(10000); fi
fi
for n in "${SIZES[@]}"; do [[ $n =~ ^[1-9][0-9]*$ ]] || usage; done

QUIET=${QUIET:-180}
RESYNC=${RESYNC:-60}
CONCURRENCY=${CONCURRENCY:-8}
PARALLEL=${PARALLEL:-4}
OLD_FLOOR=${OLD_FLOOR:-0}
TIMEOUT=${TIMEOUT:-1800}
DEFAULT_RESYNC=600 # the operator's --resync-seconds default (operator/src/main.rs)
PAGE_SIZE=$(sed -n 's/^const PAGE_SIZE: u32 = \([0-9]*\);/\1/p' operator/src/cache.rs) # objects per list page (operator/src/cache.rs)
if ((RESYNC < 10 || QUIET <= RESYNC)); then
  echo "QUIET ($QUIET s) must be longer than RESYNC ($RESYNC s, at least 10) so one full resync falls inside the quiet interval" >&2
  exit 2
fi

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
# N above 4000 gets a second range at run time (wide_service_range).
export BERTH_SERVICE_CIDR=${BERTH_SERVICE_CIDR:-10.0.0.0/20}
# kwok nodes only: the real node belongs to the default cluster (one per machine).
export BERTH_NODE=0
export KUBECONFIG=$BERTH_CLUSTER_DIR/kubeconfig
OUT=$ROOT/target/bench-scale; mkdir -p "$OUT"
RESULTS=$OUT/results.txt
K="$(tests/cluster/build.sh --print)/kubectl"
LABEL=berth.dev/microservice
PORT=18181
CLK=$(getconf CLK_TCK)

tests/cluster/up.sh >/dev/null
cargo build --release -q -p berth-operator
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/berth-operator
"$K" apply --server-side -f crds/microservice.yaml >/dev/null
"$K" wait --for=condition=Established crd/microservices.berth.dev >/dev/null

# The bench's own reads (the polls) go to the API server with curl, as the
# same admin user as kubectl: much lighter than a kubectl process a second.
SERVER=$("$K" config view --minify -o jsonpath='{.clusters[0].cluster.server}')
PKI=$BERTH_CLUSTER_DIR/pki
api() { curl -sSf --max-time 120 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$SERVER$1"; }
api /readyz >/dev/null || { echo "the API server at $SERVER does not answer /readyz with $PKI/admin.crt" >&2; exit 1; }

log() { echo "$*" | tee -a "$RESULTS"; }
logp() { tee -a "$RESULTS"; }
die() { echo "ERROR: $*" | tee -a "$RESULTS" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }

# N MicroServices as YAML (one document each), image tag $3; with $4=zero:
# replicas 0 and no autoscaling (the operator-only mode: no pods).
microservices() { # ns n tag [zero]
  awk -v ns="$1" -v n="$2" -v tag="$3" -v zero="${4:-}" 'BEGIN {
    for (i = 0; i < n; i++) {
      print "---"
      print "apiVersion: berth.dev/v1alpha1"
      print "kind: MicroService"
      print "metadata: { name: svc-" i ", namespace: " ns " }"
      print "spec:"
      print "  image: registry.local/app:" tag
      print "  resources: { requests: { cpu: 10m, memory: 16Mi } }"
      if (zero == "zero") print "  replicas: 0"
      else print "  autoscaling: { minReplicas: 1, maxReplicas: 2 }"
    } }'
}

# Sends the documents of file $2 with `kubectl $3...` in $1 processes at once
# (documents dealt round-robin; each process sends its share one by one).
in_parallel() { # processes file kubectl-args...
  local p=$1 file=$2; shift 2
  local dir; dir=$(mktemp -d)
  awk -v dir="$dir" -v p="$p" '/^---$/ { n++ } { print > (dir "/part-" (n % p) ".yaml") }' "$file"
  local pids=() part pid rc=0
  for part in "$dir"/part-*.yaml; do "$K" "$@" -f "$part" >/dev/null & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  rm -rf "$dir"
  return "$rc"
}

fresh_namespace() {
  "$K" delete namespace "$1" --ignore-not-found --wait=true --timeout="${TIMEOUT}s" >/dev/null
  "$K" create namespace "$1" >/dev/null
}

# Each Service takes an address and the cluster's range (BERTH_SERVICE_CIDR)
# is a /20 (4094): above that a second ServiceCIDR is added, no restart and
# no wipe needed.
# The kwok nodes hold 350 pods each (tests/cluster/manifests/kwok-node.yaml).
# An update wave surges one new pod per MicroService before the old one goes,
# so the largest N needs room for 2N pods at once: at 1050 a wave of 1000
# stalled on Pending pods until old ones ended. Raised here, for this
# cluster only (the nodes are simulated, so the room costs nothing).
room_for_pods() {
  local largest=0 n per_node
  for n in "${SIZES[@]}"; do ((n > largest)) && largest=$n; done
  per_node=$(((2 * largest + 100) / 3 + 1))
  ((per_node > 350)) || return 0
  for node in kwok-node-0 kwok-node-1 kwok-node-2; do
    "$K" patch node "$node" --subresource=status --type=merge \
      -p "{\"status\":{\"capacity\":{\"pods\":\"$per_node\"},\"allocatable\":{\"pods\":\"$per_node\"}}}" >/dev/null
  done
}

wide_service_range() {
  "$K" apply -f - >/dev/null <<'YAML'
apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata: { name: berth-bench-wide }
spec: { cidrs: [10.16.0.0/16] }
YAML
  "$K" wait --for=condition=Ready servicecidr/berth-bench-wide --timeout=60s >/dev/null
}

# --- Polls (API server reads of the bench itself) ---------------------------
path() { # kind ns
  case $1 in
    deployments) echo "/apis/apps/v1/namespaces/$2/deployments" ;;
    services) echo "/api/v1/namespaces/$2/services" ;;
    horizontalpodautoscalers) echo "/apis/autoscaling/v2/namespaces/$2/horizontalpodautoscalers" ;;
    microservices) echo "/apis/berth.dev/v1alpha1/namespaces/$2/microservices" ;;
    *) die "no API path for $1" ;;
  esac
}
# Objects of a kind in a namespace, from one item and the server's
# remainingItemCount (no list of N objects a second).
count() { api "$(path "$1" "$2")?limit=1" | jq '(.items | length) + (.metadata.remainingItemCount // 0)'; }
all_exist() { # ns n kind...
  local ns=$1 n=$2 kind; shift 2
  for kind in "$@"; do [[ $(count "$kind" "$ns") == "$n" ]] || return 1; done
}
statuses_current() {
  api "$(path microservices "$1")" | jq '[.items[] | select(.metadata.generation == .status.observedGeneration)] | length'
}
converged() { # ns n kind...: every child exists and every status is current
  all_exist "$@" && [[ $(statuses_current "$1") == "$2" ]]
}
images_are() { # ns n tag: every Deployment has the image of tag
  [[ $(api "$(path deployments "$1")" |
    jq --arg t ":$3" '[.items[] | select(.spec.template.spec.containers[0].image | endswith($t))] | length') == "$2" ]]
}
rolled_out_now() { # ns: every Deployment's status has caught up with its spec
  [[ $(api "$(path deployments "$1")" | jq '[.items[] | select(.metadata.generation != .status.observedGeneration
      or .status.replicas != .status.updatedReplicas or .status.updatedReplicas != .status.readyReplicas)] | length') == 0 ]]
}

# The HPA controller gets the pods' metrics some 15-30 s after they are
# Ready (ScalingActive=True, desiredReplicas set): real status news for Berth.
autoscalers_active_now() { # ns n
  [[ $(api "$(path horizontalpodautoscalers "$1")" |
    jq '[.items[] | select(any(.status.conditions[]?; .type == "ScalingActive" and .status == "True"))] | length') == "$2" ]]
}
autoscalers_active() { # ns n: waits up to 300 s, then goes on with a note
  local t0; t0=$(now)
  until autoscalers_active_now "$1" "$2"; do
    if [[ $(since "$t0" | cut -d. -f1) -ge 300 ]]; then
      log "  note: not every HPA of $1 has its metrics (ScalingActive=True) after 300 s; status news may still come"
      return 0
    fi
    sleep 1
  done
}

# Polls "$@" once a second until it passes; fails the run after TIMEOUT.
wait_until() { # what check...
  local what=$1 t0; shift; t0=$(now)
  until "$@"; do
    [[ $(since "$t0" | cut -d. -f1) -lt $TIMEOUT ]] || die "gave up after ${TIMEOUT}s waiting for $what"
    sleep 1
  done
}
# Waits until every Deployment has finished rolling out, so what follows is
# not disturbed by real status news.
rolled_out() { wait_until "the Deployments of $1 to roll out" rolled_out_now "$1"; }

# The one converge measurement, shared by Berth's runs and the floors: from
# just before the first request, the sender runs in the background and the
# check is polled once a second until it passes. Sets SENT_S (the sender had
# returned) and DONE_S (the check passed), in seconds from the start.
measure() { # check... -- sender...
  local check=()
  while [[ $1 != -- ]]; do check+=("$1"); shift; done
  shift
  local mark t0 sender; mark=$(mktemp); t0=$(now)
  MEASURE_T0=$t0 # for a later mark of the same run (the wave's rollout)
  { "$@"; now >"$mark"; } &
  sender=$!
  until "${check[@]}"; do
    if [[ ! -s $mark ]] && ! kill -0 "$sender" 2>/dev/null; then die "sending failed: $*"; fi
    [[ $(since "$t0" | cut -d. -f1) -lt $TIMEOUT ]] || die "gave up after ${TIMEOUT}s waiting for: ${check[*]}"
    sleep 1
  done
  DONE_S=$(since "$t0")
  wait "$sender" || die "sending failed: $*"
  SENT_S=$(awk -v a="$t0" -v b="$(cat "$mark")" 'BEGIN { printf "%.1f", b - a }')
  rm -f "$mark"
}

# --- The operator ------------------------------------------------------------
scrape() { curl -sf --max-time 30 "http://127.0.0.1:$PORT/metrics"; }
sum_of() { awk -v m="$1" '$1 ~ "^"m"({|$)" { s += $NF } END { printf "%d", s }'; } # metric, on stdin
metric() { scrape | sum_of "$1"; }
requests_by_verb() {
  scrape | awk '/^berth_api_requests_total\{/ {
      match($0, /verb="[^"]*"/); v = substr($0, RSTART + 6, RLENGTH - 7)
      if (match($0, /resource="\/[^"]*"/)) v = v "(" substr($0, RSTART + 10, RLENGTH - 11) ")"
      s[v] += $NF }
    END { for (v in s) printf "%s=%d ", v, s[v] }' | tr ' ' '\n' | sort | tr '\n' ' '
}
# Requests of one verb by resource, e.g. list: "deployments=1 services=1".
verb_by_resource() {
  scrape | awk -v verb="$1" '/^berth_api_requests_total\{/ && index($0, "verb=\"" verb "\"") {
      match($0, /resource="[^"]*"/); s[substr($0, RSTART + 10, RLENGTH - 11)] += $NF; t += $NF }
    END { printf "%d (", t; for (r in s) printf " %s=%d", r, s[r]; printf " )" }'
}
# Requests per MicroService from a saved /metrics text: child applies, status
# writes, Events, GETs and the rest; lists, watches and the operator's own
# GET /readyz are not per MicroService and are printed apart.
per_microservice() { # metrics-file n
  awk -v n="$2" '
    function lab(name) {
      if (!match($0, "[{,]" name "=\"[^\"]*\"")) return ""
      return substr($0, RSTART + length(name) + 3, RLENGTH - length(name) - 4)
    }
    function share(v) { return sprintf("%.2f", v / n) }
    /^berth_api_requests_total\{/ {
      verb = lab("verb"); res = lab("resource"); v = $NF
      if (verb == "list" || verb == "watch") { lw[verb] += v; lwr[verb] = lwr[verb] " " res "=" v; next }
      if (res == "/readyz") { readyz += v; next }
      if (verb == "patch" && res == "microservices/status") st += v
      else if (verb == "patch" && res !~ /^microservices/) ap += v
      else if (verb == "create" && res == "events") ev += v
      else if (verb == "get") gt += v
      else { ot += v; od = od " " verb "(" res ")=" v }
      tot += v
    }
    /^berth_api_writes_total\{/ { w[lab("kind") "/" lab("verb")] += $NF }
    END {
      printf "  requests per MicroService: %s = child applies %s + status writes %s + Event creates %s + GETs %s + others %s%s\n",
        share(tot), share(ap), share(st), share(ev), share(gt), share(ot), (od == "" ? "" : " (" substr(od, 2) ")")
      printf "    (not per MicroService, whole run: list %d (%s), watch %d (%s), GET /readyz %d)\n",
        lw["list"], substr(lwr["list"], 2), lw["watch"], substr(lwr["watch"], 2), readyz
      printf "  writes per MicroService (berth_api_writes_total by kind/verb):"
      for (k in w) printf " %s=%s", k, share(w[k])
      printf "\n"
    }' "$1"
}
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
cpu_s() { awk -v t="$CLK" '{ printf "%.1f", ($14 + $15) / t }' "/proc/$1/stat"; }
secs() { awk -v c="$1" -v t="$CLK" 'BEGIN { printf "%.2f", c / t }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
per_ms_kib() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.1f KiB (%d bytes)", (b - a) / n, (b - a) * 1024 / n }'; }

OP='' RESTART_T0='' RESTART_ALL='' QMIN=0 QMAX=0
start_operator() { # ns extra-args...
  local ns=$1; shift
  "$BIN" run --namespace "$ns" --metrics-addr "127.0.0.1:$PORT" --concurrency "$CONCURRENCY" "$@" >>"$OUT/operator-$ns.log" 2>&1 &
  OP=$!
  until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do
    kill -0 "$OP" 2>/dev/null || die "the operator exited at start (log: $OUT/operator-$ns.log)"
    sleep 0.1
  done
}
stop_operator() {
  [[ -n $OP ]] || return 0
  kill -9 "$OP" 2>/dev/null || true; wait "$OP" 2>/dev/null || true; OP=
}
trap stop_operator EXIT

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

reconciled_at_least() { (($(metric berth_reconciles_total) >= $1)); }

# SIGKILL, start again with "$@", and measure: caches synced (/readyz), list
# requests (one per page), every MicroService reconciled, writes (must be 0).
restart_operator() { # n ns what extra-args...
  local n=$1 ns=$2 what=$3; shift 3
  stop_operator
  local t0 ready all; t0=$(now)
  RESTART_T0=$t0 RESTART_ALL=
  start_operator "$ns" "$@"
  ready=$(since "$t0")
  wait_until "$n reconciles after the restart" reconciled_at_least "$n"
  all=$(since "$t0")
  RESTART_ALL=$(now)
  sleep 5
  log "$what: ready (caches synced) in ${ready}s; all $n reconciled in ${all}s; writes after restart: $(metric berth_api_writes_total) (must be 0); children found unchanged: $(metric berth_children_unchanged_total)"
  log "  list requests (pages of $PAGE_SIZE): $(verb_by_resource list); RSS $(mb "$(rss_kb "$OP")"), peak $(mb "$(hwm_kb "$OP")"), CPU $(cpu_s "$OP")s; requests: $(requests_by_verb)"
}

# QUIET seconds with no change, the operator running with --resync-seconds
# RESYNC since its restart (restart_operator): writes (must be 0),
# reconciles, requests, RSS (every 5 s) and CPU. The first resyncs are due
# RESYNC after the restart's own reconciles, so the resync window runs from
# a sample 1 s before restart + RESYNC to the first sample, from the
# restart's last reconcile + RESYNC on, with N more reconciles. Reconciles
# and CPU before the window (watch events, /readyz) give the background rate,
# subtracted from the window. /metrics is scraped only for these samples and
# what one scrape costs the operator is measured and subtracted.
float_lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
plus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a + b }'; }
pause_until() { # epoch seconds; samples RSS into QMIN/QMAX every 5 s at most
  local left r
  while :; do
    left=$(awk -v t="$1" -v n="$(now)" 'BEGIN { d = t - n; if (d > 5) d = 5; printf "%.2f", d }')
    float_lt 0 "$left" || return 0
    sleep "$left"
    r=$(rss_kb "$OP"); ((r < QMIN)) && QMIN=$r; ((r > QMAX)) && QMAX=$r
  done
}
quiet() { # n
  local n=$1 snap
  snap=$(scrape)
  printf '%s\n' "$snap" >"$OUT/metrics-quiet-start.txt"
  local rec0 w0 t0 c0 rss0
  rec0=$(sum_of berth_reconciles_total <<<"$snap"); w0=$(sum_of berth_api_writes_total <<<"$snap")
  t0=$(now); c0=$(cpu_ticks "$OP"); rss0=$(rss_kb "$OP")
  QMIN=$rss0 QMAX=$rss0
  local due done_after end scrapes=0 late=''
  due=$(plus "$RESTART_T0" "$((RESYNC - 1))"); done_after=$(plus "$RESTART_ALL" "$RESYNC"); end=$(plus "$t0" "$QUIET")
  # The base sample, just before the first resyncs are due.
  local b_t=0 b_c=$c0 b_rec=$rec0 b_w=$w0
  if float_lt "$t0" "$due"; then
    pause_until "$due"
    b_t=$(since "$t0"); b_c=$(cpu_ticks "$OP"); snap=$(scrape); scrapes=$((scrapes + 1))
    b_rec=$(sum_of berth_reconciles_total <<<"$snap"); b_w=$(sum_of berth_api_writes_total <<<"$snap")
  else
    late=1
  fi
  # The end of the resync window: N more reconciles.
  local e_t='' e_c='' e_rec='' e_w='' c rec
  pause_until "$done_after"
  while float_lt "$(now)" "$end"; do
    c=$(cpu_ticks "$OP"); snap=$(scrape); rec=$(sum_of berth_reconciles_total <<<"$snap")
    if ((rec >= b_rec + n)); then
      e_t=$(since "$t0"); e_c=$c; e_rec=$rec; e_w=$(sum_of berth_api_writes_total <<<"$snap")
      scrapes=$((scrapes + 1)); break
    fi
    scrapes=$((scrapes + 1))
    pause_until "$(plus "$(now)" 2)"
  done
  local w_scrapes=$scrapes # those after b_c, the last one after e_c
  pause_until "$end"
  local dur c1; dur=$(since "$t0"); c1=$(cpu_ticks "$OP")
  # What one scrape of /metrics costs the operator at this N.
  local s0 s1; s0=$(cpu_ticks "$OP"); for _ in 1 2 3 4 5; do scrape >/dev/null; done; s1=$(cpu_ticks "$OP")
  scrape >"$OUT/metrics-quiet-end.txt"
  local rec1 w1; rec1=$(sum_of berth_reconciles_total <"$OUT/metrics-quiet-end.txt"); w1=$(sum_of berth_api_writes_total <"$OUT/metrics-quiet-end.txt")
  log "quiet ${dur}s (operator restarted with --resync-seconds $RESYNC; first resyncs due ${RESYNC}s after its start): writes $((w1 - w0)) (must be 0); reconciles $((rec1 - rec0)); RSS $(mb "$rss0") -> $(mb "$(rss_kb "$OP")") (min $(mb "$QMIN"), max $(mb "$QMAX"))"
  log "  requests during the quiet interval: $(delta "$OUT/metrics-quiet-start.txt" "$OUT/metrics-quiet-end.txt" berth_api_requests_total verb,resource | sed -E 's#([a-z]+)/([^= ]+)=#\1(\2)=#g')"
  [[ -z $late ]] || log "  note: the quiet interval began after the first resyncs were due (the restart's reconciles took $(awk -v a="$RESTART_T0" -v b="$RESTART_ALL" 'BEGIN { printf "%.1f", b - a }')s): raise RESYNC"
  awk -v n="$n" -v t="$CLK" -v d="$dur" -v r="$RESYNC" -v dr="$DEFAULT_RESYNC" -v c=$((c1 - c0)) -v k="$scrapes" -v sc="$(awk -v a="$s0" -v b="$s1" 'BEGIN { print (b - a) / 5 }')" \
    -v b_t="$b_t" -v b_c=$((b_c - c0)) -v b_rec=$((b_rec - rec0)) \
    -v e_t="$e_t" -v w_c="$(( ${e_c:-0} - b_c ))" -v w_rec="$(( ${e_rec:-0} - b_rec ))" -v w_w="$(( ${e_w:-0} - b_w ))" -v wk="$((w_scrapes - 1))" 'BEGIN {
      printf "  the bench scraped /metrics %d times in the interval; one scrape costs the operator %.1f ms of CPU at this N (subtracted below)\n", k, sc / t * 1000
      cq = (c - k * sc) / t; if (cq < 0) cq = 0
      if (e_t == "") {
        printf "  no full resync of %d seen in the quiet interval (reconciles +%d before it was due)\n", n, b_rec
        printf "  CPU over the quiet interval: %.2fs -> %.1fs per hour\n", cq, cq * 3600 / d
        exit
      }
      w_t = e_t - b_t
      brec = b_t > 0 ? b_rec / b_t : 0; bc = b_t > 0 ? b_c / b_t : 0 # background, per second (ticks)
      rs_rec = w_rec - brec * w_t; rs_c = (w_c - wk * sc - bc * w_t) / t; if (rs_c < 0) rs_c = 0
      if (rs_rec < n / 2) {
        # kube-runtime keeps one pending entry per object: an event reconcile
        # takes the place of the pending resync, and its own requeue is RESYNC later.
        printf "  reconciles: %d in %.0fs before the first resync was due (%.2f/s, from watch events) and %d in the %.1fs window where it was due (%.0f over that rate): no separate resync, since every MicroService is reconciled by events (here the HPA controller'"'"'s status updates) more often than every %d s, and each reconcile moves its requeue %d s on\n",
          b_rec, b_t, brec, w_rec, w_t, rs_rec, r, r
        printf "  writes in that window: %d (must be 0); a resync'"'"'s own CPU: see the --operator-only row\n", w_w
        printf "  CPU over the quiet interval, less the scrapes: %.2fs -> %.1fs per hour, watch-event reconciles included (the same at the default --resync-seconds %d)\n",
          cq, cq * 3600 / d, dr
        exit
      }
      printf "  reconciles: %d in %.0fs before the first resync was due (%.2f/s: watch events); %d in the %.1fs resync window, %.0f of them the resync (%.2f x %d)\n",
        b_rec, b_t, brec, w_rec, w_t, rs_rec, rs_rec / n, n
      printf "  one full resync of %d: CPU %.2fs (%.3f ms per MicroService); writes in the resync window: %d (must be 0)\n",
        n, rs_c, rs_c * 1000 / n, w_w
      printf "  CPU over the quiet interval, less the scrapes: %.2fs -> %.1fs per hour at --resync-seconds %d; at the default %d s: %.1fs per hour (background %.1fs/h + %d resyncs x %.2fs)\n",
        cq, cq * 3600 / d, r, dr, bc / t * 3600 + 3600 / dr * rs_c, bc / t * 3600, 3600 / dr, rs_c
    }' | logp
}

# --- API server (priority and fairness) ---------------------------------------
apf_snapshot() { "$K" get --raw /metrics | grep '^apiserver_flowcontrol_' >"$1" || true; }
# Sum of metric $2 in snapshot $1 by the values of labels $3 (comma-separated).
by_labels() { # file metric labels
  awk -v m="$2" -v labels="$3" 'index($0, m "{") == 1 || $1 == m {
      nl = split(labels, ls, ","); k = ""
      for (i = 1; i <= nl; i++) {
        v = "-"
        if (match($0, "[{,]" ls[i] "=\"[^\"]*\"")) v = substr($0, RSTART + length(ls[i]) + 3, RLENGTH - length(ls[i]) - 4)
        k = k (i > 1 ? "/" : "") v
      }
      s[k] += $NF
    }
    END { for (k in s) printf "%s %s\n", k, s[k] }' "$1" | sort
}
delta() { # before after metric labels: "key=delta" for every non-zero change
  local d
  d=$(awk 'NR == FNR { b[$1] = $2; next } { x = $2 - b[$1]; if (x != 0) printf "%s=%g ", $1, x }' \
    <(by_labels "$1" "$3" "$4") <(by_labels "$2" "$3" "$4"))
  echo "${d:-none}"
}
apf_report() { # before after what
  local b=$1 a=$2 limit
  log "API server, priority and fairness ($3):"
  limit=$(by_labels "$a" apiserver_flowcontrol_request_concurrency_limit priority_level | awk '{ printf "%s=%s ", $1, $2 }')
  if [[ -n $limit ]]; then
    log "  request_concurrency_limit by priority level: $limit"
  else
    log "  request_concurrency_limit: not exported by this API server; nominal/current limit seats by priority level: $(join <(by_labels "$a" apiserver_flowcontrol_nominal_limit_seats priority_level) \
      <(by_labels "$a" apiserver_flowcontrol_current_limit_seats priority_level) | awk '{ printf "%s=%s/%s ", $1, $2, $3 }')"
  fi
  log "  in queue now (current_inqueue_requests by priority level): $(by_labels "$a" apiserver_flowcontrol_current_inqueue_requests priority_level | awk '$2 != 0 { printf "%s=%s ", $1, $2; q = 1 } END { if (!q) printf "0 everywhere" }')"
  log "  waited in queues (request_wait_duration_seconds, delta): $(join <(by_labels "$b" apiserver_flowcontrol_request_wait_duration_seconds_count priority_level) \
      <(by_labels "$a" apiserver_flowcontrol_request_wait_duration_seconds_count priority_level) | join - <(by_labels "$b" apiserver_flowcontrol_request_wait_duration_seconds_sum priority_level) |
      join - <(by_labels "$a" apiserver_flowcontrol_request_wait_duration_seconds_sum priority_level) |
      awk '$3 > $2 { printf "%s: %d requests, mean %.1f ms; ", $1, $3 - $2, ($5 - $4) / ($3 - $2) * 1000; q = 1 } END { if (!q) printf "none" }')"
  log "  rejected (rejected_requests_total, delta by priority_level/reason): $(delta "$b" "$a" apiserver_flowcontrol_rejected_requests_total priority_level,reason)"
  log "  dispatched (dispatched_requests_total, delta by flow_schema/priority_level): $(delta "$b" "$a" apiserver_flowcontrol_dispatched_requests_total flow_schema,priority_level)"
  # The API server names the flow schema and priority level of each request
  # in response headers; the operator uses this same kubeconfig (admin).
  local fs pl sa
  fs=$(curl -sS -D - -o /dev/null --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$SERVER/version" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "x-kubernetes-pf-flowschema-uid" { print $2 }')
  fs=$("$K" get flowschemas -o jsonpath='{range .items[*]}{.metadata.uid} {.metadata.name} {.spec.priorityLevelConfiguration.name}{"\n"}{end}' | awk -v u="$fs" '$1 == u { print $2 " (priority level " $3 ")" }')
  pl=$("$K" get flowschema service-accounts -o jsonpath='{.spec.priorityLevelConfiguration.name}' 2>/dev/null || echo "?")
  sa="a ServiceAccount (a real install) would fall under flow schema service-accounts (priority level $pl)"
  log "  the operator's requests: flow schema ${fs:-unknown}; it authenticates with the admin kubeconfig (group system:masters), so APF neither queues nor rejects it here; $sa"
}

# --- The runs ------------------------------------------------------------------
header() { # n mode-text
  log ""
  log "## N=$1$2 ($(date -u +%FT%TZ), $(nproc) cores, $(uname -r), QUIET=${QUIET}s, RESYNC=${RESYNC}s, CONCURRENCY=$CONCURRENCY, PARALLEL=$PARALLEL, operator $(git rev-parse --short HEAD 2>/dev/null || echo ?)+working tree)"
}

# Creates the N MicroServices of file $3 and measures converge, requests per
# MicroService, memory and CPU. Sets CONVERGE_S, IDLE_KB, IDLE_TICKS.
converge_berth() { # n ns file kinds...
  local n=$1 ns=$2 file=$3; shift 3
  start_operator "$ns"
  sleep 1
  IDLE_KB=$(rss_kb "$OP"); IDLE_TICKS=$(cpu_ticks "$OP")
  log "operator ready and idle: RSS $(mb "$IDLE_KB"), CPU $(secs "$IDLE_TICKS")s"
  measure converged "$ns" "$n" "$@" -- in_parallel "$PARALLEL" "$file" create
  CONVERGE_S=$DONE_S
  local c; c=$(cpu_ticks "$OP")
  scrape >"$OUT/metrics-$ns-converge.txt"
  log "create: $n MicroServices sent in ${SENT_S}s; converged (all ${n}x$# children + all statuses) in ${CONVERGE_S}s"
  log "  operator at converge: RSS $(mb "$(rss_kb "$OP")"), peak RSS (VmHWM) $(mb "$(hwm_kb "$OP")"), CPU $(secs "$c")s = $(awk -v c=$((c - IDLE_TICKS)) -v t="$CLK" -v n="$n" 'BEGIN { printf "%.2f", c / t * 1000 / n }') ms per MicroService over idle"
  log "  requests by verb: $(requests_by_verb)"
  per_microservice "$OUT/metrics-$ns-converge.txt" "$n" | logp
}
settled() { # n [what came first]
  local w; w=$(settle)
  local kb; kb=$(rss_kb "$OP")
  log "settled (${2:-}writes unchanged for 10 s, at $w): RSS $(mb "$kb") = $(per_ms_kib "$IDLE_KB" "$kb" "$1") per MicroService over idle; peak $(mb "$(hwm_kb "$OP")"); CPU $(cpu_s "$OP")s"
}

bench() {
  local n=$1 ns=bench-n$1 floor=bench-floor-n$1
  header "$n" ""
  ((n <= 4000)) || wide_service_range
  apf_snapshot "$OUT/apf-$n-before.txt"
  fresh_namespace "$ns"
  microservices "$ns" "$n" 1 >"$OUT/ms-$n.yaml"
  microservices "$ns" "$n" 2 >"$OUT/ms-$n-v2.yaml"

  # Converge: every child exists and every status is written.
  converge_berth "$n" "$ns" "$OUT/ms-$n.yaml" deployments services horizontalpodautoscalers
  local berth_s=$CONVERGE_S
  rolled_out "$ns"
  autoscalers_active "$ns" "$n"
  settled "$n" "Deployments rolled out, every HPA with metrics, "

  # The floor's children: Berth's, as Berth made them (server fields, the
  # owner reference and the Deployment's revision removed; replicas kept),
  # grouped per MicroService in a List, as a reconcile makes them together.
  "$K" get deployments,services,horizontalpodautoscalers -n "$ns" -l "$LABEL" -o json |
    jq -c --arg ns "$floor" --arg key "$LABEL" '[.items[]
      | del(.status, .metadata.uid, .metadata.resourceVersion, .metadata.creationTimestamp,
            .metadata.managedFields, .metadata.ownerReferences, .metadata.generation,
            .metadata.annotations["deployment.kubernetes.io/revision"])
      | .metadata.namespace = $ns
      | if .kind == "Service" then del(.spec.clusterIP, .spec.clusterIPs) else . end]
      | group_by(.metadata.labels[$key])[]
      | { apiVersion: "v1", kind: "List",
          items: sort_by({Deployment: 0, Service: 1, HorizontalPodAutoscaler: 2}[.kind]) }' |
    awk '{ print "---"; print }' >"$OUT/floor-$n.yaml"

  # Quiet, with one full resync: restart with a short resync period.
  restart_operator "$n" "$ns" "restart into the quiet interval (--resync-seconds $RESYNC)" --resync-seconds "$RESYNC"
  quiet "$n"

  # Update wave: every image changes at once (the operator back on its defaults).
  restart_operator "$n" "$ns" "restart for the update wave (default flags)"
  local w0; w0=$(metric berth_api_writes_total)
  measure images_are "$ns" "$n" 2 -- in_parallel "$CONCURRENCY" "$OUT/ms-$n-v2.yaml" apply --server-side --force-conflicts --field-manager=bench
  local wave_s=$DONE_S
  log "update wave: all $n Deployments on the new image ${wave_s}s after the first apply (sent in ${SENT_S}s); writes +$(($(metric berth_api_writes_total) - w0)); peak RSS $(mb "$(hwm_kb "$OP")"); CPU $(cpu_s "$OP")s"
  log "  requests by verb: $(requests_by_verb)"
  rolled_out "$ns"
  local wave_rolled_s; wave_rolled_s=$(since "$MEASURE_T0")
  log "  rolled out (every Deployment's pods updated and ready): ${wave_rolled_s}s after the first apply"
  autoscalers_active "$ns" "$n"
  settle >/dev/null

  # Restart: kill -9, start again, no writes for correct objects.
  restart_operator "$n" "$ns" "restart after the wave"

  # Memory choice, before/after: the same objects cached with every managedFields entry.
  stop_operator
  start_operator "$ns" --untrimmed-cache
  wait_until "$n reconciles" reconciled_at_least "$n"
  sleep 5
  log "untrimmed managedFields (before): RSS $(mb "$(rss_kb "$OP")"), peak $(mb "$(hwm_kb "$OP")") (compare with the restart line above: trimmed)"
  stop_operator
  apf_snapshot "$OUT/apf-$n-after.txt"
  local statuses; statuses=$(awk '/^berth_api_writes_total\{/ && /kind="MicroService"/ && /verb="status"/ { s += $NF } END { printf "%d", s }' "$OUT/metrics-$ns-converge.txt")

  # Floor: Berth's namespace goes first (its pods too), so the floor starts
  # from the same cluster state. A plain client creates the same children at
  # the operator's parallelism, measured exactly as Berth's converge.
  "$K" delete namespace "$ns" --wait=true --timeout="${TIMEOUT}s" >/dev/null
  fresh_namespace "$floor"
  measure all_exist "$floor" "$n" deployments services horizontalpodautoscalers -- in_parallel "$CONCURRENCY" "$OUT/floor-$n.yaml" create
  local floor_s=$DONE_S
  log "fair floor: the same $((n * 3)) children (Deployments at Berth's replicas, Services, HPAs) created by kubectl create x$CONCURRENCY into $floor, all present in ${floor_s}s (sent in ${SENT_S}s); Berth/fair floor = $(ratio "$berth_s" "$floor_s") (Berth ${berth_s}s includes its $statuses status writes at converge, which the floor does not make)"

  # Update-wave floor: the same Deployments' image patched at the same parallelism.
  rolled_out "$floor"
  "$K" get deployments -n "$floor" -o json | jq -c '.items[] | { apiVersion, kind, metadata: { name: .metadata.name, namespace: .metadata.namespace } }' |
    awk '{ print "---"; print }' >"$OUT/floor-$n-deployments.yaml"
  measure images_are "$floor" "$n" 2 -- in_parallel "$CONCURRENCY" "$OUT/floor-$n-deployments.yaml" patch --type=json \
    -p '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"registry.local/app:2"}]'
  log "update-wave floor: $n Deployments' image patched by kubectl patch x$CONCURRENCY, all on the new image in ${DONE_S}s (sent in ${SENT_S}s); Berth wave/floor wave = $(ratio "$wave_s" "$DONE_S")"
  rolled_out "$floor"
  local floor_rolled_s; floor_rolled_s=$(since "$MEASURE_T0")
  log "  rolled out: ${floor_rolled_s}s after the first patch; Berth/floor rolled out = $(ratio "$wave_rolled_s" "$floor_rolled_s")"
  "$K" delete namespace "$floor" --wait=true --timeout="${TIMEOUT}s" >/dev/null

  if [[ $OLD_FLOOR == 1 ]]; then
    # The floor of earlier rounds, for comparison: 0 replicas, no annotations,
    # time until `kubectl create` x PARALLEL returns.
    local old=bench-oldfloor-n$n t0
    fresh_namespace "$old"
    jq -c --arg ns "$old" '.items[] | del(.metadata.annotations) | .metadata.namespace = $ns
        | if .kind == "Deployment" then .spec.replicas = 0 else . end' <(grep -v '^---$' "$OUT/floor-$n.yaml") |
      awk '{ print "---"; print }' >"$OUT/oldfloor-$n.yaml"
    t0=$(now)
    in_parallel "$PARALLEL" "$OUT/oldfloor-$n.yaml" create
    local old_s; old_s=$(since "$t0")
    log "old floor: $((n * 3)) children (Deployments at 0 replicas) created by kubectl create x$PARALLEL in ${old_s}s (until kubectl returned); Berth/old floor = $(ratio "$berth_s" "$old_s") (against Berth/fair floor = $(ratio "$berth_s" "$floor_s"))"
    "$K" delete namespace "$old" --wait=true --timeout="${TIMEOUT}s" >/dev/null
  fi
  apf_report "$OUT/apf-$n-before.txt" "$OUT/apf-$n-after.txt" "from before Berth's first create to after its last restart; all clients"
}

bench_operator_only() {
  local n=$1 ns=bench-op-n$1
  header "$n" " operator-only (replicas 0, no autoscaling: Deployment + Service, no pods)"
  ((n <= 4000)) || wide_service_range
  apf_snapshot "$OUT/apf-op-$n-before.txt"
  fresh_namespace "$ns"
  microservices "$ns" "$n" 1 zero >"$OUT/ms-op-$n.yaml"
  converge_berth "$n" "$ns" "$OUT/ms-op-$n.yaml" deployments services
  settled "$n"
  restart_operator "$n" "$ns" "restart (--resync-seconds $RESYNC for the quiet interval)" --resync-seconds "$RESYNC"
  quiet "$n"
  stop_operator
  apf_snapshot "$OUT/apf-op-$n-after.txt"
  "$K" delete namespace "$ns" --wait=true --timeout="${TIMEOUT}s" >/dev/null
  apf_report "$OUT/apf-op-$n-before.txt" "$OUT/apf-op-$n-after.txt" "from before the first create to after the quiet interval; all clients"
}

[[ $MODE == operator-only ]] || room_for_pods
for n in "${SIZES[@]}"; do
  if [[ $MODE == full ]]; then bench "$n"; else bench_operator_only "$n"; fi
done
