#!/usr/bin/env bash
# Runs every SecureWatch test: installs what the tests need when it is missing, builds the
# workspace, then runs unit tests and the end-to-end tests against the real binary.
# Usage: tests/run.sh [extra cargo test/nextest args]
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

# apt_install PACKAGE...: installs Debian packages (as root, or through sudo).
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -z "${APT_UPDATED:-}" ]; then
    $sudo apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# need COMMAND PACKAGE: makes sure COMMAND exists, installing PACKAGE if not.
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  say "installing $2 (for $1)"
  apt_install "$2"
  command -v "$1" >/dev/null 2>&1 || { echo "error: $1 still missing after installing $2" >&2; exit 1; }
}

say "tools"
need curl curl
need logger bsdutils
need gzip gzip
need hostname hostname
need docker-compose docker-compose
command -v cargo >/dev/null || { echo "error: cargo (Rust 1.95) is required" >&2; exit 1; }
need python3 python3
# The GeoIP test writes a small MaxMind database with the PyPI package mmdb-writer.
if ! python3 -c 'import mmdb_writer, netaddr' 2>/dev/null; then
  say "installing mmdb-writer (PyPI, for the GeoIP test)"
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  python3 -m pip install --quiet mmdb-writer netaddr 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages mmdb-writer netaddr
fi
export SECUREWATCH_REQUIRE_GEOIP_TEST=1

say "docker-compose.yml (validated only: no Docker engine here)"
docker-compose -f docker-compose.yml config -q

say "build"
cargo build --workspace --all-targets --locked

export SECUREWATCH_BIN="$PWD/target/debug/securewatch"
# Services the tests run against (tests/services/*.sh), stopped at exit.
source tests/services/postgres.sh
source tests/services/timescale.sh
trap 'timescale_stop; postgres_stop' EXIT
say "services"
postgres_start
export SECUREWATCH_REQUIRE_POSTGRES=1
timescale_start && export SECUREWATCH_REQUIRE_TIMESCALE=1 || echo "TimescaleDB (PGlite) did not start: its test is skipped"

say "tests (unit + end-to-end)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
