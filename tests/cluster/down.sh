#!/usr/bin/env bash
# Stops every process up.sh started (each one's whole process group), in
# reverse start order, and checks that none is left; with the real node,
# first deletes its pods, and afterwards removes what the node put on the
# machine and checks nothing is left (lib/node.sh). Idempotent.
#
#   tests/cluster/down.sh          stop; keep state (next up.sh is a warm start)
#   tests/cluster/down.sh --wipe   stop and delete $BERTH_CLUSTER_DIR entirely
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"

wipe=0
case ${1:-} in
  --wipe) wipe=1 ;;
  "") ;;
  *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

if using_existing_cluster; then
  say "BERTH_USE_EXISTING_CLUSTER=1: not ours to stop, nothing done"
  exit 0
fi

. "$here/lib/process.sh"
. "$here/lib/components.sh"

[ -d "$BERTH_CLUSTER_DIR" ] || { say "nothing to stop ($BERTH_CLUSTER_DIR does not exist)"; exit 0; }
lock_cluster

failed=0
# The real node's pods first, while the API server and kubelet still run.
if [ "$NODE" = 1 ]; then node_drain; fi
for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
  c=${COMPONENTS[i]}
  running "$c" || { rm -f "$pids/$c.pid"; continue; }
  before_stop "$c"
  if stop_process "$c"; then say "stopped $c"; else failed=1; fi
done

# What the node left on the machine (network, mounts, cgroups, sysctls),
# then a check against the machine as it was before the node first started.
if [ "$NODE" = 1 ]; then
  node_teardown
  leftovers=$(node_leftovers)
  if [ -n "$leftovers" ]; then
    say "the node left this behind (compared with $NODE_DIR/host-before.txt):"; echo "$leftovers" >&2
    failed=1
  else
    say "node torn down: no process, mount, network namespace, link, rule, cgroup or changed sysctl left"
  fi
fi

# A component binary still running with our state directory on its command
# line is a leftover (e.g. a pid file was lost): report it rather than guess.
left=$(pgrep -af -- "^$BERTH_BIN/[a-z-]+ .*$BERTH_CLUSTER_DIR/" || true)
if [ -n "$left" ]; then
  say "processes still running from $BERTH_CLUSTER_DIR:"; echo "$left" >&2
  failed=1
fi
[ $failed = 0 ] || die "some components did not stop"

if [ $wipe = 1 ]; then
  rm -rf "$BERTH_CLUSTER_DIR"
  say "wiped $BERTH_CLUSTER_DIR"
fi
say "cluster stopped"
