#!/usr/bin/env bash
# e2e/scripts/build-helm.sh — builds helm from its Go module (no download of
# release binaries, no toolchain download) and prints the path of the binary.
#
# stdout: exactly one line, the helm path. Logs go to stderr.
# The binary is cached outside the work tree, keyed by version, in the same
# cache as e2e/cluster's binaries; a cached binary is reused without building.
#
# Environment:
#   LANDLORD_CACHE_DIR     binary cache (default ~/.cache/landlord)
#   LANDLORD_HELM_VERSION  helm module version (default below: the newest v3
#                          release that builds with the local Go toolchain)
set -euo pipefail

HELM_VERSION=${LANDLORD_HELM_VERSION:-v3.22.0}
CACHE_DIR=${LANDLORD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/landlord}
DIR=$CACHE_DIR/bin/helm-$HELM_VERSION
HELM=$DIR/helm

log() { printf 'build-helm: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ ! -x $HELM ]]; then
  command -v go >/dev/null || die "go is required to build helm $HELM_VERSION"
  mkdir -p "$DIR"
  # Concurrent test processes must not build (and rename over) at the same time.
  exec 8>"$DIR/.build.lock"
  flock 8
  if [[ ! -x $HELM ]]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    start=$SECONDS
    log "building helm $HELM_VERSION -> $HELM"
    # GOTOOLCHAIN=local: never download a Go toolchain. Run from a temp dir so no
    # module of this repository is consulted or touched.
    export GOTOOLCHAIN=local GOFLAGS='' CGO_ENABLED=0
    # Stamp what helm's own Makefile stamps. Without the Kubernetes version, helm
    # assumes its built-in default (v1.20) for .Capabilities.KubeVersion, for
    # charts' kubeVersion constraints and for lint's deprecated-API checks; the
    # Makefile derives it from the client-go helm is built with (v0.N -> 1.N).
    gomod=$(cd "$tmp" && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" |
      sed -n 's/.*"GoMod": "\(.*\)".*/\1/p') || die "downloading helm $HELM_VERSION failed"
    client_go=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod")
    [[ $client_go =~ ^v0\.([0-9]+)\. ]] || die "no k8s.io/client-go version in $gomod"
    k8s_minor=${BASH_REMATCH[1]}
    ldflags="-s -w"
    ldflags+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
      ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$k8s_minor"
    done
    (cd "$tmp" && GOBIN="$tmp" go install -trimpath -ldflags="$ldflags" \
      "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2) ||
      die "building helm $HELM_VERSION failed"
    mv -f "$tmp/helm" "$HELM"
    log "built helm $HELM_VERSION in $((SECONDS - start))s"
  fi
  exec 8>&-
fi

printf '%s\n' "$HELM"
