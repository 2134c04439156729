#!/usr/bin/env bash
# build-images.sh OUT_DIR COREDNS_BINARY COREDNS_VERSION TRAEFIK_BINARY TRAEFIK_VERSION — the container images e2e/cluster's real nodes run, built
# without a container engine (no image can be pulled here) and written to OUT_DIR as
# `docker save` archives, which e2e/cluster pushes to the stack's registry (images/registry):
#
#   landlord.local/pause:3.10          the pod sandbox (containerd's sandbox_image)
#   docker.io/library/postgres:15      Debian's PostgreSQL 15 with an entrypoint that honours
#                                      the official image's contract (images/postgres)
#   landlord.local/coredns:VERSION     the cluster DNS (COREDNS_BINARY, built from e2e/coredns)
#   landlord.local/traefik:VERSION     the Gateway API implementation (TRAEFIK_BINARY, built from
#                                      its Go module by e2e/cluster)
#   landlord.local/echo:1              a catalog Service for tests: shows its LANDLORD_* variables
#                                      and reads its flags from tenant-runtime (images/echo)
#
# Each image is one layer assembled from files on this machine (binaries built here, or
# Debian's packages with the shared libraries they load). Prints nothing on success but
# the archives' names.
set -euo pipefail

USAGE="usage: build-images.sh OUT_DIR COREDNS_BINARY COREDNS_VERSION TRAEFIK_BINARY TRAEFIK_VERSION"
OUT=${1:?$USAGE}
COREDNS=${2:?$USAGE}
COREDNS_VERSION=${3:?$USAGE}
TRAEFIK=${4:?$USAGE}
TRAEFIK_VERSION=${5:?$USAGE}
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_MAJOR=15
PG_LIB=/usr/lib/postgresql/$PG_MAJOR
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
# imagebuild and registry go to OUT too: e2e/cluster runs them (push, serve).
(cd "$E2E_DIR/images" && go build -trimpath -ldflags="-s -w" -o "$WORK/bin/" ./imagebuild ./pause ./registry ./echo)
cp "$WORK/bin/imagebuild" "$WORK/bin/registry" "$OUT/"
imagebuild=$OUT/imagebuild

# shellcheck source=image-rootfs.sh
. "$E2E_DIR/scripts/image-rootfs.sh"

# --- pause -------------------------------------------------------------------------------
root=$WORK/pause
mkdir -p "$root"
cp "$WORK/bin/pause" "$root/pause"
"$imagebuild" -rootfs "$root" -tag landlord.local/pause:3.10 -out "$OUT/pause.tar" \
  -entrypoint '["/pause"]' -user 65535:65535
echo pause.tar

# --- postgres ----------------------------------------------------------------------------
[[ -x $PG_LIB/bin/postgres ]] || { echo "build-images: $PG_LIB/bin/postgres missing (Debian package postgresql-$PG_MAJOR)" >&2; exit 1; }
root=$WORK/postgres
mkdir -p "$root"/{etc,tmp,usr/bin,var/run/postgresql,var/lib/postgresql/data,docker-entrypoint-initdb.d}
chmod 1777 "$root/tmp"
# /bin, /lib, /sbin and /lib64 are links into /usr on Debian 12; keep that shape.
for d in bin lib sbin lib64; do [[ -L /$d ]] && ln -s "$(readlink "/$d")" "$root/$d"; done
copy_with_libs "$root" /usr/bin/dash /usr/bin/{mkdir,chmod,mktemp,rm,cat,ls,id,sleep,env} \
  "$PG_LIB"/bin/* "$PG_LIB"/lib/*.so
ln -s dash "$root/usr/bin/sh"
copy_path "$root" /usr/share/postgresql/$PG_MAJOR
copy_path "$root" /usr/share/zoneinfo
[[ -d /usr/lib/locale/C.utf8 ]] && copy_path "$root" /usr/lib/locale/C.utf8
printf 'root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\npostgres:x:999:\n' >"$root/etc/group"
install -D -m 0755 "$E2E_DIR/images/postgres/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
chown -R 999:999 "$root/var/run/postgresql" "$root/var/lib/postgresql"
chmod 2777 "$root/var/run/postgresql"
"$imagebuild" -rootfs "$root" -tag docker.io/library/postgres:$PG_MAJOR -out "$OUT/postgres-$PG_MAJOR.tar" \
  -entrypoint '["docker-entrypoint.sh"]' -cmd '["postgres"]' -user 999 -port 5432/tcp \
  -env "PATH=$PG_LIB/bin:/usr/local/bin:/usr/bin:/bin" -env LANG=C.UTF-8 \
  -env PG_MAJOR=$PG_MAJOR -env PGDATA=/var/lib/postgresql/data
echo "postgres-$PG_MAJOR.tar"

# --- coredns -----------------------------------------------------------------------------
root=$WORK/coredns
mkdir -p "$root/etc/coredns"
cp "$COREDNS" "$root/coredns"
"$imagebuild" -rootfs "$root" -tag landlord.local/coredns:$COREDNS_VERSION -out "$OUT/coredns.tar" \
  -entrypoint '["/coredns"]' -cmd '["-conf", "/etc/coredns/Corefile"]' -user 65532:65532 \
  -port 53/udp -port 53/tcp
echo coredns.tar

# --- traefik -----------------------------------------------------------------------------
# A static Go binary, like the official image's; its user is the distroless nonroot one.
root=$WORK/traefik
mkdir -p "$root/tmp"
chmod 1777 "$root/tmp"
cp "$TRAEFIK" "$root/traefik"
"$imagebuild" -rootfs "$root" -tag landlord.local/traefik:$TRAEFIK_VERSION -out "$OUT/traefik.tar" \
  -entrypoint '["/traefik"]' -user 65532:65532 -port 80/tcp -port 443/tcp
echo traefik.tar

# --- echo --------------------------------------------------------------------------------
root=$WORK/echo
mkdir -p "$root"
cp "$WORK/bin/echo" "$root/echo"
"$imagebuild" -rootfs "$root" -tag landlord.local/echo:1 -out "$OUT/echo.tar" \
  -entrypoint '["/echo"]' -user 65532:65532 -port 8080/tcp
echo echo.tar
