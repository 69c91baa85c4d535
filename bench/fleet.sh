#!/usr/bin/env bash
# Fleet benchmark: HEC → `securewatch ingest` → bus → `securewatch worker` → store, on loopback.
# Starts a throw-away broker (tansu with memory storage for Kafka, redis-server for Redis), one
# ingest and one worker process (release builds), sends EVENTS over HEC with `securewatch-bench
# hec` (--url = the ingest's HEC, --api = the worker's /metrics, so it waits until the worker
# stored every event) and prints events/s end to end, the HEC acknowledgement latency (the
# records are on the bus then), the worker's epoch-to-durable latency quantiles and the end-to-end
# latency quantiles (each event's receipt at the ingest process until durable in the worker).
# Usage: bench/fleet.sh [EVENTS] [BUSES]   (defaults: 1000000 "kafka redis")
# Environment: RATE (events/s, paced; default flat out), WORKERS (timely workers of the worker
#   process, default 2), HEC_CONCURRENCY
#   (default 128), HEC_BATCH (default 100), PARTITIONS (Kafka, default 4), BIN_DIR (prebuilt
#   binaries), TANSU (default ~/.cache/securewatch/tansu/bin/tansu, as tests/run.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-1000000}"
buses="${2:-kafka redis}"
tansu="${TANSU:-$HOME/.cache/securewatch/tansu/bin/tansu}"

source bench/common.sh

pids=()
dirs=()
cleanup() {
  local index
  # Newest first: the ingest and the worker stop before the broker they talk to.
  for ((index = ${#pids[@]} - 1; index >= 0; index--)); do
    kill "${pids[index]}" 2>/dev/null || true; wait "${pids[index]}" 2>/dev/null || true
  done
  for dir in "${dirs[@]}"; do rm -rf "$dir"; done
  pids=(); dirs=()
}
trap cleanup EXIT

# quantiles NAME < metrics: p50 / p90 / p99 of a Prometheus histogram, as the upper bound of
# the bucket each falls in (`≤ x s`), and its sample count.
quantiles() {
  awk -v name="$1" '
    index($0, name "_bucket{") == 1 { match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); n++; bound[n] = le; count[n] = $NF }
    index($0, name "_count") == 1 { total = $NF }
    END {
      if (total == 0) { print "no samples"; exit }
      split("0.5 0.9 0.99", qs, " "); split("p50 p90 p99", names, " "); out = ""
      for (q = 1; q <= 3; q++) for (i = 1; i <= n; i++) if (count[i] >= qs[q] * total) { out = out names[q] " <= " bound[i] " s, "; break }
      print out total " samples"
    }'
}

wait_healthy() {
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$1/api/v1/health" >/dev/null && return; sleep 0.1; done
  echo "process on API port $1 did not become healthy" >&2; exit 1
}

for bus in $buses; do
  data="$(mktemp -d)"; dirs+=("$data")
  broker_port=$(port)
  case "$bus" in
    kafka)
      CLUSTER_ID=securewatch-bench "$tansu" broker --silent --listener-url "tcp://127.0.0.1:$broker_port" \
        --advertised-listener-url "tcp://127.0.0.1:$broker_port" --storage-engine memory://tansu/ >"$data/broker.log" 2>&1 &
      bus_toml="[bus]
kind = \"kafka\"
[bus.kafka]
brokers = \"127.0.0.1:$broker_port\"
create_partitions = ${PARTITIONS:-4}" ;;
    redis)
      redis-server --bind 127.0.0.1 --port "$broker_port" --save "" --appendonly no >"$data/broker.log" 2>&1 &
      bus_toml="[bus]
kind = \"redis\"
[bus.redis]
url = \"redis://127.0.0.1:$broker_port\"
max_len = 0" ;;
    *) echo "unknown bus $bus (kafka, redis)" >&2; exit 2 ;;
  esac
  pids+=("$!")
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$broker_port") 2>/dev/null && break; sleep 0.1; done
  hec_port=$(port); ingest_api=$(port); worker_api=$(port); unused=$(port)
  cat > "$data/ingest.toml" <<TOML
$(api_config "$ingest_api")
[sources.hec]
listen = "127.0.0.1:$hec_port"
[sources.syslog]
enabled = false
$bus_toml
TOML
  cat > "$data/worker.toml" <<TOML
$(api_config "$worker_api")
[sources.hec]
listen = "127.0.0.1:$unused"
[sources.syslog]
enabled = false
[dataflow]
workers = ${WORKERS:-2}
$bus_toml
TOML
  mkdir -p "$data/worker" "$data/ingest"
  RUST_LOG=warn "$bin/securewatch" worker --config "$data/worker.toml" --data-dir "$data/worker" &
  worker=$!; pids+=("$worker")
  SECUREWATCH_HEC_TOKEN=bench RUST_LOG=warn "$bin/securewatch" ingest --config "$data/ingest.toml" --data-dir "$data/ingest" &
  ingest=$!; pids+=("$ingest")
  wait_healthy "$worker_api"; wait_healthy "$ingest_api"
  echo "== $bus: $events events over HEC (batches of ${HEC_BATCH:-100}, ${HEC_CONCURRENCY:-128} connections, ${RATE:-flat out}${RATE:+ events/s}) → ingest → $bus → worker (${WORKERS:-2} timely workers)"
  "$bin/securewatch-bench" hec --url "http://127.0.0.1:$hec_port" --api "http://127.0.0.1:$worker_api" \
    --token bench --events "$events" --batch "${HEC_BATCH:-100}" --concurrency "${HEC_CONCURRENCY:-128}" --now-times \
    ${RATE:+--rate "$RATE"}
  curl -s "http://127.0.0.1:$worker_api/metrics" > "$data/metrics.txt"
  echo "== $bus: worker epoch → durable: $(quantiles securewatch_dataflow_epoch_durable_seconds < "$data/metrics.txt")"
  echo "== $bus: end to end, HEC receipt at ingest → durable in the worker's store: $(quantiles securewatch_event_durable_seconds < "$data/metrics.txt")"
  echo "== $bus: peak RSS ingest $(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$ingest/status"), worker $(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$worker/status")"
  cleanup
done
