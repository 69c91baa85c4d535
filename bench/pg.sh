#!/usr/bin/env bash
# Rows/s into PostgreSQL through the sink: starts a throw-away PostgreSQL 15 with durable
# settings (fsync on, synchronous_commit on) and 1 GiB shared_buffers on a free loopback port,
# runs `securewatch-bench pg` (binary COPY, then multi-row INSERT, each followed by a replay of
# the same events) or, with BENCH=pg-dashboard, `securewatch-bench pg-dashboard` (loads EVENTS
# with their rollups, then times the dashboard queries), and stops the server.
# Usage: [BENCH=pg|pg-dashboard] bench/pg.sh [EVENTS] [extra securewatch-bench args]
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
shift || true
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if [ -z "${BIN_DIR:-}" ]; then
  cargo build --release --locked -p securewatch-bench
  BIN_DIR=target/release
fi
source tests/services/postgres.sh
trap postgres_stop EXIT
POSTGRES_FSYNC=on POSTGRES_SHARED_BUFFERS=${POSTGRES_SHARED_BUFFERS:-1GB} postgres_start
"$BIN_DIR/securewatch-bench" "${BENCH:-pg}" --url "$SECUREWATCH_TEST_POSTGRES_URL" --events "$EVENTS" "$@"
