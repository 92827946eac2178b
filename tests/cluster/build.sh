#!/usr/bin/env bash
# Builds the local cluster's components from Go modules (pinned in tools/*/go.mod
# and versions/*) into a cache outside the repo, one directory per component and
# version, so a second run only checks that the binaries are there.
#
#   tests/cluster/build.sh            build whatever is missing
#   tests/cluster/build.sh NAME...    only these (e.g. kubectl, for an existing cluster)
#   tests/cluster/build.sh --print    print the bin directory
#
# Ready-made binaries: set BERTH_ASSETS (or KUBEBUILDER_ASSETS) to a directory
# that holds some of them; those are linked instead of built.
#
# A binary is rebuilt when its recipe (package, ldflags, the module's go.sum)
# changes, not only when the version does; the recipe's hash sits beside it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${BERTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth}
bin="$cache/bin"
[ "${1:-}" = "--print" ] && { echo "$bin"; exit 0; }
mkdir -p "$bin" "$cache/build"
# One build at a time per cache (parallel `make cluster-up`s, CI and a
# developer): the second waits, then finds the binaries there.
exec 9>"$cache/build.lock"
flock 9
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

ver() { cat "$here/versions/$1"; }
k8s=$(ver kubernetes)
k8s_minor=${k8s#v1.}; k8s_minor=${k8s_minor%%.*}
# Without these, /version reports v0.0.0-master and clients warn about skew.
k8s_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# build NAME VERSION MODULE-DIR PACKAGE [LDFLAGS] [TAGS]
only=" $* "
build() {
  local name=$1 version=$2 dir=$3 pkg=$4 ldflags=${5:-} tags=${6:-}
  [ "$only" = "  " ] || [[ $only == *" $name "* ]] || return 0
  local out="$cache/build/$name-$version"
  local assets=${BERTH_ASSETS:-${KUBEBUILDER_ASSETS:-}}
  if [ -n "$assets" ] && [ -x "$assets/$name" ]; then
    ln -sf "$assets/$name" "$bin/$name"; return
  fi
  local recipe
  recipe=$(cat "$here/tools/$dir/go.sum" "$here/tools/$dir/"*.go - <<<"$pkg $ldflags $tags" | sha256sum | cut -c1-16)
  if [ ! -x "$out" ] || [ "$(cat "$out.recipe" 2>/dev/null)" != "$recipe" ]; then
    echo "building $name $version (once; cached in $out)" >&2
    local start=$SECONDS
    (cd "$here/tools/$dir" && go build -trimpath -tags "$tags" -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg")
    mv "$out.tmp" "$out"
    echo "$recipe" >"$out.recipe"
    echo "built $name in $((SECONDS - start))s" >&2
  fi
  ln -sf "$out" "$bin/$name"
}

etcd_version=$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2}' "$here/tools/kubernetes/go.mod")
build etcd "$etcd_version" kubernetes go.etcd.io/etcd/server/v3 \
  "-X go.etcd.io/etcd/api/v3/version.GitSHA=berth"
build kube-apiserver "$k8s" kubernetes k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
build kube-controller-manager "$k8s" kubernetes k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags"
build kubectl "$k8s" kubernetes k8s.io/kubernetes/cmd/kubectl "$k8s_ldflags"
build kube-scheduler "$k8s" kubernetes k8s.io/kubernetes/cmd/kube-scheduler "$k8s_ldflags"
build kwok "$(ver kwok)" kwok sigs.k8s.io/kwok/cmd/kwok \
  "-X sigs.k8s.io/kwok/pkg/consts.Version=$(ver kwok)"
# metrics-server reports client-go's version variables (as its Makefile sets them).
build metrics-server "$(ver metrics-server)" metrics-server sigs.k8s.io/metrics-server/cmd/metrics-server \
  "-X k8s.io/client-go/pkg/version.gitVersion=$(ver metrics-server) -X k8s.io/client-go/pkg/version.gitMajor=0 -X k8s.io/client-go/pkg/version.gitMinor=8"
build helm "$(ver helm)" helm helm.sh/helm/v4/cmd/helm \
  "-X helm.sh/helm/v4/internal/version.version=$(ver helm)"

# Prometheus and promtool (tests/cluster/prometheus/): Kubernetes service
# discovery only, and no web UI assets (the query API is all we use).
prometheus_ldflags="-X github.com/prometheus/common/version.Version=$(ver prometheus | cut -c2-) -X github.com/prometheus/common/version.Branch=berth"
build prometheus "$(ver prometheus)" prometheus github.com/prometheus/prometheus/cmd/prometheus \
  "$prometheus_ldflags" "remove_all_sd enable_kubernetes_sd"
build promtool "$(ver prometheus)" prometheus github.com/prometheus/prometheus/cmd/promtool \
  "$prometheus_ldflags" "remove_all_sd enable_kubernetes_sd"

# ---- The real node (tests/cluster/lib/node.sh). kubelet and kube-proxy come
# from the control plane's module, so they share its build cache.
build kubelet "$k8s" kubernetes k8s.io/kubernetes/cmd/kubelet "$k8s_ldflags"
build kube-proxy "$k8s" kubernetes k8s.io/kubernetes/cmd/kube-proxy "$k8s_ldflags"
# containerd v2 without the snapshotters that need C libraries (overlayfs and
# native stay); runc itself is Debian's (node-deps.sh).
containerd_ldflags="-X github.com/containerd/containerd/v2/version.Version=$(ver containerd)"
containerd_tags="no_btrfs no_devmapper no_zfs"
build containerd "$(ver containerd)" containerd github.com/containerd/containerd/v2/cmd/containerd \
  "$containerd_ldflags" "$containerd_tags"
build containerd-shim-runc-v2 "$(ver containerd)" containerd github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
  "$containerd_ldflags" "$containerd_tags"
build ctr "$(ver containerd)" containerd github.com/containerd/containerd/v2/cmd/ctr \
  "$containerd_ldflags" "$containerd_tags"
# CoreDNS with only the plugins the node's Corefile uses (tools/coredns/main.go).
build coredns "$(ver coredns)" coredns . \
  "-X github.com/coredns/coredns/coremain.GitCommit=$(ver coredns)"

# The pod sandbox's pause process, from the C source the Kubernetes module
# ships (build/pause/linux/pause.c), static so it runs on a scratch image.
build_pause() {
  [ "$only" = "  " ] || [[ $only == *" pause "* ]] || return 0
  local version; version=$(ver pause)
  local out="$cache/build/pause-$version"
  if [ ! -x "$out" ]; then
    local src
    src=$(cd "$here/tools/kubernetes" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
    [ -f "$src" ] || { echo "build.sh: $src not found (go mod download k8s.io/kubernetes failed?)" >&2; exit 1; }
    command -v gcc >/dev/null || { echo "build.sh: pause needs gcc (apt-get install gcc)" >&2; exit 1; }
    gcc -Os -Wall -Werror -static -DVERSION="v$version-berth" -o "$out.tmp" "$src"
    strip "$out.tmp"; mv "$out.tmp" "$out"
  fi
  ln -sf "$out" "$bin/pause"
}
build_pause
echo "$bin"
