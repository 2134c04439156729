#!/usr/bin/env bash
# landlord-images.sh [TARGET_DIR] — Landlord's own images for the local stack's real nodes,
# from the binaries cargo built (TARGET_DIR, default target/debug; debug information is
# stripped), pushed to the stack's registry under the names the chart and the operator use:
#
#   ghcr.io/landlord-dev/landlord:0.1.0         operator/Dockerfile's image
#   ghcr.io/landlord-dev/tenant-runtime:0.1.0   tenant-runtime/Dockerfile's image
#
# Each has what its Dockerfile's distroless `cc` base gives (glibc and libgcc, CA
# certificates, the nonroot user 65532) and the same entrypoint, user and port. Needs a
# stack with real nodes (e2e/cluster up); prints the pushed names.
set -euo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO=$(cd "$E2E_DIR/.." && pwd)
TARGET=${1:-$REPO/target/debug}
STATE=${LANDLORD_DEV_DIR:-$REPO/target/landlord-dev}
[[ -r $STATE/env ]] || { echo "landlord-images: no stack (e2e/cluster up)" >&2; exit 1; }
# shellcheck disable=SC1091
. "$STATE/env"
[[ ${LANDLORD_REAL_NODES:-0} -gt 0 ]] || { echo "landlord-images: the stack has no real nodes" >&2; exit 1; }
VERSION=$(awk -F'"' '/^version = / { print $2; exit }' "$REPO/Cargo.toml")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# shellcheck source=image-rootfs.sh
. "$E2E_DIR/scripts/image-rootfs.sh"

for bin in landlord tenant-runtime; do
  [[ -x $TARGET/$bin ]] || { echo "landlord-images: $TARGET/$bin missing (cargo build)" >&2; exit 1; }
  root=$WORK/$bin
  distroless_cc_rootfs "$root"
  strip --strip-debug -o "$root/$bin" "$TARGET/$bin"
  copy_libs "$root" "$TARGET/$bin"
  "$LANDLORD_IMAGEBUILD" -rootfs "$root" -tag "ghcr.io/landlord-dev/$bin:$VERSION" -out "$WORK/$bin.tar" \
    -entrypoint "[\"/$bin\"]" -user 65532:65532 -port 8080/tcp
done
"$LANDLORD_IMAGEBUILD" push -registry "$LANDLORD_REGISTRY" "$WORK"/*.tar
