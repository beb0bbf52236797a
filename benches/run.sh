#!/usr/bin/env bash
# Benchmark: the gateway against the database's own speed, on loopback, bounded in time.
# Builds the release binary, starts a private PostgreSQL with the demo schema at scale
# (200,000 jobs, 1,000,000 operations), then measures three queries through the gateway (wrk)
# and directly (pgbench -M prepared) at 1 and 32 connections, and prints a table with the
# ratio gateway/pgbench, the cached lookup against a static route, the gateway's peak RSS and
# its start-up time with 500 routes.
#   BENCH_SECONDS (default 10) per run; BENCH_POOL (default 4 per core) gateway connections.
set -euo pipefail
source "$(dirname "$0")/../deploy/lib.sh"
cd "$PATINA_ROOT"

seconds="${BENCH_SECONDS:-10}"
# Four connections per core: on a machine shared with its database, more statements in
# flight only lengthen the run queue (p99) without adding throughput.
pool="${BENCH_POOL:-$(( $(nproc) * 4 ))}"
ensure_packages unixodbc-dev odbcinst odbc-postgresql postgresql-15 postgresql-client-15 wrk python3 curl redis-server time

echo "==> building patina (release)"
cargo build --release --locked --quiet --bin patina --example odbc_point_loop
bin="$PATINA_ROOT/target/release/patina"

work="$PATINA_ROOT/target/bench"
rm -rf "$work"; mkdir -p "$work/pglog"
odbc_registry "$work/odbc"

pg_dir="$(mktemp -d /tmp/patina-bench-pg.XXXXXX)"
gateway_pid=""
cleanup() {
  [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null || true
  redis_stop
  pg_stop
  rm -rf "$pg_dir"
}
trap cleanup EXIT
PG_EXTRA_OPTS="-c shared_buffers=256MB -c max_connections=100 -c shared_preload_libraries=pg_stat_statements" pg_start "$pg_dir"
export PGOPTIONS="-c client_min_messages=warning"
pg_psql -d postgres -c "CREATE ROLE bench LOGIN PASSWORD 'bench'" -c "CREATE DATABASE bench OWNER bench"
export PGPASSWORD=bench
started=$(date +%s)
psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U bench -d bench \
  -f fixtures/demo/schema.postgres.sql -f benches/scale.sql
# Statements the database ran, counted where it runs them (every call, also the gateway's).
pg_psql -d bench -c "CREATE EXTENSION pg_stat_statements"
echo "==> loaded 200,000 jobs and 1,000,000 operations in $(( $(date +%s) - started )) s"

port="$(free_port)"
cat > "$work/patina.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
mappings = "$PATINA_ROOT/benches/mappings"
[state]
dir = "$work/state"
[sources.bench]
kind = "odbc"
dialect = "postgres"
connection_string = "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=$PG_PORT;Database=bench;Uid=bench;Pwd=bench;"
pool = { max = $pool, acquire_timeout = "5s" }
TOML
PATINA_LOG=warn "$bin" serve --config "$work/patina.toml" > "$work/gateway.log" 2>&1 &
gateway_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$base/v1/jobs/1" >/dev/null

# statements: calls the database ran so far in the bench database.
statements() {
  psql -X -qAt -h 127.0.0.1 -p "$PG_PORT" -U bench -d bench \
    -c "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'bench')"
}
# cpu_ticks: the gateway's user + system CPU so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$gateway_pid/stat"; }
tick_hz=$(getconf CLK_TCK)

# wrk_run LUA CONNS -> "rps p50_ms p99_ms non2xx"
wrk_run() {
  local threads=2; [ "$2" -eq 1 ] && threads=1
  wrk -t"$threads" -c"$2" -d"${seconds}s" --latency -s "benches/$1.lua" "$base" > "$work/wrk-$1-$2.txt"
  wrk_parse "$work/wrk-$1-$2.txt"
}

# wrk_url NAME PATH -> the same for GET PATH from one connection
wrk_url() {
  wrk -t1 -c1 -d"${seconds}s" --latency "$base$2" > "$work/wrk-$1.txt"
  wrk_parse "$work/wrk-$1.txt"
}

wrk_parse() {
  python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", t).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", t).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
errs = re.search(r"Socket errors: .*", t)
print(f"{rps:.0f} {p50:.2f} {p99:.2f} {bad.group(1) if bad else 0}")
PY
}

