#!/bin/sh
# Run once by the PostgreSQL image's entrypoint when it initialises an empty data folder
# (mounted into /docker-entrypoint-initdb.d by docker-compose.yml): Grafana's login,
# grafana_reader, may read every table (pg_read_all_data, PostgreSQL 14+) and write none.
# The password comes from the environment (GRAFANA_DB_PASSWORD), as a psql variable that
# psql quotes itself.
set -eu
if [ -z "${GRAFANA_DB_PASSWORD:-}" ]; then
    echo "grafana-reader.sh: GRAFANA_DB_PASSWORD is empty; set it in .env" >&2
    exit 1
fi
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" \
    --dbname "${POSTGRES_DB:-postgres}" --set pw="$GRAFANA_DB_PASSWORD" <<'SQL'
CREATE ROLE grafana_reader LOGIN PASSWORD :'pw';
GRANT pg_read_all_data TO grafana_reader;
SQL
