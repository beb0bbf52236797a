# Shared helpers for deploy/*.sh: package installation, a private ODBC driver registry, a
# private PostgreSQL cluster and a private Redis on loopback ports. Sourced, not run.

PATINA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_packages PKG... : install the Debian packages that are missing.
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# odbc_registry DIR : write odbcinst.ini for the SQLite, PostgreSQL and FreeTDS drivers into DIR (with
# the PostgreSQL driver's communication log off) and point unixODBC at it.
odbc_registry() {
  local dir="$1"
  local libdir
  libdir="$(dirname "$(dpkg -L odbc-postgresql 2>/dev/null | grep '/psqlodbcw.so$' | head -n1)")"
  local sqlite_lib tds_lib
  sqlite_lib="$(dpkg -L libsqliteodbc 2>/dev/null | grep '/libsqlite3odbc.so$' | head -n1)"
  tds_lib="$(dpkg -L tdsodbc 2>/dev/null | grep '/libtdsodbc.so$' | head -n1)"
  mkdir -p "$dir"
  cat > "$dir/odbcinst.ini" <<INI
[SQLite3]
Description=SQLite3 ODBC Driver
Driver=${sqlite_lib:-libsqlite3odbc.so}

[PostgreSQL Unicode]
Description=PostgreSQL ODBC driver (Unicode version)
Driver=${libdir:-/usr/lib/x86_64-linux-gnu/odbc}/psqlodbcw.so
Debug=0
CommLog=0

[FreeTDS]
Description=FreeTDS (SQL Server, Sybase): the fallback for SQL Server 2000/2005
Driver=${tds_lib:-libtdsodbc.so}
INI
  : > "$dir/odbc.ini"
  export ODBCSYSINI="$dir"
}

pg_bin() {
  local v
  for v in 15 16 17; do
    if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then echo "/usr/lib/postgresql/$v/bin"; return; fi
  done
  echo "no PostgreSQL server binaries found under /usr/lib/postgresql" >&2
  return 1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# pg_start DIR : start a private cluster in DIR on a free loopback port; sets PG_PORT, PG_DIR.
pg_start() {
  PG_DIR="$1"
  local bin; bin="$(pg_bin)"
  PG_PORT="$(free_port)"
  mkdir -p "$PG_DIR"
  local run=()
  if [ "$(id -u)" -eq 0 ]; then
    chmod 755 "$PG_DIR"
    chown postgres:postgres "$PG_DIR"
    run=(runuser -u postgres --)
  fi
  PG_RUN=("${run[@]}")
  "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PG_DIR -c fsync=off -c max_connections=200 ${PG_EXTRA_OPTS:-}" start >/dev/null
  echo "==> PostgreSQL running on 127.0.0.1:$PG_PORT (data in $PG_DIR)"
}

pg_stop() {
  if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ]; then
    "${PG_RUN[@]}" "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    echo "==> PostgreSQL stopped"
  fi
}

# pg_psql ARGS... : psql against the private cluster as the superuser.
pg_psql() {
  psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"
}

# redis_start DIR : start a private Redis in DIR on a free loopback port, persisting only into
# DIR (append-only file, fsync every second, no snapshots); sets REDIS_PORT, REDIS_DIR.
redis_start() {
  REDIS_DIR="$1"
  REDIS_PORT="$(free_port)"
  mkdir -p "$REDIS_DIR"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" \
    --appendonly yes --appendfsync everysec --save "" \
    --daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" >/dev/null
  local i
  for i in $(seq 1 50); do
    if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
      echo "==> Redis running on 127.0.0.1:$REDIS_PORT (data in $REDIS_DIR)"
      return 0
    fi
    sleep 0.1
  done
  echo "Redis did not start; its log:" >&2
  cat "$REDIS_DIR/redis.log" >&2 || true
  return 1
}

redis_stop() {
  if [ -n "${REDIS_DIR:-}" ] && [ -f "$REDIS_DIR/redis.pid" ]; then
    local pid; pid="$(cat "$REDIS_DIR/redis.pid")"
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "==> Redis stopped"
  fi
}
