#!/usr/bin/env bash
# Checks the runtime stages of the Containerfile where registries are out of
# reach (its build stage pulls rust:alpine): scripts/images.sh puts the
# static binaries (glibc crt-static here; the Containerfile links musl) on
# each image's own stage of it, and here buildah runs each image with chroot
# isolation: it must be user 65532:65532, its binary must start, and the image
# must have no shell. The operator answers --version; the services take no
# flags, so they are started with a bad PORT and must refuse their
# configuration (exit 2, "invalid configuration").
#   tests/chart/image-runtime-check.sh      (needs buildah: apt-get install buildah)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
# Storage of its own, thrown away at the end; vfs leaves no mounts behind.
buildah=(buildah --root "$work/root" --runroot "$work/runroot" --storage-driver vfs)
trap '"${buildah[@]}" rm --all >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
fail() { echo "image-runtime-check: $*" >&2; exit 1; }

# One "<image> <archive>" line per image; nothing is loaded into a cluster.
scripts/images.sh --no-load berth-operator item-service order-service >"$work/images"
# fd 3: buildah run would read the list from stdin.
checked=0
while read -r image archive <&3; do
  name=${image##*/} name=${name%:*}
  container=$("${buildah[@]}" from --quiet "oci-archive:$archive")
  user=$("${buildah[@]}" inspect --format '{{.OCIv1.Config.User}}' "$container")
  [ "$user" = 65532:65532 ] || fail "$image: user is '$user', want 65532:65532 (the chart's runAsUser/runAsGroup)"
  if [ "$name" = berth-operator ]; then
    "${buildah[@]}" run --isolation chroot "$container" /berth-operator --version
  else
    status=0
    out=$("${buildah[@]}" run --isolation chroot --env PORT=none "$container" "/$name" 2>&1) || status=$?
    if [ "$status" != 2 ] || ! grep -q 'invalid configuration' <<<"$out"; then
      fail "$image: /$name with PORT=none exited $status, want 2 and 'invalid configuration'; it said: $out"
    fi
    echo "$name: starts, refuses a bad configuration (exit 2)"
  fi
  if "${buildah[@]}" run --isolation chroot "$container" /bin/sh -c true >/dev/null 2>&1; then
    fail "$image has a shell"
  fi
  "${buildah[@]}" rm "$container" >/dev/null
  checked=$((checked + 1))
done 3<"$work/images"
[ "$checked" = 3 ] || fail "checked $checked images, want 3 (scripts/images.sh printed: $(cat "$work/images"))"
echo "runtime stages ok: static binaries on scratch, user 65532, no shell"
