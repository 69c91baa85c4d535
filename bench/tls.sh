#!/usr/bin/env bash
# What TLS costs, side by side in one run: syslog over TCP vs over TLS (RFC 5425, server
# certificate only) and HEC over HTTP vs HTTPS. Each scenario runs on a fresh release
# `securewatch run` in a temporary data directory; it prints the load generator's line
# (events/s into the store) and the server's CPU seconds over the scenario, per million events.
# Usage: bench/tls.sh [EVENTS]   (default 1000000)
# Environment: HEC_CONCURRENCY (32), HEC_BATCH (100), SYSLOG_CONNECTIONS (4), BIN_DIR (prebuilt
# binaries instead of a release build). Certificates: a throw-away EC P-256 CA and server
# certificate made with openssl (tests/services/tls.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-1000000}"

source bench/common.sh
source tests/services/tls.sh

pki="$(mktemp -d)"
make_test_pki "$pki"
trap 'stop_server; rm -rf "$pki"' EXIT

tls_table() {
  printf '[%s]\ncert_file = "%s"\nkey_file = "%s"\n' "$1" "$pki/server.pem" "$pki/server.key"
}

# start_server TLS(0|1): sets $server, $data, $hec_port, $syslog_port, $api_port
start_server() {
  data="$(mktemp -d)"
  hec_port=$(port); syslog_port=$(port); api_port=$(port)
  {
    api_config "$api_port"
    printf '[sources.hec]\nlisten = "127.0.0.1:%s"\n' "$hec_port"
    if [ "$1" = 1 ]; then
      printf '[sources.syslog]\nudp_listen = "off"\ntcp_listen = "off"\ntls_listen = "127.0.0.1:%s"\n' "$syslog_port"
      tls_table sources.syslog.tls
      tls_table sources.hec.tls
    else
      printf '[sources.syslog]\nudp_listen = "off"\ntcp_listen = "127.0.0.1:%s"\n' "$syslog_port"
    fi
  } > "$data/bench.toml"
  SECUREWATCH_HEC_TOKEN=bench RUST_LOG=warn "$bin/securewatch" run --config "$data/bench.toml" --data-dir "$data" &
  server=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$api_port/api/v1/health" >/dev/null && return; sleep 0.1; done
  echo "server did not become healthy" >&2; exit 1
}

# cpu_seconds PID: the process's user + system CPU seconds so far.
cpu_seconds() {
  awk -v tck="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / tck}' "/proc/$1/stat"
}

scenario() {
  local name=$1 tls=$2
  shift 2
  start_server "$tls"
  local before after
  before=$(cpu_seconds "$server")
  "$@"
  after=$(cpu_seconds "$server")
  awk -v name="$name" -v b="$before" -v a="$after" -v n="$events" \
    'BEGIN {printf "== %s: server CPU %.1f s, %.1f CPU-s per million events\n", name, a - b, (a - b) * 1e6 / n}'
  stop_server
}

# hec http|https: the HEC load against this scenario's server.
hec() {
  local url="http://127.0.0.1:$hec_port" ca=()
  [ "$1" = https ] && { url="https://localhost:$hec_port"; ca=(--ca-file "$pki/ca.pem"); }
  "$bin/securewatch-bench" hec --url "$url" "${ca[@]}" --token bench --api "http://127.0.0.1:$api_port" --events "$events" \
    --batch "${HEC_BATCH:-100}" --concurrency "${HEC_CONCURRENCY:-32}" --now-times
}
syslog() {
  "$bin/securewatch-bench" syslog-tcp --addr "127.0.0.1:$syslog_port" --api "http://127.0.0.1:$api_port" \
    --events "$events" --connections "${SYSLOG_CONNECTIONS:-4}" "$@"
}

scenario "syslog TCP" 0 syslog
scenario "syslog TLS" 1 syslog --tls-ca "$pki/ca.pem"
scenario "HEC http" 0 hec http
scenario "HEC https" 1 hec https
