#!/usr/bin/env bash
# Long-run memory benchmark: paced HEC load with event time = send time against a release
# `securewatch run` with short rollup windows, so that many retention horizons pass; samples the
# server's RSS (VmRSS) every SAMPLE_SECS and prints the samples, the first- vs second-half maximum
# and the RSS trend after warm-up (flat = memory bounded by the retention horizon).
# Usage: bench/long_run.sh [MINUTES]   (default 10)
# Environment:
#   RATE            HEC events/s (default 20000)
#   HOSTS           distinct hosts, i.e. rows per bucket of the per-host rollups (default 200)
#   WORKERS         timely workers (default 1)
#   LATENESS_SECS   allowed lateness (default 30)
#   RETENTION_SECS  retention horizon (default 60)
#   SAMPLE_SECS     RSS sampling interval (default 15)
#   HEC_CONCURRENCY concurrent HEC connections (default 32)
#   IDLE_SECS       idle CPU sampling after the load (default 30; 0 skips)
#   BIN_DIR         use the binaries in this directory instead of building
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
rate="${RATE:-20000}"
hosts="${HOSTS:-200}"
workers="${WORKERS:-1}"
lateness="${LATENESS_SECS:-30}"
retention="${RETENTION_SECS:-60}"
every="${SAMPLE_SECS:-15}"
idle_secs="${IDLE_SECS:-30}"
duration=$((minutes * 60))
events=$((rate * duration))
# Buckets are one minute wide; from one bucket plus the retention horizon on, buckets leave
# memory as fast as new ones arrive.
warmup=$((60 + retention))

source bench/common.sh
data="$(mktemp -d)"
hec_port=$(port); api_port=$(port)
cat > "$data/bench.toml" <<TOML
$(api_config "$api_port")
$(sources_config "$hec_port")
TOML

SECUREWATCH_DATAFLOW__WORKERS="$workers" SECUREWATCH_DATAFLOW__LATENESS_SECS="$lateness" \
  SECUREWATCH_DATAFLOW__RETENTION_SECS="$retention" SECUREWATCH_HEC_TOKEN=bench RUST_LOG=warn \
  "$bin/securewatch" run --config "$data/bench.toml" --data-dir "$data" &
server=$!
load=""
cleanup() {
  if [ -n "$load" ]; then kill "$load" 2>/dev/null || true; fi
  kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"
}
trap cleanup EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$api_port/api/v1/health" >/dev/null && break; sleep 0.1; done

metric() { curl -sf "http://127.0.0.1:$api_port/metrics" | awk -v name="$1" '$1 == name || index($1, name "{") == 1 { s += $NF } END { printf "%.0f", s }'; }
gauge() { curl -sf "http://127.0.0.1:$api_port/metrics" | awk -v name="$1" '$1 == name { v = $NF } END { printf "%.2f", v }'; }

echo "== long run: $minutes min of HEC at $rate events/s from $hosts hosts (event time = send time), workers $workers, lateness ${lateness}s, retention ${retention}s, RSS every ${every}s"
"$bin/securewatch-bench" hec --url "http://127.0.0.1:$hec_port" --api "http://127.0.0.1:$api_port" --token bench \
  --events "$events" --batch 100 --concurrency "${HEC_CONCURRENCY:-32}" --rate "$rate" --now-times --hosts "$hosts" &
load=$!
samples="$data/rss.tsv"
start=$(date +%s.%N)
printf '%8s %10s %12s %14s %10s\n' "t (s)" "VmRSS MiB" "stored" "rollup chg" "lag (s)"
tick=0
while kill -0 "$load" 2>/dev/null; do
  tick=$((tick + every))
  sleep "$(awk -v s="$start" -v t="$tick" -v now="$(date +%s.%N)" 'BEGIN { d = s + t - now; print (d > 0 ? d : 0) }')"
  kill -0 "$load" 2>/dev/null || break
  rss=$(awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$server/status")
  stored=$(metric securewatch_store_written_total)
  changes=$(metric securewatch_rollup_changes_total)
  lag=$(gauge securewatch_dataflow_epoch_lag_seconds)
  printf '%8d %10s %12s %14s %10s\n' "$tick" "$rss" "$stored" "$changes" "$lag"
  printf '%d\t%s\n' "$tick" "$rss" >> "$samples"
done
wait "$load"
load=""

awk -v half=$((duration / 2)) -v end="$duration" -v warmup="$warmup" '
  $1 <= end { if ($1 <= half) { if ($2 > first) first = $2 } else { if ($2 > second) second = $2 } }
  $1 >= warmup && $1 <= end { n++; sx += $1; sy += $2; sxx += $1 * $1; sxy += $1 * $2; if (min == "" || $2 < min) min = $2; if ($2 > max) max = $2 }
  $1 > half && $1 <= end { m++; tx += $1; ty += $2; txx += $1 * $1; txy += $1 * $2 }
  END {
    printf "== RSS max: first half (t <= %d s) %.1f MiB, second half %.1f MiB\n", half, first, second
    if (n > 1) printf "== after warm-up (t >= %d s, %d samples): %.1f .. %.1f MiB, least-squares trend %+.2f MiB/min\n", warmup, n, min, max, (n * sxy - sx * sy) / (n * sxx - sx * sx) * 60
    if (m > 1) printf "== second half (%d samples): least-squares trend %+.2f MiB/min\n", m, (m * txy - tx * ty) / (m * txx - tx * tx) * 60
  }' "$samples"
if [ "$idle_secs" != 0 ]; then
  sleep 5
  "$bin/securewatch-bench" idle --pid "$server" --seconds "$idle_secs"
fi
echo "== server RSS now $(awk '/VmRSS/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$server/status"), peak $(awk '/VmHWM/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$server/status"), store size $(du -sh "$data" | cut -f1)"
