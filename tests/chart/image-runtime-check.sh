#!/usr/bin/env bash
# Checks the runtime stage of operator/Containerfile where registries are out
# of reach (the build stage pulls rust:alpine): a statically linked operator
# (glibc crt-static here; the Containerfile links musl) is put on `scratch` by
# the Containerfile's own final stage, with buildah, and run with chroot
# isolation: it must start as 65532 with no shell in the image.
#   tests/chart/image-runtime-check.sh      (needs buildah: apt-get install buildah)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'buildah rm "${container:-}" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

target=${BERTH_STATIC_TARGET_DIR:-$HOME/.cache/berth/static-target}
RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=$target \
    cargo build --locked -p berth-operator --target x86_64-unknown-linux-gnu
cp "$target/x86_64-unknown-linux-gnu/debug/berth-operator" "$work/"
file "$work/berth-operator" | grep -q 'static' || { echo "not a static binary" >&2; exit 1; }

# The Containerfile's last stage, copying the binary from the context instead of the build stage.
sed -n '/^FROM scratch/,$p' operator/Containerfile \
    | sed 's|^COPY --from=build /berth-operator /berth-operator|COPY berth-operator /berth-operator|' \
    >"$work/Containerfile"
buildah build -q -f "$work/Containerfile" -t localhost/berth-operator:runtime-check "$work" >/dev/null
container=$(buildah from localhost/berth-operator:runtime-check)

user=$(buildah inspect --format '{{.OCIv1.Config.User}}' localhost/berth-operator:runtime-check)
[ "$user" = 65532:65532 ] || { echo "image user is '$user', want 65532:65532" >&2; exit 1; }
buildah run --isolation chroot "$container" /berth-operator --version
if buildah run --isolation chroot "$container" /bin/sh -c true >/dev/null 2>&1; then
    echo "the image has a shell" >&2; exit 1
fi
echo "runtime stage ok: static binary on scratch, user 65532, no shell"
