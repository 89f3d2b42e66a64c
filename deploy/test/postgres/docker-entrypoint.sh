#!/bin/bash
# What the official postgres image's entrypoint does for an empty data directory: initdb with POSTGRES_USER as the
# superuser and POSTGRES_PASSWORD (scram-sha-256 for connections over the network), create POSTGRES_DB, run
# /docker-entrypoint-initdb.d/*.sql|*.sh; then exec postgres listening on every interface, as the postgres user.
set -Eeuo pipefail
if [ "${1:0:1}" = - ]; then set -- postgres "$@"; fi
if [ "$1" != postgres ]; then exec "$@"; fi

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}" "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
    echo "Error: database is uninitialized and superuser password is not specified (set POSTGRES_PASSWORD)." >&2
    exit 1
  fi
  # The official image runs with LANG=en_US.utf8, so its clusters are UTF8; a bare initdb here would be SQL_ASCII.
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") \
    --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD" \
    ${POSTGRES_INITDB_ARGS:-} >/dev/null
  printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
  # A private socket while initialising, so that pg_isready (the healthcheck) says no until the database exists.
  init_socket=$(mktemp -d)
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=$init_socket" start >/dev/null
  psql=(psql -v ON_ERROR_STOP=1 -h "$init_socket" --username "$POSTGRES_USER" --no-password --dbname postgres -qAt)
  if [ "$POSTGRES_DB" != postgres ]; then
    # psql interpolates variables only in what it reads, not in -c.
    echo 'CREATE DATABASE :"db";' | "${psql[@]}" -v db="$POSTGRES_DB" >/dev/null
  fi
  # Init scripts: executable ones are run, the others sourced, as the official image does; their psql finds the
  # private socket through PGHOST.
  export PGHOST=$init_socket POSTGRES_USER POSTGRES_DB
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sh) if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
      *.sql) "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
      *) ;;
    esac
  done
  unset PGHOST
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  rmdir "$init_socket"
  echo "PostgreSQL init process complete; ready for start up."
fi
exec "$@" -c listen_addresses='*'
