#!/bin/sh
# Creates the read API's role (api-role.sql). The postgres image runs it once, when it initialises an empty data
# directory (docker-entrypoint-initdb.d); on an existing volume run it by hand:
#   docker compose exec postgres sh /etc/newsflow-postgres/init-api-role.sh
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v api_role="${POSTGRES_API_USER:-newsflow_api}" -v api_password="$POSTGRES_API_PASSWORD" \
  -v database="$POSTGRES_DB" -v schema=public -v owner="$POSTGRES_USER" \
  -f /etc/newsflow-postgres/api-role.sql
