# A throwaway PostgreSQL cluster for the ground's tests, sourced by .ci/run (and usable by hand:
# `source .ci/postgres.sh && start_postgres`, then `stop_postgres`).
#
# start_postgres: makes a cluster in a new temporary directory with Debian's server
# (/usr/lib/postgresql/<version>/bin; the `postgresql` package), run as the `postgres` user when
# this runs as root (the server refuses root) or as the current user otherwise. It listens on
# 127.0.0.1 only, on a port free at start, with `trust` authentication (a test cluster on the
# loopback, gone at the end), the C locale (the ground needs byte-order text comparison) and
# fsync off (nothing in it outlives the run; the ground's own commit settings still apply).
# Exports ORBITDOCK_TEST_POSTGRES_URL, the URL of its `postgres` database, on which the tests
# create and drop a database per test (crates/ground/tests/common/postgres.rs).
#
# stop_postgres: stops the cluster and deletes its directory.

start_postgres() {
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [[ -x "$bin/initdb" ]] || { echo "PostgreSQL's server is not installed (Debian package postgresql)" >&2; return 1; }
  PG_DIR="$(mktemp -d /tmp/orbitdock-postgres.XXXXXX)"
  PG_BIN="$bin"
  local port
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  local as=()
  if [[ "$(id -u)" == 0 ]]; then
    chown postgres: "$PG_DIR"
    as=(runuser -u postgres --)
  fi
  # Known before the server starts, so that stop_postgres stops it whatever fails after.
  PG_AS=("${as[@]}")
  "${as[@]}" "$bin/initdb" --pgdata "$PG_DIR/data" --username postgres --auth trust \
    --locale C --encoding UTF8 --no-sync >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  "${as[@]}" "$bin/pg_ctl" --pgdata "$PG_DIR/data" --log "$PG_DIR/server.log" --wait \
    --options "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$PG_DIR -c fsync=off -c max_connections=300" \
    start >/dev/null \
    || { cat "$PG_DIR/server.log" >&2; return 1; }
  export ORBITDOCK_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

stop_postgres() {
  [[ -n "${PG_DIR:-}" && -d "$PG_DIR" ]] || return 0
  [[ -f "$PG_DIR/data/postmaster.pid" ]] && "${PG_AS[@]}" "$PG_BIN/pg_ctl" --pgdata "$PG_DIR/data" --mode fast --wait stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  PG_DIR=
}
