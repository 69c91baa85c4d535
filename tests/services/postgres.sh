# Sourced by tests/run.sh: starts a throw-away PostgreSQL 15 on a free loopback port and exports
# SECUREWATCH_TEST_POSTGRES_URL; `postgres_stop` (called from the caller's EXIT trap) stops it.
# Usage: source tests/services/postgres.sh; postgres_start; trap postgres_stop EXIT
# POSTGRES_FSYNC=on keeps PostgreSQL's durable defaults (benchmarks); tests run with fsync off.
# POSTGRES_TLS=1 also serves TLS (ssl=on) with a certificate for 127.0.0.1 from a throw-away CA
# made here with openssl, and exports its file as SECUREWATCH_TEST_POSTGRES_CA.

postgres_bin() {
  local dir
  for dir in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  return 1
}

postgres_start() {
  local bin
  if ! bin=$(postgres_bin); then
    echo "== installing postgresql (Debian package)"
    apt_install postgresql
    bin=$(postgres_bin) || { echo "error: initdb still missing after installing postgresql" >&2; return 1; }
  fi
  # PostgreSQL refuses to run as root: run it as the `postgres` user (the Debian package makes it).
  local run_as=()
  if [ "$(id -u)" -eq 0 ]; then
    id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    run_as=(runuser -u postgres --)
  fi
  POSTGRES_DIR=$(mktemp -d /tmp/securewatch-pg.XXXXXX)
  chmod 755 "$POSTGRES_DIR"
  [ "${#run_as[@]}" -eq 0 ] || chown postgres: "$POSTGRES_DIR"
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${run_as[@]}" "$bin/initdb" -D "$POSTGRES_DIR/data" -U securewatch --auth=trust -E UTF8 --locale=C.UTF-8 >"$POSTGRES_DIR/initdb.log" 2>&1 \
    || { cat "$POSTGRES_DIR/initdb.log" >&2; return 1; }
  local tls_options=""
  if [ "${POSTGRES_TLS:-0}" = 1 ]; then
    source "$(dirname "${BASH_SOURCE[0]}")/tls.sh"
    make_test_pki "$POSTGRES_DIR/tls" || return 1
    [ "${#run_as[@]}" -eq 0 ] || chown -R postgres: "$POSTGRES_DIR/tls"
    tls_options="-c ssl=on -c ssl_cert_file=$POSTGRES_DIR/tls/server.pem -c ssl_key_file=$POSTGRES_DIR/tls/server.key"
    export SECUREWATCH_TEST_POSTGRES_CA="$POSTGRES_DIR/tls/ca.pem"
  fi
  "${run_as[@]}" "$bin/pg_ctl" -D "$POSTGRES_DIR/data" -l "$POSTGRES_DIR/server.log" -w -t 60 \
    -o "$tls_options -c listen_addresses=127.0.0.1 -p $port -k $POSTGRES_DIR -c fsync=${POSTGRES_FSYNC:-off} -c max_connections=200 -c shared_buffers=${POSTGRES_SHARED_BUFFERS:-128MB} -c max_wal_size=${POSTGRES_MAX_WAL_SIZE:-1GB}" start >/dev/null \
    || { cat "$POSTGRES_DIR/server.log" >&2; return 1; }
  POSTGRES_RUN_AS=("${run_as[@]}")
  POSTGRES_BIN_DIR=$bin
  export SECUREWATCH_TEST_POSTGRES_URL="postgres://securewatch@127.0.0.1:$port/postgres"
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $POSTGRES_DIR)"
}

postgres_stop() {
  [ -n "${POSTGRES_DIR:-}" ] || return 0
  "${POSTGRES_RUN_AS[@]}" "$POSTGRES_BIN_DIR/pg_ctl" -D "$POSTGRES_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$POSTGRES_DIR"
  POSTGRES_DIR=
}
