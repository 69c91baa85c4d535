#!/usr/bin/env bash
# Soak: a release `securewatch run` on its durable defaults, with detection on and a store
# retention, fed for MINUTES at RATE events/s (half HEC, half syslog TCP, event time = send
# time). Every SAMPLE_SECS it samples the server's RSS, CPU seconds, open file descriptors, the
# data directory's size, the epoch lag, events stored and alerts; at the end it prints the
# samples and, after the warm-up, each figure's range and least-squares trend per hour (flat RSS,
# fds and store size = nothing leaks once the retention horizon is reached).
# Usage: bench/soak.sh [MINUTES]   (default 120)
# Environment:
#   RATE            events/s in all (default 20000), split evenly between HEC and syslog
#   HEC_CONCURRENCY HEC connections (default 32: each answer waits for the epoch's commit, about
#                   100 ms, so one connection carries about 10 batches of 100 a second)
#   RETENTION_SECS  [store] retention_secs (default 900: the store stops growing after 15 min)
#   WARMUP_SECS     samples before this are left out of the trends (default RETENTION_SECS + 600)
#   SAMPLE_SECS     sampling interval (default 60)
#   CORPUS          with corpus/sigma present, its rules are loaded beside bench/soak/rules.yml
#                   (read in place; default ../shared/corpus)
#   OUT             write the samples (TSV) to this file (default: a new file under /tmp)
#   BIN_DIR         use the binaries in this directory instead of building
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-120}"
rate="${RATE:-20000}"
retention="${RETENTION_SECS:-900}"
warmup="${WARMUP_SECS:-$((retention + 600))}"
every="${SAMPLE_SECS:-60}"
duration=$((minutes * 60))
half_rate=$((rate / 2))
half_events=$((half_rate * duration))
corpus="${CORPUS:-../shared/corpus}"

source bench/common.sh
data="$(mktemp -d)"
rules="$data/rules"
mkdir -p "$rules"
ln -s "$PWD/bench/soak/rules.yml" "$rules/soak.yml"
if [ -d "$corpus/sigma/rules" ]; then
  ln -s "$(cd "$corpus/sigma/rules" && pwd)" "$rules/corpus"
  rule_note="bench/soak/rules.yml + $corpus/sigma/rules"
else
  rule_note="bench/soak/rules.yml"
fi
samples="${OUT:-$(mktemp --suffix=.tsv)}"
hec_port=$(port); syslog_port=$(port); api_port=$(port)
cat > "$data/soak.toml" <<TOML
$(api_config "$api_port")
$(sources_config "$hec_port" "$syslog_port")
[store]
retention_secs = $retention
[detection]
enabled = true
rules_dir = "$rules"
TOML

SECUREWATCH_HEC_TOKEN=bench RUST_LOG=warn "$bin/securewatch" run --config "$data/soak.toml" --data-dir "$data/store" &
server=$!
loads=()
cleanup() {
  for load in "${loads[@]}"; do kill "$load" 2>/dev/null || true; done
  kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"
}
trap cleanup EXIT
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$api_port/api/v1/health/ready" >/dev/null && break; sleep 0.1; done

metrics() { curl -sf "http://127.0.0.1:$api_port/metrics"; }
# sum NAME: the sum of every series of NAME in the metrics text on stdin.
sum() { awk -v name="$1" '$1 == name || index($1, name "{") == 1 { s += $NF } END { printf "%.0f", s }'; }

echo "== soak: $minutes min at $rate events/s ($half_rate HEC + $half_rate syslog TCP, event time = send time), rules $rule_note, store retention ${retention}s, sample every ${every}s, trends after ${warmup}s"
"$bin/securewatch-bench" hec --url "http://127.0.0.1:$hec_port" --api "http://127.0.0.1:$api_port" --token bench \
  --events "$half_events" --batch 100 --concurrency "${HEC_CONCURRENCY:-32}" --rate "$half_rate" --now-times --hosts 200 > "$data/hec.out" &