# queued_run LABEL -> "accepted_rps p50_ms p99_ms non2xx delivered_per_s": queued notes from 32
# connections for the run's seconds, then the time until the queue is empty again.
queued_run() {
  local t0 t1 accepted
  t0=$(date +%s%N)
  read -r q_rps q_p50 q_p99 q_bad <<<"$(wrk_run note_queued 32)"
  accepted=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$work/wrk-note_queued-32.txt")
  for _ in $(seq 1 1200); do
    pending=$(curl -fsS "$base/metrics" | sed -n 's/^patina_queue_pending_total \([0-9]*\)$/\1/p')
    [ "${pending:-1}" = 0 ] && break
    sleep 0.1
  done
  t1=$(date +%s%N)
  local per_s
  per_s=$(python3 -c "print(f'{$accepted * 1e9 / ($t1 - $t0):.0f}')")
  cp "$work/wrk-note_queued-32.txt" "$work/wrk-note_queued-$1.txt"
  echo "$q_rps $q_p50 $q_p99 $q_bad $per_s"
}

# pg_run SCRIPT CONNS -> "tps p50_ms p99_ms"
pg_run() {
  local threads=2; [ "$2" -eq 1 ] && threads=1
  local logdir="$work/pglog/$1-$2"; mkdir -p "$logdir"
  (cd "$logdir" && pgbench -n -M prepared -h 127.0.0.1 -p "$PG_PORT" -U bench -c "$2" -j "$threads" \
     -T "$seconds" -f "$PATINA_ROOT/benches/$1.pgbench" -l bench > ../"$1-$2.txt" 2>&1)
  python3 - "$work/pglog/$1-$2.txt" "$logdir" <<'PY'
import glob, re, sys
t = open(sys.argv[1]).read()
tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", t).group(1))
lat = []
for f in glob.glob(sys.argv[2] + "/pgbench_log*"):
    for line in open(f):
        lat.append(int(line.split()[2]))
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))] / 1000
print(f"{tps:.0f} {q(0.5):.2f} {q(0.99):.2f} 0")
PY
}

echo "==> warming up"
wrk -t2 -c32 -d2s -s benches/point.lua "$base" >/dev/null
wrk -t2 -c32 -d2s -s benches/point_batched.lua "$base" >/dev/null

declare -A label=([point]="point lookup by key" [point_batched]="point lookup by key, \`batch = { max = 32 }\`" [customer]="50 jobs of one customer, by date" [filtered]="status + due-date range, 50 rows" [note]="write: insert a note and read it back, one transaction")
# The batched lookup is compared with the same pgbench run as the plain one.
declare -A pg_script=([point]=point [point_batched]=point [customer]=customer [filtered]=filtered [note]=note)
declare -A pg_result=()
rows=()
for q in point point_batched customer filtered note; do
  for c in 1 32; do
    echo "==> $q, $c connection(s): gateway"
    s0=$(statements); t0=$(cpu_ticks)
    read -r g_rps g_p50 g_p99 g_bad <<<"$(wrk_run "$q" "$c")"
    s1=$(statements); t1=$(cpu_ticks)
    g_reqs=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$work/wrk-$q-$c.txt")
    g_sps=$(python3 -c "print(f'{($s1 - $s0 - 1) / $seconds:.0f}')")
    g_cpu=$(python3 -c "print(f'{($t1 - $t0) * 1e6 / $tick_hz / max($g_reqs, 1):.0f}')")
    key="${pg_script[$q]}-$c"
    if [ -z "${pg_result[$key]:-}" ]; then
      echo "==> ${pg_script[$q]}, $c connection(s): pgbench"
      s0=$(statements)
      pg_out="$(pg_run "${pg_script[$q]}" "$c")"
      s1=$(statements)
      pg_result[$key]="$pg_out $(python3 -c "print(f'{($s1 - $s0 - 1) / $seconds:.0f}')")"
    fi
    read -r p_tps p_p50 p_p99 _ p_sps <<<"${pg_result[$key]}"
    ratio=$(python3 -c "print(f'{$g_rps/$p_tps:.2f}')")
    p99x=$(python3 -c "print(f'{$g_p99/max($p_p99,0.001):.1f}')")
    rows+=("| ${label[$q]} | $c | $g_rps | $g_p50 | $g_p99 | $p_tps | $p_p50 | $p_p99 | **$ratio×** | $p99x× | $g_sps | $p_sps | $g_cpu | $g_bad |")
  done
done
echo "==> the same write with a fresh Idempotency-Key each time, 32 connections"
read -r i_rps i_p50 i_p99 i_bad <<<"$(wrk_run note_idem 32)"
echo "==> queued writes (embedded store), 32 connections, then until delivered"
read -r qe_rps qe_p50 qe_p99 qe_bad qe_del <<<"$(queued_run embedded)"
echo "==> static route (/healthz), 32 connections"
read -r s_rps s_p50 s_p99 _ <<<"$(wrk_run static 32)"
echo "==> the ODBC driver alone: point lookups from 1 and 32 threads (no HTTP, no gateway)"
pg_cs="Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=$PG_PORT;Database=bench;Uid=bench;Pwd=bench;"
read -r d1_qps d1_p50 d1_p99 <<<"$(target/release/examples/odbc_point_loop "$pg_cs" 1 "$seconds" 2>/dev/null)"
read -r d32_qps d32_p50 d32_p99 <<<"$(target/release/examples/odbc_point_loop "$pg_cs" 32 "$seconds" 2>/dev/null)"
echo "==> cached point lookup (1,000 hot keys), 32 connections"
wrk -t2 -c32 -d2s -s benches/cached.lua "$base" >/dev/null
read -r c_rps c_p50 c_p99 _ <<<"$(wrk_run cached 32)"
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$gateway_pid/status")
kill "$gateway_pid"; wait "$gateway_pid" 2>/dev/null || true; gateway_pid=""

