#!/usr/bin/env bash
# `make images`: Berth's container images, built without a registry and
# imported into the local cluster's real node (its containerd, namespace k8s.io).
#
#   scripts/images.sh [--tag TAG]... [--load | --no-load] [IMAGE...]
#   scripts/images.sh --print-tag      the default tag
#
# IMAGE: berth-operator, item-service, order-service, pause (default: all four).
# Names: berth.local/<image>:<tag>, and berth.local/pause:<tests/cluster/versions/pause>.
# Each --tag builds the three Berth images once more (a rollout test switches
# between two tags); the default is $BERTH_IMAGE_TAG (several, space-separated)
# or else the workspace version in Cargo.toml, which is the charts' appVersion.
# The label org.opencontainers.image.version=<tag> gives each tag its own digest.
#
# The Containerfile's build stage pulls rust:alpine, out of reach here, so:
#  1. one cargo build of the three binaries, statically linked against glibc
#     (crt-static; the musl target cannot be installed here), into
#     $BERTH_STATIC_TARGET_DIR (~/.cache/berth/static-target), outside the repo;
#  2. each image's own stage of the Containerfile (`FROM scratch AS <image>`
#     to the next FROM) with its `COPY --from=build /X /X` turned into
#     `COPY X /X`, built by buildah
#     (chroot isolation) in storage of its own, ~/.cache/berth/buildah. vfs,
#     not overlay: a one-layer image has nothing to share, and vfs leaves no
#     mounts behind. --timestamp 0: the same inputs give the same digest.
#  3. written as an OCI archive ~/.cache/berth/images/<image>_<tag>.tar. Its
#     inputs (binary and stage sha256, name, build flags) are kept beside it
#     in <archive>.inputs; while they hold, buildah is not run again.
#  4. imported with the cluster's ctr into $BERTH_CLUSTER_DIR/node/containerd.sock
#     when that socket exists. --load: a missing node is an error (make images);
#     --no-load: only the archives.
#
# Release, not dev, measured on 2 cores beside the cluster's Go build: cold,
# release took 22 min and dev 7 min; after a change to one service, 64 s and
# 10 s. The images are load-tested, so they must perform like the real thing,
# and dev binaries (95-237 MB with debuginfo, against 8-22 MB) make fat images;
# the cold build is paid once (the target directory is kept), a rebuild costs
# about a minute.
#
# stdout: one line per image, "<image> <archive>", for scripts
# (tests/chart/image-runtime-check.sh); progress and timings go to stderr.
# Also read: BERTH_CLUSTER_DIR, BERTH_CACHE (~/.cache/berth), and
# CONTAINERD_SNAPSHOTTER (read by ctr: set it if the node's CRI does not use
# containerd's default snapshotter).
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${BERTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth}
images_dir=$cache/images
target_dir=${BERTH_STATIC_TARGET_DIR:-$cache/static-target}
socket=${BERTH_CLUSTER_DIR:-$HOME/.cache/berth/cluster}/node/containerd.sock
cluster_bin=$(tests/cluster/build.sh --print)
registry=berth.local
buildah=(buildah --root "$cache/buildah/root" --runroot "$cache/buildah/runroot" --storage-driver vfs)

say() { echo "[images] $*" >&2; }
die() { echo "[images] ERROR: $*" >&2; exit 1; }
now() { echo "${EPOCHREALTIME//[.,]/}"; }
took() { local us=$(($(now) - $1)); printf '%d.%ds' $((us / 1000000)) $((us / 100000 % 10)); }

default_tag=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$default_tag" ] || die "no version in Cargo.toml's [workspace.package]: give a tag with --tag TAG"
pause_version=$(cat tests/cluster/versions/pause)

declare -A containerfile=(
  [berth-operator]=Containerfile
  [item-service]=Containerfile
  [order-service]=Containerfile
  [pause]=tests/cluster/pause/Containerfile
)
tags=() wanted=() load=auto
while [ $# -gt 0 ]; do
  case $1 in
    --tag) [ $# -ge 2 ] || die "--tag needs a value, e.g. --tag $default_tag"; tags+=("$2"); shift 2 ;;
    --tag=*) tags+=("${1#--tag=}"); shift ;;
    --load) load=yes; shift ;;
    --no-load) load=no; shift ;;
    --print-tag) echo "$default_tag"; exit 0 ;;
    -h | --help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    -*) die "unknown option $1 (scripts/images.sh --help lists them)" ;;
    *) [ -n "${containerfile[$1]:-}" ] || die "unknown image $1: choose from ${!containerfile[*]}"
       wanted+=("$1"); shift ;;
  esac