loads+=($!)
"$bin/securewatch-bench" syslog-tcp --addr "127.0.0.1:$syslog_port" --api "http://127.0.0.1:$api_port" \
  --events "$half_events" --connections 4 --rate "$half_rate" --now-times > "$data/syslog.out" &
loads+=($!)

ticks=$(getconf CLK_TCK)
start=$(date +%s.%N)
printf 't_s\trss_mib\tcpu_s\tfds\tstore_mib\tlag_s\tstored\talerts\n' > "$samples"
printf '%7s %9s %9s %6s %10s %7s %12s %8s\n' "t (s)" "RSS MiB" "CPU s" "fds" "store MiB" "lag s" "stored" "alerts"
tick=0
while [ "$tick" -lt "$duration" ]; do
  tick=$((tick + every))
  sleep "$(awk -v s="$start" -v t="$tick" -v now="$(date +%s.%N)" 'BEGIN { d = s + t - now; print (d > 0 ? d : 0) }')"
  kill -0 "$server" 2>/dev/null || { echo "== the server exited"; exit 1; }
  rss=$(awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$server/status")
  cpu=$(awk -v hz="$ticks" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$server/stat")
  fds=$(find "/proc/$server/fd" -mindepth 1 -maxdepth 1 | wc -l)
  store=$(du -sm "$data/store" | cut -f1)
  text=$(metrics)
  lag=$(awk '$1 == "securewatch_dataflow_epoch_lag_seconds" { v = $NF } END { printf "%.2f", v }' <<< "$text")
  stored=$(sum securewatch_store_written_total <<< "$text")
  alerts=$(sum securewatch_alerts_total <<< "$text")
  printf '%7d %9s %9s %6s %10s %7s %12s %8s\n' "$tick" "$rss" "$cpu" "$fds" "$store" "$lag" "$stored" "$alerts"
  printf '%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tick" "$rss" "$cpu" "$fds" "$store" "$lag" "$stored" "$alerts" >> "$samples"
done
for load in "${loads[@]}"; do wait "$load" || true; done
loads=()
cat "$data/hec.out" "$data/syslog.out"

# Range and least-squares slope per hour of each column after the warm-up; CPU as a rate.
awk -F'\t' -v warmup="$warmup" '
  NR == 1 { for (i = 2; i <= NF; i++) name[i] = $i; columns = NF; next }
  { last_t = $1; last_cpu = $3; last_stored = $7 }
  $1 >= warmup {
    if (n == 0) { first_t = $1; first_cpu = $3; first_stored = $7 }
    n++
    for (i = 2; i <= columns; i++) {
      sx[i] += $1; sy[i] += $i; sxx[i] += $1 * $1; sxy[i] += $1 * $i
      if (n == 1 || $i < lo[i]) lo[i] = $i
      if (n == 1 || $i > hi[i]) hi[i] = $i
    }
  }
  END {
    if (n < 2) { print "== too few samples after the warm-up for trends"; exit }
    printf "== after warm-up (t >= %d s, %d samples):\n", warmup, n
    for (i = 2; i <= columns; i++) {
      if (name[i] == "cpu_s" || name[i] == "stored" || name[i] == "alerts") continue
      slope = (n * sxy[i] - sx[i] * sy[i]) / (n * sxx[i] - sx[i] * sx[i]) * 3600
      printf "   %-10s %10.2f .. %-10.2f trend %+.2f per hour\n", name[i], lo[i], hi[i], slope
    }
    events = last_stored - first_stored
    if (events > 0) printf "   CPU: %.1f CPU-s per million events (%.0f events stored, %.0f events/s)\n", (last_cpu - first_cpu) / events * 1e6, events, events / (last_t - first_t)
  }' "$samples"
echo "== server peak RSS $(awk '/VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$server/status"); samples in $samples"
