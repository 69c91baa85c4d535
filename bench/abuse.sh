#!/usr/bin/env bash
# Issue 24 abuse bench: starts a release `securewatch run` (default config, free loopback ports,
# temporary data directory), measures a paced HEC + syslog TCP load alone, then the same load
# while abusive clients run: slow-loris headers (HEC, API) and bodies (HEC), thousands of idle
# connections (syslog TCP and HEC), 1 MB gzip bombs (HEC) and concurrent heavy reads
# (`/api/v1/events?q=zzz…&limit=10000`). Prints the stored rate with vs without abuse, the
# server's peak RSS and the worst `/api/v1/health` latency. Clients: bench/abuse.py (python3).
# Usage: bench/abuse.sh [SECONDS]   (default 30 per phase; the whole run stays under 10 minutes)
# Environment:
#   HEC_RATE, SYSLOG_RATE  paced load in events/s (default 5000, 2000)
#   IDLE                   idle connections on syslog and on HEC each (default 2000)
#   SLOW                   slow-header and slow-body connections (default 100)
#   BOMBS_PER_SEC          gzip bombs per second (default 1; 0: none)
#   READERS                looping heavy readers (default 8)
#   PRELOAD                HEC events stored before the phases, for the reads to scan (default 200000)
#   BIN_DIR                use the binaries in this directory instead of building
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
source bench/common.sh

trap stop_server EXIT

data="$(mktemp -d)"
hec_port=$(port); syslog_port=$(port); api_port=$(port)
cat > "$data/bench.toml" <<TOML
$(api_config "$api_port")
$(sources_config "$hec_port" "$syslog_port")
TOML
SECUREWATCH_HEC_TOKEN=bench RUST_LOG=warn "$bin/securewatch" run --config "$data/bench.toml" --data-dir "$data" \
  2> "$data/server.log" &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$api_port/api/v1/health" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$api_port/api/v1/health" >/dev/null || { echo "server did not become healthy" >&2; exit 1; }

preload="${PRELOAD:-200000}"
if [ "$preload" != 0 ]; then
  echo "== preloading $preload HEC events (for the heavy reads to scan)"
  timeout 300 "$bin/securewatch-bench" hec --url "http://127.0.0.1:$hec_port" --api "http://127.0.0.1:$api_port" \
    --token bench --events "$preload" --batch 100 --concurrency 32 --now-times | tail -1
fi

phase() {
  timeout $(( seconds * 3 + 240 )) python3 bench/abuse.py "$1" --hec "$hec_port" --syslog "$syslog_port" \
    --api "$api_port" --pid "$server" --seconds "$seconds" --hec-rate "${HEC_RATE:-5000}" \
    --syslog-rate "${SYSLOG_RATE:-2000}" --idle "${IDLE:-2000}" --slow "${SLOW:-100}" \
    --bombs-per-sec "${BOMBS_PER_SEC:-1}" --readers "${READERS:-8}"
}
echo "== steady load alone: HEC ${HEC_RATE:-5000}/s + syslog TCP ${SYSLOG_RATE:-2000}/s for ${seconds} s"
steady=$(phase steady); echo "$steady"
echo "== the same load under abuse"
abused=$(phase abuse); echo "$abused"
python3 - "$steady" "$abused" <<'PY'
import json, sys
steady, abused = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ratio = abused["stored_per_sec"] / steady["stored_per_sec"]
print(f"== stored rate: {steady['stored_per_sec']}/s alone, {abused['stored_per_sec']}/s under abuse "
      f"({ratio:.1%}, target >= 90%)")
worst = max(steady["health_max_ms"], abused["health_max_ms"])
print(f"== health: worst {worst} ms (target < 1000 ms), p99 {abused['health_p99_ms']} ms under abuse, "
      f"failures {steady['health_failures'] + abused['health_failures']}")
print(f"== server peak RSS (VmHWM): {steady['hwm_mib']} MiB after the steady phase, {abused['hwm_mib']} MiB after abuse")
PY
echo "== server counters"
curl -s "http://127.0.0.1:$api_port/metrics" | grep -E '^securewatch_(http_connections_closed_total|source_connections_refused_total|source_idle_connections_closed_total|hec_inflation_waits_total|log_suppressed_total|source_rejected_total)' || true
