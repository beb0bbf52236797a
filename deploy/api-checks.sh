# Checks of the API as its users see it, run by deploy/test.sh after the Rust tests (sourced;
# expects lib.sh, $work, PATINA_TEST_PG and the private cluster pg_start started): the committed
# OpenAPI documents validated by an independent validator, a property-based API test generated
# from the document against the demo gateway on SQLite and on PostgreSQL, and Swagger UI
# rendered in headless Chromium. The write routes are exercised too, so each backend gets a
# throwaway copy of the demo database: nothing the Rust tests read is changed.

GATEWAY_PIDS=()
stop_gateways() {
  for pid in "${GATEWAY_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
}

# start_gateway CONFIG LOG : run the debug binary on a free port; sets GATEWAY_URL.
start_gateway() {
  local port; port="$(free_port)"
  target/debug/patina serve --config "$1" --listen "127.0.0.1:$port" >"$2" 2>&1 &
  GATEWAY_PIDS+=("$!")
  GATEWAY_URL="http://127.0.0.1:$port"
  # Ready: listening, and its database answers (a source that failed to connect at start is
  # retried behind its breaker; the checks start once it is up).
  for _ in $(seq 1 300); do
    curl -fsS "$GATEWAY_URL/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "gateway did not become ready; its log:" >&2; cat "$2" >&2; return 1
}

api_checks() {
  local venv="$work/venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "openapi-spec-validator==0.9.*" "schemathesis==4.*"

  echo "==> OpenAPI 3.1 validation (openapi-spec-validator)"
  for f in openapi/*.json; do "$venv/bin/openapi-spec-validator" "$f"; done

  local demo_db="$work/demo.db"
  rm -f "$demo_db"
  sqlite3 "$demo_db" < fixtures/demo/schema.sqlite.sql
  sqlite3 "$demo_db" < fixtures/demo/data.sql
  # PostgreSQL: a database of its own in the private cluster, owned by the tests' role.
  pg_psql -d postgres -c "DROP DATABASE IF EXISTS patina_checks" \
    -c "CREATE DATABASE patina_checks OWNER patina"
  PGPASSWORD=patina-test psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U patina \
    -d patina_checks -f fixtures/demo/schema.postgres.sql -f fixtures/demo/data.sql
  local checks_pg="${PATINA_TEST_PG/Database=patina;/Database=patina_checks;}"
  rm -rf "$work/state-sqlite" "$work/state-postgres"   # idempotency records of an earlier run
  local secret; secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  local auth="[auth.jwt]
issuer = \"patina-api-checks\"
audience = \"patina\"
hs256_secret = \"$secret\""
  cat > "$work/sqlite.toml" <<TOML
[server]
mappings = "$PATINA_ROOT/mappings"
[state]
dir = "$work/state-sqlite"
[sources.demo]
kind = "odbc"
dialect = "sqlite"
connection_string = "Driver={SQLite3};Database=$demo_db"
$auth
TOML
  cat > "$work/postgres.toml" <<TOML
[server]
mappings = "$PATINA_ROOT/mappings"
[state]
dir = "$work/state-postgres"
[sources.demo]
kind = "odbc"
dialect = "postgres"
connection_string = "$checks_pg"
$auth
TOML

  trap 'stop_gateways; pg_stop; rm -rf "$pg_dir"' EXIT
  local backend
  for backend in sqlite postgres; do
    start_gateway "$work/$backend.toml" "$work/gateway-$backend.log"
    local token
    token="$(target/debug/patina token --config "$work/$backend.toml" --sub schemathesis \
      --scopes "jobs:read jobs:write customers:read orders:read orders:write portal" \
      --claim customer_id=1001)"
    echo "==> property-based API test from the document (schemathesis), $backend"
    # Requests valid by the document go out as a client sends them (a fresh Idempotency-Key,
    # the current ETag as If-Match): deploy/schemathesis_hooks.py; deploy/schemathesis.toml
    # says which status a missing If-Match gets.
    local version
    for version in v1 v2; do
      PYTHONPATH="$PATINA_ROOT/deploy" SCHEMATHESIS_HOOKS=schemathesis_hooks \
      PATINA_CHECKS_URL="$GATEWAY_URL" PATINA_CHECKS_TOKEN="$token" \
      "$venv/bin/schemathesis" --config-file deploy/schemathesis.toml \
        run "$GATEWAY_URL/openapi/$version.json" --checks all \
        --header "Authorization: Bearer $token" \
        --max-examples 100 --seed 20261126 --request-timeout 10 --no-color
    done
    if [ "$backend" = sqlite ]; then
      echo "==> Swagger UI in headless Chromium: authorize with a token and try a route out"
      npm ci --prefix tests/browser --no-audit --no-fund --silent
      mkdir -p target/test-artifacts
      node tests/browser/try-it-out.mjs "$GATEWAY_URL" "$token" \
        "$PATINA_ROOT/target/test-artifacts/try-it-out.png"
      echo "==> the admin page in headless Chromium: a dead letter listed, replayed, dropped"
      local admin_token
      admin_token="$(target/debug/patina token --config "$work/$backend.toml" --sub operator \
        --scopes "patina:admin")"
      node tests/browser/admin-page.mjs "$GATEWAY_URL" "$admin_token" "$token" \
        "$PATINA_ROOT/target/test-artifacts/admin-page.png"
    fi
  done

  echo "==> Swagger UI in headless Chromium: every route listed"
  local profile; profile="$(mktemp -d)"
  local chrome=(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
    --disable-background-networking --disable-component-update --disable-sync
    --user-data-dir="$profile" --virtual-time-budget=15000)
  mkdir -p target/test-artifacts
  "${chrome[@]}" --dump-dom "$GATEWAY_URL/docs/" 2>/dev/null > target/test-artifacts/docs.html
  "${chrome[@]}" --window-size=1280,1400 --screenshot="$PATINA_ROOT/target/test-artifacts/docs.png" \
    "$GATEWAY_URL/docs/" >/dev/null 2>&1 || true
  rm -rf "$profile"
  # The newest version opens first; the browser check above selects v1 and finds every route.
  local missing=0 path
  for path in /v2/jobs/{job_number}; do
    grep -q "data-path=\"$path\"" target/test-artifacts/docs.html || { echo "Swagger UI does not list $path"; missing=1; }
  done
  for version in v1 v2; do
    grep -q ">$version</option>" target/test-artifacts/docs.html || { echo "Swagger UI offers no $version"; missing=1; }
  done
  [ "$missing" -eq 0 ] || return 1
  echo "Swagger UI opens with v2 and offers v1 and v2 (screenshot: target/test-artifacts/docs.png)"
  stop_gateways
}
