#!/usr/bin/env bash
# Initialises a throwaway PostgreSQL data directory the way every Landlord test
# server runs: superuser landlord_admin, SCRAM password auth everywhere (also on
# the unix socket), loopback only unless told otherwise, durability off, and every
# statement logged to one fixed file (tests grep it for leaked passwords).
#
# Usage: postgres-init.sh <bin-dir> <dir> <port> [<address> <client-cidr>...]   (password on stdin)
# With an address (the host's on the real nodes' bridge) and client CIDRs (the pod and
# node networks), the server listens there too and admits clients from those networks
# (SCRAM too), except as the superuser landlord_admin, which only loopback may use.
# Makes <dir>/data, <dir>/sock and <dir>/log/postgresql.log. When run as root,
# <dir> is handed to the postgres user (PostgreSQL refuses to run as root); run
# the server with: setpriv --reuid=postgres --regid=postgres --init-groups --
#   <bin-dir>/postgres -D <dir>/data
# Used by e2e/cluster (the stack's server) and e2e/src/postgres.rs (extra
# servers that single tests start, stop and restart).
set -euo pipefail
bin=$1 dir=$2 port=$3
shift 3
listen=127.0.0.1
client_cidrs=()
if (($# > 0)); then
  listen="127.0.0.1,$1"
  shift
  client_cidrs=("$@")
fi

if ((EUID == 0)); then
  as_postgres=(setpriv --reuid=postgres --regid=postgres --init-groups --)
else
  as_postgres=()
fi

rm -rf "$dir"
mkdir -p "$dir/data" "$dir/sock" "$dir/log"
cat >"$dir/pwfile"
((EUID != 0)) || chown -R postgres:postgres "$dir"
chmod 755 "$dir" "$dir/log"
chmod 700 "$dir/data" "$dir/sock"
chmod 600 "$dir/pwfile"
trap 'rm -f "$dir/pwfile"' EXIT
(cd "$dir" && "${as_postgres[@]}" "$bin/initdb" -D "$dir/data" -U landlord_admin \
  --pwfile="$dir/pwfile" --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
  --no-sync --no-instructions)
cat >>"$dir/data/postgresql.conf" <<CONF

# ---- landlord test server (e2e/scripts/postgres-init.sh) ----
listen_addresses = '$listen'
port = $port
unix_socket_directories = '$dir/sock'
password_encryption = 'scram-sha-256'
max_connections = 300
# Throwaway data: durability off for speed.
fsync = off
synchronous_commit = off
full_page_writes = off
# Every statement goes to one fixed file; tests grep it (e.g. for leaked passwords).
logging_collector = on
log_destination = 'stderr'
log_directory = '$dir/log'
log_filename = 'postgresql.log'
log_file_mode = 0644
log_rotation_age = 0
log_rotation_size = 0
log_statement = 'all'
log_connections = on
log_disconnections = on
log_line_prefix = '%m [%p] %q%u@%d '
CONF
# The first matching line decides: the superuser never from the pods' side.
for cidr in "${client_cidrs[@]}"; do
  printf 'host all landlord_admin %s reject\n' "$cidr" >>"$dir/data/pg_hba.conf"
done
for cidr in "${client_cidrs[@]}"; do
  printf 'host all all %s scram-sha-256\n' "$cidr" >>"$dir/data/pg_hba.conf"
done
