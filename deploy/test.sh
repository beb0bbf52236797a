#!/usr/bin/env bash
# Run every test: installs what the tests need, starts a private PostgreSQL cluster and a
# private Redis on free loopback ports, loads the demo fixtures into PostgreSQL, runs lints and
# the test suite against SQLite (ODBC), PostgreSQL (ODBC) and Redis (shared state), checks the
# API documents and the deployment manifests, and stops both servers again.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/api-checks.sh"
cd "$PATINA_ROOT"

ensure_packages unixodbc-dev odbcinst libsqliteodbc odbc-postgresql tdsodbc sqlite3 postgresql-15 postgresql-client-15 \
  python3 python3-venv chromium curl openssl libssl-dev pkg-config
command -v redis-server >/dev/null 2>&1 || ensure_packages redis-server
# Node.js drives the browser check; the machine's own is used when there is one.
command -v npm >/dev/null 2>&1 || ensure_packages nodejs npm

work="$PATINA_ROOT/target/test-env"
mkdir -p "$work"
odbc_registry "$work/odbc"

# The cluster lives under /tmp: the postgres user must be able to reach it, whatever the
# permissions of the folder this checkout sits in.
pg_dir="$(mktemp -d /tmp/patina-test-pg.XXXXXX)"
redis_dir="$work/redis"
trap 'pg_stop; rm -rf "$pg_dir"; redis_stop; rm -rf "$redis_dir"' EXIT
pg_start "$pg_dir"
rm -rf "$redis_dir"
redis_start "$redis_dir"
export PATINA_TEST_REDIS="redis://127.0.0.1:$REDIS_PORT/"
# Tests that need Redis fail rather than skip when it is missing here.
export PATINA_REQUIRE_REDIS=1
export PGOPTIONS="-c client_min_messages=warning"
pg_psql -d postgres -c "CREATE ROLE patina LOGIN PASSWORD 'patina-test'" -c "CREATE DATABASE patina OWNER patina"
PGPASSWORD=patina-test psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U patina -d patina \
  -f fixtures/demo/schema.postgres.sql -f fixtures/demo/data.sql

export PATINA_TEST_PG="Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=$PG_PORT;Database=patina;Uid=patina;Pwd=patina-test;"
export PATINA_TEST_PG_PSQL="postgresql://patina:patina-test@127.0.0.1:$PG_PORT/patina"
# Tests that need PostgreSQL fail rather than skip when it is missing here.
export PATINA_REQUIRE_PG=1

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> tests"
if [ -z "${MSSQL_URL:-}" ]; then
  echo "    SKIPPED: the SQL Server live tests (tests/mssql_live.rs) need MSSQL_URL; the protocol-level"
  echo "    tests against the in-process TDS server (tests/mssql.rs) run regardless. See the README."
else
  echo "    MSSQL_URL is set: the SQL Server live tests run against it"
fi
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast
else
  cargo test --no-fail-fast
fi

api_checks

echo "==> deployment manifests (Kubernetes schemas, kustomize, hadolint)"
bash deploy/check-manifests.sh
