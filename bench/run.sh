#!/usr/bin/env bash
# Ingest benchmark: for each worker count and scenario, starts a fresh release `securewatch run`
# in a temporary data directory, drives it with the load generators, and prints events/s, latency
# percentiles, the server's idle CPU after the load, its peak RSS and the store's size.
# Usage: bench/run.sh [EVENTS] [SCENARIOS]   (defaults: 1000000 "hec syslog")
#   scenarios: hec       HEC flat out (max throughput)
#              hec-rate  HEC paced at HEC_RATE events/s (latency at a fixed load)
#              syslog    syslog over 4 TCP connections
# Environment:
#   WORKERS="1 2"      timely worker counts to run every scenario with (default 1; sets
#                      SECUREWATCH_DATAFLOW__WORKERS)
#   HEC_CONCURRENCY    concurrent HEC connections (default 32)
#   HEC_BATCH          events per HEC request (default 100)
#   HEC_RATE           events/s of hec-rate (default 50000)
#   HEC_HOSTS          distinct hosts of the HEC events (default 200)
#   NOW_TIMES=0        use the fixed 2023 event times (all late for the rollups) instead of
#                      event time = send time (default 1)
#   IDLE_SECS          seconds of idle CPU sampling after the load (default 30; 0 skips)
#   IDLE_SETTLE_SECS   seconds to wait after the load before sampling (default 5)
#   BIN_DIR            use the binaries in this directory instead of building
# Extra server settings can be given as SECUREWATCH_* environment overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-1000000}"
scenarios="${2:-hec syslog}"
workers_list="${WORKERS:-1}"
idle_secs="${IDLE_SECS:-30}"
idle_settle="${IDLE_SETTLE_SECS:-5}"
now_times=()
[ "${NOW_TIMES:-1}" = 1 ] && now_times=(--now-times)

source bench/common.sh

trap stop_server EXIT

# start_server WORKERS: sets $server, $data, $hec_port, $syslog_port, $api_port
start_server() {
  data="$(mktemp -d)"
  hec_port=$(port); syslog_port=$(port); api_port=$(port)
  cat > "$data/bench.toml" <<TOML
$(api_config "$api_port")
$(sources_config "$hec_port" "$syslog_port")
TOML
  SECUREWATCH_DATAFLOW__WORKERS="$1" SECUREWATCH_HEC_TOKEN=bench RUST_LOG=warn \
    "$bin/securewatch" run --config "$data/bench.toml" --data-dir "$data" &
  server=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$api_port/api/v1/health" >/dev/null && return; sleep 0.1; done
  echo "server did not become healthy" >&2; exit 1
}

hec() {
  "$bin/securewatch-bench" hec --url "http://127.0.0.1:$hec_port" --api "http://127.0.0.1:$api_port" \
    --token bench --events "$events" --batch "${HEC_BATCH:-100}" --concurrency "${HEC_CONCURRENCY:-32}" --hosts "${HEC_HOSTS:-200}" "${now_times[@]}" "$@"
}

for workers in $workers_list; do
  for scenario in $scenarios; do
    start_server "$workers"
    case "$scenario" in
      hec)
        echo "== workers $workers: HEC flat out, $events events, batches of ${HEC_BATCH:-100}, ${HEC_CONCURRENCY:-32} connections"
        hec ;;
      hec-rate)
        echo "== workers $workers: HEC paced at ${HEC_RATE:-50000} events/s, $events events, ${HEC_CONCURRENCY:-32} connections"
        hec --rate "${HEC_RATE:-50000}" ;;
      syslog)
        echo "== workers $workers: syslog TCP, $events messages"
        "$bin/securewatch-bench" syslog-tcp --addr "127.0.0.1:$syslog_port" --api "http://127.0.0.1:$api_port" \
          --events "$events" --connections 4 ;;
      *) echo "unknown scenario $scenario (hec, hec-rate, syslog)" >&2; exit 2 ;;
    esac
    if [ "$idle_secs" != 0 ]; then
      sleep "$idle_settle"
      "$bin/securewatch-bench" idle --pid "$server" --seconds "$idle_secs"
    fi
    echo "== workers $workers, $scenario: server peak RSS $(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$server/status"), store size $(du -sh "$data" | cut -f1)"
    stop_server
  done
done
