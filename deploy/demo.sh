#!/usr/bin/env bash
# Run Patina on the embedded demo database: installs unixODBC and the SQLite ODBC driver when
# missing, builds the release binary, creates the demo database from fixtures/, and serves it
# on 127.0.0.1:8080 (PATINA_LISTEN overrides). Ctrl-C stops it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PATINA_ROOT"

ensure_packages unixodbc-dev odbcinst libsqliteodbc sqlite3 curl
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install a Rust toolchain (https://rustup.rs), then run this again" >&2
  exit 1
fi

echo "==> building patina (release)"
cargo build --release --locked --quiet

db="target/demo/patina-demo.db"
mkdir -p "$(dirname "$db")"
rm -f "$db"
sqlite3 "$db" < fixtures/demo/schema.sqlite.sql
sqlite3 "$db" < fixtures/demo/data.sql
export PATINA_DEMO_DB="$db"
echo "==> demo database: $db ($(sqlite3 "$db" 'SELECT COUNT(*) FROM JOBMST') jobs)"

listen="${PATINA_LISTEN:-127.0.0.1:8080}"
base="http://$listen"
target/release/patina check --config patina.toml
cat <<TXT

Try it (in another terminal):
  curl -s $base/v1/jobs/100001
  curl -s '$base/v1/jobs?status=on_hold&plant=CLE'
  curl -s '$base/v1/jobs?due_from=1999-01-01&due_to=1999-01-31'
  curl -s $base/v1/jobs/100001/operations
  curl -s '$base/v1/customers?name=b%C3%A4ck'
  curl -s $base/v1/customers/1002
  curl -s -i $base/v1/jobs/abc          # a problem+json error

TXT
exec target/release/patina serve --config patina.toml --listen "$listen"
