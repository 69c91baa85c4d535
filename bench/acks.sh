#!/usr/bin/env bash
# HEC indexer acknowledgement on vs off, in one run: one release `securewatch run` with two HEC
# tokens (one with `ack = true`), one sequential client that sends EVENTS in batches of BATCH
# with each token in turn, ROUNDS times (off, on, off, on, ...). Prints events/s into the store
# and request latency p50/p99 per phase, and for acks on also send → `true` latency.
# Usage: [BIN_DIR=target/release] bench/acks.sh [EVENTS] [BATCH] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-100000}"
batch="${2:-100}"
rounds="${3:-2}"

source bench/common.sh

data="$(mktemp -d)"
server=""
cleanup() { [ -z "$server" ] || { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }; rm -rf "$data"; }
trap cleanup EXIT
hec_port=$(port); syslog_port=$(port); api_port=$(port)
plain=bench-plain-0123456789abcdef0123456789
acked=bench-acked-0123456789abcdef0123456789
cat > "$data/bench.toml" <<TOML
$(api_config "$api_port")
$(sources_config "$hec_port" "$syslog_port")
[[sources.hec.tokens]]
name = "plain"
token = "$plain"
[[sources.hec.tokens]]
name = "acked"
token = "$acked"
ack = true
TOML
RUST_LOG=warn "$bin/securewatch" run --config "$data/bench.toml" --data-dir "$data" &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$api_port/api/v1/health" >/dev/null && break; sleep 0.1; done
echo "== HEC acks off vs on: $events events per phase, batches of $batch, one sequential client, $rounds rounds"
"$bin/securewatch-bench" hec-acks --url "http://127.0.0.1:$hec_port" --api "http://127.0.0.1:$api_port" \
  --plain-token "$plain" --ack-token "$acked" --events "$events" --batch "$batch" --rounds "$rounds"
echo "== server peak RSS $(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$server/status")"
