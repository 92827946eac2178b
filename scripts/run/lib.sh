# shellcheck shell=bash disable=SC2034  # settings the other pieces use
# Settings and helpers shared by scripts/run.sh and its pieces (sourced, not run).
bin=$(tests/cluster/build.sh --print)
cluster_dir=${BERTH_CLUSTER_DIR:-$HOME/.cache/berth/cluster}
run_dir=$HOME/.cache/berth/run
namespace=${BERTH_RUN_NAMESPACE:-shop}
operator_namespace=berth-system
node=berth-node-0
if [ "${BERTH_USE_EXISTING_CLUSTER:-}" != 1 ]; then
  export KUBECONFIG="$cluster_dir/kubeconfig"
fi
mkdir -p "$run_dir"

kubectl() { "$bin/kubectl" "$@"; }
# Without helm's note that the operator chart's CRD is a symbolic link.
helm() { "$bin/helm" "$@" 2> >(grep -v 'found symbolic link in path' >&2); }
step() { echo "==> $*"; }
say() { echo "    $*"; }
die() { echo "run.sh: $*" >&2; exit 1; }

# `q ARG...`: the arguments as a shell would need them typed (for printing).
q() {
  local a out=()
  for a in "$@"; do
    case $a in
      *[!A-Za-z0-9_./:=@%+-]*) out+=("'${a//\'/\'\\\'\'}'") ;;
      *) out+=("$a") ;;
    esac
  done
  echo "${out[*]}"
}

api_answers() { kubectl get --raw /readyz >/dev/null 2>&1; }

apply_crd() {
  kubectl apply --server-side --force-conflicts --field-manager=berth-run -f crds/microservice.yaml >/dev/null
  kubectl wait --for=condition=Established crd/microservices.berth.dev --timeout=60s >/dev/null
}

ensure_namespace() {
  kubectl create namespace "$1" --dry-run=client -o yaml |
    kubectl apply --server-side --field-manager=berth-run -f - >/dev/null
}

release_exists() { helm status "$1" -n "$2" >/dev/null 2>&1; }

# uninstall RELEASE NAMESPACE, when installed. No --wait: pods on a node that
# is gone (the fallback after a run with the node) never finish terminating.
uninstall() {
  release_exists "$1" "$2" || return 0
  say "helm uninstall $1 -n $2"
  helm uninstall "$1" -n "$2" >/dev/null
}

# wait_ready MS...: each has seen its current spec (a second run may just have
# changed it, and Ready from before the change says nothing), then is Ready.
wait_ready() {
  local ms generation
  for ms in "$@"; do
    generation=$(kubectl get ms "$ms" -n "$namespace" -o jsonpath='{.metadata.generation}')
    kubectl wait "ms/$ms" -n "$namespace" --timeout=60s \
      --for=jsonpath='{.status.observedGeneration}'="$generation" >/dev/null
  done
  local targets=("${@/#/ms/}")
  if ! kubectl wait --for=condition=Ready -n "$namespace" "${targets[@]}" --timeout=240s; then
    kubectl get ms,pods -n "$namespace" -o wide >&2 || true
    kubectl describe ms -n "$namespace" "$@" | sed -n '/^Status:/,$p' >&2 || true
    die "the MicroServices did not become Ready (above: their pods and conditions)"
  fi
}
