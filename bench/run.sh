#!/usr/bin/env bash
# Ingest benchmark: starts a release `securewatch run` in a temporary data directory, drives it
# with the load generators, and prints events/s, latency percentiles and the server's peak RSS.
# Usage: bench/run.sh [EVENTS] [SCENARIOS]   (defaults: 1000000 "hec syslog")
# Extra server settings can be given as SECUREWATCH_* environment overrides; HEC_CONCURRENCY
# sets the number of concurrent HEC connections (default 32).
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-1000000}"
scenarios="${2:-hec syslog}"

cargo build --release --locked -p securewatch -p securewatch-bench
bin="$PWD/target/release"
data="$(mktemp -d)"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hec_port=$(port); syslog_port=$(port); api_port=$(port)
cat > "$data/bench.toml" <<TOML
[api]
listen = "127.0.0.1:$api_port"
[sources.hec]
listen = "127.0.0.1:$hec_port"
[sources.syslog]
udp_listen = "127.0.0.1:$syslog_port"
tcp_listen = "127.0.0.1:$syslog_port"
TOML

SECUREWATCH_HEC_TOKEN=bench RUST_LOG=warn "$bin/securewatch" run --config "$data/bench.toml" --data-dir "$data" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$api_port/api/v1/health" >/dev/null && break; sleep 0.1; done

for scenario in $scenarios; do
  case "$scenario" in
    hec)
      echo "== HEC: $events events, batches of 100"
      "$bin/securewatch-bench" hec --url "http://127.0.0.1:$hec_port" --api "http://127.0.0.1:$api_port" \
        --token bench --events "$events" --batch 100 --concurrency "${HEC_CONCURRENCY:-32}" ;;
    syslog)
      echo "== syslog TCP: $events messages"
      "$bin/securewatch-bench" syslog-tcp --addr "127.0.0.1:$syslog_port" --api "http://127.0.0.1:$api_port" \
        --events "$events" --connections 4 ;;
    *) echo "unknown scenario $scenario (hec, syslog)" >&2; exit 2 ;;
  esac
done
echo "== server peak RSS: $(grep VmHWM /proc/$server/status | awk '{print $2/1024 " MiB"}')"
echo "== store size: $(du -sh "$data" | cut -f1)"
