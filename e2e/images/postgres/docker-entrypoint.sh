#!/bin/sh
# The postgres image's entrypoint for e2e/cluster's real nodes, honouring the contract of
# docker.io/library/postgres that Landlord's dedicated servers rely on:
#   PGDATA (data directory), POSTGRES_USER (superuser, default postgres),
#   POSTGRES_PASSWORD (its password), POSTGRES_DB (default: POSTGRES_USER),
#   POSTGRES_INITDB_ARGS (extra initdb arguments), POSTGRES_HOST_AUTH_METHOD (default
#   scram-sha-256, for every host in pg_hba.conf), and /docker-entrypoint-initdb.d/*.sh
#   (run, or sourced when not executable) and *.sql, once, on an empty data directory.
# Then `postgres` runs in the foreground, listening on every address, as the official
# image does. Runs as the `postgres` user (uid 999), as the official image ends up doing.
set -eu

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
  exec "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
export PGDATA

# On every start, as upstream: a volume whose group the kubelet set (fsGroup) has the data
# directory group-writable, which PostgreSQL refuses.
mkdir -p "$PGDATA"
chmod 0700 "$PGDATA" 2>/dev/null || :

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "error: database is uninitialized and POSTGRES_PASSWORD is not set" >&2
    exit 1
  fi
  pwfile=$(mktemp)
  trap 'rm -f "$pwfile"' EXIT
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of arguments, as upstream
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm -f "$pwfile"
  printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

  export PGUSER="$POSTGRES_USER" PGPASSWORD="$POSTGRES_PASSWORD" PGHOST=/var/run/postgresql
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" -w start >/dev/null
  if [ "$POSTGRES_DB" != postgres ]; then
    printf 'CREATE DATABASE :"db"\n' | psql -v ON_ERROR_STOP=1 --dbname postgres -v db="$POSTGRES_DB" >/dev/null
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sh)
        if [ -x "$f" ]; then "$f"; else . "$f"; fi
        echo "ran $f" ;;
      *.sql)
        psql -v ON_ERROR_STOP=1 --dbname "$POSTGRES_DB" -f "$f" >/dev/null
        echo "ran $f" ;;
      *) ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  unset PGUSER PGPASSWORD PGHOST
  trap - EXIT
  echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
