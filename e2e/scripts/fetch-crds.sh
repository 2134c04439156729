#!/usr/bin/env bash
# e2e/scripts/fetch-crds.sh — the upstream CRDs Landlord writes objects of (Gateway API
# standard channel, cert-manager), taken from their published Go modules through the Go
# module proxy at pinned versions, so the local control plane checks Landlord's HTTPRoutes,
# ReferenceGrants and Certificates against the real schemas.
#
# Usage: e2e/scripts/fetch-crds.sh <gateway-api|cert-manager>...
# stdout: one line per component, the directory holding its YAML files. Logs go to stderr.
# The YAML is cached outside the work tree next to the binaries, keyed by module version; a
# cached copy is used without touching the network.
#
# Environment:
#   LANDLORD_CACHE_DIR              cache (default ~/.cache/landlord)
#   LANDLORD_GATEWAY_API_VERSION    sigs.k8s.io/gateway-api version (default below)
#   LANDLORD_CERT_MANAGER_VERSION   github.com/cert-manager/cert-manager version (default below)
set -euo pipefail

GATEWAY_API_VERSION=${LANDLORD_GATEWAY_API_VERSION:-v1.6.3}
CERT_MANAGER_VERSION=${LANDLORD_CERT_MANAGER_VERSION:-v1.21.2}
CACHE_DIR=${LANDLORD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/landlord}

log() { printf 'fetch-crds: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# fetch <name> <module> <version> <directory inside the module>
fetch() {
  local name=$1 module=$2 version=$3 subdir=$4
  local dir=$CACHE_DIR/crds/$name-$version
  if [[ ! -f $dir/.complete ]]; then
    command -v go >/dev/null || die "go is required to download $module@$version"
    mkdir -p "$CACHE_DIR/crds"
    exec 8>"$CACHE_DIR/crds/.fetch.lock"
    flock 8
    if [[ ! -f $dir/.complete ]]; then
      local tmp zip
      tmp=$(mktemp -d)
      # Only the module zip is needed (the YAML inside it), not a build: read the zip
      # rather than the extracted tree, which `go mod download` skips for modules that
      # require a newer Go than the local one.
      zip=$(cd "$tmp" && GOTOOLCHAIN=local GOFLAGS='' go mod download -json "$module@$version" |
        sed -n 's/.*"Zip": "\(.*\)".*/\1/p') || true
      [[ -n $zip && -f $zip ]] || { rm -rf "$tmp"; die "downloading $module@$version failed"; }
      python3 - "$zip" "$module@$version/$subdir/" "$tmp/out" <<'EOF' || { rm -rf "$tmp"; die "no CRDs under $subdir in $module@$version"; }
import os, sys, zipfile
archive, prefix, out = sys.argv[1:]
os.makedirs(out)
count = 0
with zipfile.ZipFile(archive) as z:
    for entry in z.namelist():
        rest = entry[len(prefix):]
        if entry.startswith(prefix) and "/" not in rest and rest.endswith(".yaml"):
            with open(os.path.join(out, rest), "wb") as f:
                f.write(z.read(entry))
            count += 1
sys.exit(0 if count else 1)
EOF
      touch "$tmp/out/.complete"
      rm -rf "$dir"
      mv "$tmp/out" "$dir"
      rm -rf "$tmp"
      log "cached $module@$version/$subdir in $dir"
    fi
    exec 8>&-
  fi
  printf '%s\n' "$dir"
}

(($#)) || die "usage: $0 <gateway-api|cert-manager>..."
for component in "$@"; do
  case $component in
    gateway-api) fetch gateway-api sigs.k8s.io/gateway-api "$GATEWAY_API_VERSION" config/crd/standard ;;
    cert-manager) fetch cert-manager github.com/cert-manager/cert-manager "$CERT_MANAGER_VERSION" deploy/crds ;;
    *) die "unknown component $component (gateway-api, cert-manager)" ;;
  esac
done
