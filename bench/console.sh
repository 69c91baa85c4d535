#!/usr/bin/env bash
# Web console in a real headless Chromium (bench/console.py): page load from Navigation Timing,
# and with EVENTS the first search results from the Search page. Starts `securewatch run` on
# loopback, then ROUNDS cold loads, ROUNDS warm reloads and ROUNDS signed-in overview loads.
# Without EVENTS (or 0) the server holds 1000 HEC events of the last minutes. With EVENTS,
# `securewatch-bench search --load-only` first writes EVENTS events over the last 24 h across
# 200 hosts straight into the data directory's SQLite store (with their rollups), and the
# browser then runs three searches over the last 24 hours ROUNDS times each (typed into the
# editor, Run clicked): time from submit to the first result row and to the job's done state.
# Needs Debian's chromium and chromium-driver and Python selenium (tests/run.sh installs them).
# Usage: bench/console.sh [ROUNDS] [EVENTS]   (e.g. bench/console.sh 20 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-20}
EVENTS=${2:-0}
source bench/common.sh
data=$(mktemp -d)
trap stop_server EXIT
api=$(port)
hec=$(port)
syslog=$(port)
{ api_config "$api"; sources_config "$hec" "$syslog"; } >"$data/securewatch.toml"
if [ "$EVENTS" -gt 0 ]; then
  "$bin/securewatch-bench" search --data-dir "$data" --events "$EVENTS" --load-only
fi
SECUREWATCH_HEC_TOKEN=bench-console-token "$bin/securewatch" run --config "$data/securewatch.toml" --data-dir "$data" >"$data/run.log" 2>&1 &
server=$!
for _ in $(seq 300); do [ -s "$data/api_token" ] && curl -fs "http://127.0.0.1:$api/api/v1/health/ready" >/dev/null && break; sleep 0.2; done
[ "$EVENTS" -gt 0 ] || python3 - "$hec" <<'PY'
import json, sys, time, urllib.request
now = time.time()
body = "".join(json.dumps({"time": now - (1000 - n) * 0.2, "host": f"host-{n % 20}", "event": {"message": f"event {n}"}}) for n in range(1000))
request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/services/collector/event", body.encode(), {"Authorization": "Splunk bench-console-token"})
urllib.request.urlopen(request).read()
PY
python3 bench/console.py "http://127.0.0.1:$api" "$(cat "$data/api_token")" "$ROUNDS" "$EVENTS"
