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
rm -rf target/demo/state   # Idempotency-Key answers of the last demo database ([state] dir)
sqlite3 "$db" < fixtures/demo/schema.sqlite.sql
sqlite3 "$db" < fixtures/demo/data.sql
export PATINA_DEMO_DB="$db"
echo "==> demo database: $db ($(sqlite3 "$db" 'SELECT COUNT(*) FROM JOBMST') jobs)"

# The JWT secret lives outside the repository: one per demo checkout, under target/.
secret_file="target/demo/jwt-secret"
[ -s "$secret_file" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$secret_file"
export PATINA_JWT_SECRET="$(cat "$secret_file")"
scopes="jobs:read jobs:write customers:read orders:read orders:write portal"
token="$(target/release/patina token --config patina.toml --sub demo-user --ttl 8h \
  --scopes "$scopes" --claim customer_id=1001)"

listen="${PATINA_LISTEN:-127.0.0.1:8080}"
base="http://$listen"
# 0 clean, 1 warnings only (shown above), 2 errors.
target/release/patina check --config patina.toml || [ $? -eq 1 ]
cat <<TXT

A development token (8 hours; scopes $scopes; customer 1001):
  TOKEN=$token

Try it (in another terminal):
  curl -s -H "Authorization: Bearer \$TOKEN" $base/v1/jobs/100001
  curl -s -H "Authorization: Bearer \$TOKEN" '$base/v1/jobs?status=on_hold&plant=CLE'
  curl -s -H "Authorization: Bearer \$TOKEN" '$base/v1/jobs?due_from=1999-01-01&due_to=1999-01-31'
  curl -s -H "Authorization: Bearer \$TOKEN" $base/v1/jobs/100001/operations
  curl -s -H "Authorization: Bearer \$TOKEN" '$base/v1/customers?name=b%C3%A4ck'
  curl -s -H "Authorization: Bearer \$TOKEN" $base/v1/my/jobs     # only customer 1001's jobs
  curl -s -i $base/v1/jobs/100001                                  # 401 without credentials
  curl -s -i -H "Authorization: Bearer \$TOKEN" $base/v1/jobs/abc  # a problem+json error
Write (the demo database is made afresh on every start):
  # a note on a job; send it again with the same key: the same answer, written once
  curl -s -i -X POST -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -H 'Idempotency-Key: note-100001-1' \\
    -d '{"text": "Check the plating thickness", "follow_up_on": "2025-03-04"}' $base/v1/jobs/100001/notes
  curl -s -H "Authorization: Bearer \$TOKEN" $base/v1/jobs/100001/notes/1
  curl -s -i -X DELETE -H "Authorization: Bearer \$TOKEN" $base/v1/jobs/100001/notes/1   # 204
  # a status change: If-Match is the ETag of the job as last read (412 once it changed)
  ETAG=\$(curl -s -o /dev/null -D - -H "Authorization: Bearer \$TOKEN" $base/v1/jobs/100001 \\
    | sed -n 's/^etag: *//Ip' | tr -d '\r')
  curl -s -X PATCH -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -H "If-Match: \$ETAG" -d '{"status": "on_hold"}' $base/v1/jobs/100001
  # an order and its lines in one transaction; Location is the new order
  curl -s -i -X POST -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -H 'Idempotency-Key: order-po-4711' -d '{"customer": 1001, "ordered_on": "2025-03-04",
    "rush": true, "reference": "PO-4711", "lines": [{"item": "BOLT-M8", "quantity": "12.500"},
    {"item": "NUT-M8", "quantity": 1234567.125}]}' $base/v1/orders
  curl -s -H "Authorization: Bearer \$TOKEN" $base/v1/orders/1/lines
Docs: $base/docs/   (Authorize with the token above to try routes out)
An API key for a machine client:
  PATINA_JWT_SECRET=\$(cat $secret_file) target/release/patina keys new --name bi --scopes jobs:read

TXT
exec target/release/patina serve --config patina.toml --listen "$listen"
