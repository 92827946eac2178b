#!/usr/bin/env bash
# The real-load scenarios of the node tests (tests/e2e/tests/node/scaling.rs,
# rollout.rs, disruption.rs), run one at a time with their figures kept:
# per scenario a JSON of figures, and for the two autoscaling runs a
# per-second CSV and an SVG plot of it. Prints the rows of results.md.
#
#   make bench-autoscaling-real     (provides the cluster with its real node,
#                                    the images, the operator and the custom
#                                    metrics adapter, then runs this)
#   bench/autoscaling/real-load.sh  (the same, once those are there; reads
#                                    KUBECONFIG, KUBECTL, HELM, BERTH_IMAGE_TAG)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${BERTH_BENCH_OUT:-$root/bench/autoscaling/real-load}
mkdir -p "$out"
cd "$root"
if ! BERTH_BENCH_OUT=$out cargo test -q -p berth-e2e --test node -- \
  scaling:: rollout:: disruption:: --test-threads=1 --nocapture; then
  echo "real-load.sh: a scenario failed (above); figures so far are in $out" >&2
  exit 1
fi
for run in cpu requests-per-second; do
  python3 bench/autoscaling/plot.py "$out/$run.csv" "$out/$run.json" "$out/$run.svg"
done
echo
echo "Machine: $(nproc) cores, $(date -u +%Y-%m-%d); figures in $out"
echo
python3 bench/autoscaling/table.py "$out"
