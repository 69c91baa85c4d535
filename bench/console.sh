#!/usr/bin/env bash
# Web console page load measured in a real headless Chromium (bench/console.py, Navigation
# Timing): starts `securewatch run` on loopback with 1000 HEC events of the last minutes, then
# ROUNDS cold loads, ROUNDS warm reloads and ROUNDS signed-in overview loads.
# Needs Debian's chromium and chromium-driver and Python selenium (tests/run.sh installs them).
# Usage: bench/console.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-20}
source bench/common.sh
data=$(mktemp -d)
trap stop_server EXIT
api=$(port)
hec=$(port)
syslog=$(port)
{ api_config "$api"; sources_config "$hec" "$syslog"; } >"$data/securewatch.toml"
SECUREWATCH_HEC_TOKEN=bench-console-token "$bin/securewatch" run --config "$data/securewatch.toml" --data-dir "$data" >"$data/run.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$api/api/v1/health/ready" >/dev/null && break; sleep 0.2; done
python3 - "$hec" <<'PY'
import json, sys, time, urllib.request
now = time.time()
body = "".join(json.dumps({"time": now - (1000 - n) * 0.2, "host": f"host-{n % 20}", "event": {"message": f"event {n}"}}) for n in range(1000))
request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/services/collector/event", body.encode(), {"Authorization": "Splunk bench-console-token"})
urllib.request.urlopen(request).read()
PY
python3 bench/console.py "http://127.0.0.1:$api" "$(cat "$data/api_token")" "$ROUNDS"