done
[ ${#wanted[@]} -gt 0 ] || wanted=(berth-operator item-service order-service pause)
# shellcheck disable=SC2206 # BERTH_IMAGE_TAG may hold several tags
[ ${#tags[@]} -gt 0 ] || tags=(${BERTH_IMAGE_TAG:-$default_tag})
for tag in "${tags[@]}"; do
  [[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] ||
    die "'$tag' is not a valid image tag (letters, digits, _ . -, at most 128, not starting with . or -)"
done
declare -A package=([buildah]=buildah [file]=file [sha256sum]=coreutils [flock]=util-linux)
missing=()
for tool in "${!package[@]}"; do command -v "$tool" >/dev/null || missing+=("${package[$tool]}"); done
# A fresh machine (CI's included) gets them from Debian when we may install.
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  say "installing ${missing[*]} from Debian packages"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; }; } >/dev/null 2>&1 || true
fi
for tool in "${!package[@]}"; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install -y ${package[$tool]}"
done
[[ $images_dir != *:* ]] || die "the images directory $images_dir contains ':', which oci-archive: paths cannot; set BERTH_CACHE"
mkdir -p "$images_dir"
exec 9>"$images_dir/.lock"
flock -n 9 || { say "another scripts/images.sh is running; waiting for it"; flock 9; }
rm -rf "$images_dir"/.context.* # kept by a failed run, for a look

# ---- 1. The binaries.
# Always all three, even for one image: cargo unifies the features of shared
# dependencies over the packages of one invocation, so building one alone
# would recompile them and give a different binary (and image) than `make images`.
all_start=$(now) triple=
if [[ " ${wanted[*]} " != " pause " ]]; then
  command -v cargo >/dev/null || die "cargo is missing: install Rust $(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml) or newer (rustup)"
  triple=$(rustc -vV | sed -n 's/^host: //p')
  [[ $triple == *-linux-gnu ]] || die "the host target is '$triple', not *-linux-gnu: the static build needs glibc's crt-static"
  say "cargo build --release, static ($triple), of the operator and both services: into $target_dir"
  start=$(now)
  RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=$target_dir \
    cargo build --locked --release --target "$triple" -p berth-operator -p item-service -p order-service ||
    die "the static release build failed (cargo's output above); fix it, then run scripts/images.sh again"
  say "cargo build took $(took "$start")"
fi
if [[ " ${wanted[*]} " == *" pause "* ]] && [ ! -x "$cluster_bin/pause" ]; then
  say "no pause binary at $cluster_bin/pause: building it (tests/cluster/build.sh pause; it waits for a running cluster build)"
  tests/cluster/build.sh pause >/dev/null ||
    die "could not build the pause binary (output above): run tests/cluster/build.sh pause (it needs gcc and the Go module proxy)"
fi
binary_of() {
  if [ "$1" = pause ]; then echo "$cluster_bin/pause"; else echo "$target_dir/$triple/release/$1"; fi
}
for image in "${wanted[@]}"; do
  binary=$(binary_of "$image")
  [ -x "$binary" ] || die "$binary is missing after the build: run scripts/images.sh again, or delete $target_dir for a clean build"
  file -L "$binary" | grep -q 'static' ||
    die "$binary is not statically linked ($(file -bL "$binary" | cut -d, -f1-4)): it would not start on a scratch image; is RUSTFLAGS with +crt-static overridden in a .cargo/config.toml?"
done

# ---- 2. and 3. The images, as OCI archives.
# stage IMAGE: the Containerfile to build, with the binary in the context:
# IMAGE's stage, from its FROM line to the next FROM, without the comments
# and blank lines that lead into the next stage.
stage() {
  local file=${containerfile[$1]} text
  [ "$1" = pause ] && { cat "$file"; return; }
  text=$(awk -v from="FROM scratch AS $1" '
    $0 == from { on = 1; print "FROM scratch"; next }
    on && /^FROM / { exit }
    on { lines[++n] = $0 }
    END {
      while (n > 0 && (lines[n] ~ /^#/ || lines[n] ~ /^[[:space:]]*$/)) n--
      for (i = 1; i <= n; i++) print lines[i]
    }' "$file")
  [ -n "$text" ] || die "$file has no stage 'FROM scratch AS $1'; scripts/images.sh builds only that stage: restore it or update the script"
  grep -qx "COPY --from=build /$1 /$1" <<<"$text" ||
    die "$file's stage $1 has no line 'COPY --from=build /$1 /$1' to copy the host-built binary instead; restore it or update scripts/images.sh"
  echo "${text//"COPY --from=build /$1 /$1"/"COPY $1 /$1"}"
}

# build IMAGE TAG: writes the archive unless its recorded inputs still hold.
build() {
  local image=$1 tag=$2 ref=$registry/$1:$2 binary text inputs ctx start
  local archive=$images_dir/${image}_$tag.tar
  binary=$(binary_of "$image")
  text=$(stage "$image")
  local flags=(--isolation chroot --format oci --timestamp 0 --label "org.opencontainers.image.version=$tag" --tag "$ref")
  inputs=$(printf 'image %s\nbinary sha256:%s\nstage sha256:%s\nflags %s\n' "$ref" \
    "$(sha256sum <"$binary" | cut -d' ' -f1)" "$(sha256sum <<<"$text" | cut -d' ' -f1)" "${flags[*]}")
  if [ -s "$archive" ] && [ "$(cat "$archive.inputs" 2>/dev/null)" = "$inputs" ]; then
    say "$ref: unchanged since $archive was written, not rebuilt"
    return
  fi
  start=$(now)
  ctx=$(mktemp -d "$images_dir/.context.XXXXXX")
  echo "$text" >"$ctx/Containerfile"
  cp "$binary" "$ctx/$image"
  "${buildah[@]}" build --quiet "${flags[@]}" -f "$ctx/Containerfile" "$ctx" >/dev/null ||
    die "buildah could not build $ref from $ctx (output above; the context is kept)"
  rm -f "$archive" "$archive.inputs" "$archive.tmp"
  "${buildah[@]}" push --quiet "$ref" "oci-archive:$archive.tmp:$ref" ||
    die "buildah could not write $ref to $archive.tmp (output above)"
  mv "$archive.tmp" "$archive"
  echo "$inputs" >"$archive.inputs"
  # The archive is the product; buildah's copy would only pile up per tag.
  "${buildah[@]}" rmi "$ref" >/dev/null
  rm -rf "$ctx"
  say "$ref: built and written to $archive in $(took "$start")"
}

refs=() archives=()
for image in "${wanted[@]}"; do
  if [ "$image" = pause ]; then image_tags=("$pause_version"); else image_tags=("${tags[@]}"); fi
  for tag in "${image_tags[@]}"; do
    build "$image" "$tag"
    refs+=("$registry/$image:$tag") archives+=("$images_dir/${image}_$tag.tar")
  done
done
for i in "${!refs[@]}"; do echo "${refs[$i]} ${archives[$i]}"; done

# ---- 4. Into the node's containerd.
say "${#refs[@]} image(s) ready in $(took "$all_start")"
if [ "$load" = no ]; then
  say "images written to $images_dir; not loaded: --no-load"
  exit 0
fi
if [ ! -S "$socket" ]; then
  say "images written to $images_dir; not loaded: no node containerd at $socket (start the cluster with its node: make cluster-up)"
  [ "$load" = yes ] && exit 1
  exit 0
fi
ctr_bin=$cluster_bin/ctr
[ -x "$ctr_bin" ] || die "images written to $images_dir; not loaded: no ctr at $ctr_bin (the cluster's containerd client): build it with tests/cluster/build.sh ctr"
ctr() { "$ctr_bin" --address "$socket" --namespace k8s.io "$@"; }
ctr version >/dev/null 2>&1 ||
  die "images written to $images_dir; not loaded: the node containerd at $socket does not answer (a stale socket of a stopped node?): make cluster-up"
for i in "${!refs[@]}"; do
  start=$(now)
  ref=${refs[$i]}
  out=$(ctr images import --base-name "${ref%:*}" "${archives[$i]}" 2>&1) ||
    die "ctr could not import ${archives[$i]} into $socket: $out"
  listed=$(ctr images ls -q 2>/dev/null) || listed=
  grep -qxF "$ref" <<<"$listed" ||
    die "ctr imported ${archives[$i]} but $ref is not in namespace k8s.io of $socket; was the archive written with that name? (rm ${archives[$i]}.inputs and run again)"
  say "$ref: loaded into the node in $(took "$start")"
done
say "images loaded into the node's containerd ($socket, namespace k8s.io)"