echo "==> queued writes with the queue on Redis (appendonly, appendfsync everysec), 32 connections"
redis_start "$work/redis"
sed "s#^dir = .*#dir = \"$work/state-redis\"\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:$REDIS_PORT/0\"#" \
  "$work/patina.toml" > "$work/redis.toml"
PATINA_LOG=warn "$bin" serve --config "$work/redis.toml" > "$work/gateway-redis.log" 2>&1 &
gateway_pid=$!
for _ in $(seq 1 100); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
read -r qr_rps qr_p50 qr_p99 qr_bad qr_del <<<"$(queued_run redis)"
kill "$gateway_pid"; wait "$gateway_pid" 2>/dev/null || true; gateway_pid=""
redis_stop

echo "==> exports of 1,000,000 rows, and keyset pages 1 and 2,001 (psqlODBC fetching in batches: UseDeclareFetch=1)"
sed "s#Pwd=bench;#Pwd=bench;UseDeclareFetch=1;Fetch=5000;#" "$work/patina.toml" > "$work/export.toml"
PATINA_LOG=warn "$bin" serve --config "$work/export.toml" > "$work/gateway-export.log" 2>&1 &
gateway_pid=$!
for _ in $(seq 1 100); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
export_sql="SELECT JOBNO, OPSEQ, WRKCT, OPDSC, STDHR, ACTHR, OPSTS, STRTM, LSTDT FROM JOBOPS ORDER BY JOBNO, OPSEQ"
# timed_lines CMD... -> "ms lines" of the command's output
timed_lines() {
  local t0 t1 lines
  t0=$(date +%s%N)
  lines=$("$@" | wc -l)
  t1=$(date +%s%N)
  echo "$(( (t1 - t0) / 1000000 )) $lines"
}
psql_copy() { psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U bench -d bench -c "\\copy ($export_sql) TO STDOUT CSV"; }
psql_copy >/dev/null
read -r psql_ms psql_lines <<<"$(timed_lines psql_copy)"
read -r csv_ms csv_lines <<<"$(timed_lines curl -fsS -H 'Accept: text/csv' "$base/v1/operations")"
read -r nd_ms nd_lines <<<"$(timed_lines curl -fsS -H 'Accept: application/x-ndjson' "$base/v1/operations")"
export_rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$gateway_pid/status")
rows_per_s() { python3 -c "print(f'{$1 * 1000 / max($2, 1):.0f}')"; }
# A cursor 100,000 rows in (100 pages of 1,000): page 2,001 of the default 50.
page_path="/v1/operations?limit=1000"
for _ in $(seq 1 100); do
  cursor=$(curl -fsS "$base$page_path" | python3 -c 'import json, sys; print(json.load(sys.stdin)["next"])')
  page_path="/v1/operations?limit=1000&cursor=$cursor"
done
read -r k1_rps k1_p50 k1_p99 k1_bad <<<"$(wrk_url page1 "/v1/operations")"
read -r k2_rps k2_p50 k2_p99 k2_bad <<<"$(wrk_url page2001 "/v1/operations?cursor=$cursor")"
kill "$gateway_pid"; wait "$gateway_pid" 2>/dev/null || true; gateway_pid=""
echo "==> patina scan of the same 1,000,000 operations (every value through its codec)"
/usr/bin/time -f "%M %e" -o "$work/scan.time" "$bin" scan --config "$work/export.toml" \
  --route exportOperations --format json > "$work/scan.json" || true
read -r scan_kb scan_s < "$work/scan.time"
scan_rows=$(python3 -c "import json; print(json.load(open('$work/scan.json'))['routes'][0]['rows'])")

echo "==> start-up with 500 routes"
mkdir -p "$work/many/v1"
python3 - "$work/many/v1" <<'PY'
import sys
out = []
for i in range(500):
    out.append(f'''[[route]]
id = "route{i}"
path = "/r{i}/{{job_number}}"
public = true
one = true
sql = "SELECT JOBNO, JOBDS, STSCD, DUEDT FROM JOBMST WHERE JOBNO = :job_number"
params.job_number = {{ type = "integer", minimum = 1 }}
columns.JOBNO = {{ name = "job_number", type = "integer" }}
columns.JOBDS = {{ name = "description", trim = "end" }}
columns.STSCD = {{ name = "status", codes = {{ P = "planned", R = "released", H = "on_hold", C = "complete" }} }}
columns.DUEDT = {{ name = "due_on", type = "date", format = "cyymmdd" }}
''')
for f in range(10):
    open(f"{sys.argv[1]}/part{f}.toml", "w").write('source = "bench"\n\n' + "\n".join(out[f*50:(f+1)*50]))
