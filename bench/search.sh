#!/usr/bin/env bash
# The search language and jobs over EVENTS stored events (24 h, 200 hosts): starts a throw-away
# PostgreSQL 15 (as bench/pg.sh), runs `securewatch-bench search` (loads SQLite and PostgreSQL,
# times a selective take, a rollup summary and a full scan against the same SQL by hand through
# sqlite3 / psql), then serves the SQLite store with `securewatch run` and measures, with
# Python's websockets, the time from opening a job's WebSocket to its first progress message.
# Usage: bench/search.sh [EVENTS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-10000000}
ROUNDS=${2:-200}
if [ -z "${BIN_DIR:-}" ]; then
  cargo build --release --locked -p securewatch-bench -p securewatch
  BIN_DIR=target/release
fi
DATA=$(mktemp -d)
source tests/services/postgres.sh
cleanup() { [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null; postgres_stop; rm -rf "$DATA"; }
trap cleanup EXIT
POSTGRES_FSYNC=on POSTGRES_SHARED_BUFFERS=${POSTGRES_SHARED_BUFFERS:-1GB} postgres_start
"$BIN_DIR/securewatch-bench" search --url "$SECUREWATCH_TEST_POSTGRES_URL" --data-dir "$DATA" --events "$EVENTS" --rounds "$ROUNDS"

# Time to the first WebSocket message of a running full-scan job, five jobs.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$DATA" && SECUREWATCH_API__LISTEN=127.0.0.1:$PORT SECUREWATCH_SOURCES__HEC__LISTEN=127.0.0.1:0 \
  SECUREWATCH_SOURCES__SYSLOG__UDP_LISTEN=127.0.0.1:0 SECUREWATCH_SOURCES__SYSLOG__TCP_LISTEN=127.0.0.1:0 \
  exec "$OLDPWD/$BIN_DIR/securewatch" run --data-dir "$DATA" >"$DATA/run.log" 2>&1) &
SERVER=$!
for _ in $(seq 300); do [ -s "$DATA/api_token" ] && curl -fs "http://127.0.0.1:$PORT/api/v1/health/ready" >/dev/null && break; sleep 0.2; done
python3 - "$PORT" "$DATA/api_token" <<'PY'
import json, sys, time, urllib.request
from websockets.sync.client import connect
port, token = sys.argv[1], open(sys.argv[2]).read().strip()
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
firsts = []
for _ in range(5):
    body = json.dumps({"query": 'events | where message has "needle" | count', "from": "-25h"}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/jobs", body, headers)
    job = json.load(urllib.request.urlopen(request))
    opened = time.monotonic()
    with connect(f"ws://127.0.0.1:{port}/api/v1/jobs/{job['id']}/ws", additional_headers={"Authorization": "Bearer " + token}) as socket:
        first = json.loads(socket.recv())
        firsts.append((time.monotonic() - opened) * 1000)
        state = first["job"]["state"]
        for message in socket:
            last = json.loads(message)
    print(f"search websocket: first message after {firsts[-1]:.1f} ms (type {first['type']}, job {state}); end {last['job']['state']} after {last['job']['rows_matched']} rows")
print(f"search websocket: time to first progress message, max of 5: {max(firsts):.1f} ms")
PY
