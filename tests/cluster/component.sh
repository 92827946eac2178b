#!/usr/bin/env bash
# Stops, starts or checks one component of the running local cluster, for
# fault tests (e.g. stop kube-apiserver or etcd for 20 s, then start it again).
#
#   tests/cluster/component.sh stop|start|restart|status NAME
#   NAME: etcd kube-apiserver kube-controller-manager kube-scheduler kwok metrics-server
#
# `start` waits until the component is healthy and fails (with its log tail)
# if it does not become so. Needs a cluster made by up.sh (certificates, kubeconfigs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/process.sh"
. "$here/lib/components.sh"

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1 name=$2
is_component "$name" || { say "unknown component '$name'"; usage; }
using_existing_cluster && die "BERTH_USE_EXISTING_CLUSTER=1: this cluster is not ours to stop or start"
[ -s "$KUBECONFIG_ADMIN" ] || die "no cluster in $BERTH_CLUSTER_DIR (run tests/cluster/up.sh first)"

lock_cluster
case $action in
  stop)
    before_stop "$name"
    stop_process "$name"
    say "$name stopped" ;;
  start)
    start_component "$name" || die "$name failed to start"
    after_start "$name" ;;
  restart)
    before_stop "$name"
    stop_process "$name"
    start_component "$name" || die "$name failed to start"
    after_start "$name" ;;
  status)
    if running "$name" && healthy "$name"; then say "$name: healthy (pid $(pid_of "$name"))"
    elif running "$name"; then say "$name: running but NOT healthy (pid $(pid_of "$name"))"; exit 1
    else say "$name: not running"; exit 1; fi ;;
  *) usage ;;
esac