PY
sed "s#mappings = .*#mappings = \"$work/many\"#" "$work/patina.toml" > "$work/many.toml"
startups=()
for _ in 1 2 3; do
  t0=$(date +%s%N)
  PATINA_LOG=warn "$bin" serve --config "$work/many.toml" > "$work/many.log" 2>&1 &
  gateway_pid=$!
  until curl -fsS "$base/healthz" >/dev/null 2>&1; do sleep 0.005; done
  t1=$(date +%s%N)
  startups+=($(( (t1 - t0) / 1000000 )))
  curl -fsS "$base/v1/r499/1" >/dev/null
  kill "$gateway_pid"; wait "$gateway_pid" 2>/dev/null || true; gateway_pid=""
done
startup_ms=$(printf '%s\n' "${startups[@]}" | sort -n | sed -n 2p)

{
  echo "Patina benchmark, $(date -u +%Y-%m-%d), $(nproc) cores, loopback; ${seconds}s per run; gateway pool $pool; PostgreSQL 15 through psqlODBC."
  echo
  echo "| query | conns | gateway req/s | p50 ms | p99 ms | pgbench tps | p50 ms | p99 ms | gateway/pgbench | p99 gateway/pgbench | DB statements/s (gateway) | DB statements/s (pgbench) | gateway CPU µs/req | non-2xx |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "- the ODBC driver alone (examples/odbc_point_loop, prepared, every column as text): 1 thread $d1_qps q/s (p50 $d1_p50 ms, p99 $d1_p99 ms); 32 threads $d32_qps q/s (p50 $d32_p50 ms, p99 $d32_p99 ms)"
  echo "- the write with a fresh Idempotency-Key each (a claim, and a completion group-committed with an fsync in the embedded store), 32 connections: $i_rps req/s, p50 $i_p50 ms, p99 $i_p99 ms, non-2xx $i_bad"
  echo "- queued write (202 once fsynced into the queue, group commit), embedded store, 32 connections: $qe_rps accepted/s, p50 $qe_p50 ms, p99 $qe_p99 ms, non-2xx $qe_bad; delivered to PostgreSQL (with the dedup table) at $qe_del/s from the first request until the queue was empty"
  echo "- the same with the queue on Redis (appendfsync everysec): $qr_rps accepted/s, p50 $qr_p50 ms, p99 $qr_p99 ms, non-2xx $qr_bad; delivered at $qr_del/s"
  echo "- static JSON route (/healthz), 32 connections: $s_rps req/s, p50 $s_p50 ms, p99 $s_p99 ms"
  echo "- cached point lookup (cache = \"60s\", 1,000 hot keys), 32 connections: $c_rps req/s, p50 $c_p50 ms, p99 $c_p99 ms ($(python3 -c "print(f'{$c_rps/$s_rps:.2f}')")× the static route)"
  echo "- gateway peak RSS over the runs: $(( rss_kb / 1024 )) MiB"
  echo "- start-up to first answer with 500 routes: ${startup_ms} ms (median of 3)"
  echo "- export of 1,000,000 operations (9 columns), one client: psql \\copy … TO STDOUT CSV $(rows_per_s $((psql_lines)) "$psql_ms") rows/s ($psql_ms ms); the gateway's CSV $(rows_per_s $((csv_lines - 1)) "$csv_ms") rows/s ($csv_ms ms, $((csv_lines - 1)) rows, $(python3 -c "print(f'{$psql_ms/max($csv_ms,1):.2f}')")× psql's rate); NDJSON $(rows_per_s "$nd_lines" "$nd_ms") rows/s ($nd_ms ms, $nd_lines rows); peak RSS of that gateway $(( export_rss_kb / 1024 )) MiB"
  echo "- patina scan of the 1,000,000 operations (9 columns decoded, nothing served): $scan_rows rows in $scan_s s ($(python3 -c "print(f'{$scan_rows/max($scan_s,0.001):.0f}')") rows/s), peak RSS $(( scan_kb / 1024 )) MiB"
  echo "- keyset page of 50 operations, one connection: page 1 p50 $k1_p50 ms, p99 $k1_p99 ms ($k1_rps req/s); page 2,001 p50 $k2_p50 ms, p99 $k2_p99 ms ($k2_rps req/s); non-2xx $k1_bad/$k2_bad"
} | tee "$work/results.md"
