#!/usr/bin/env bash
# Dashboard latency with access control on and off, in one run: two release `securewatch run`
# processes (`[api.auth] mode = "on"` with the generated admin token, and `mode = "off"`) get the
# same HEC events, then one client times /api/v1/dashboards/timeseries and /top on both,
# alternating request by request over keep-alive connections, so both see the same machine.
# Usage: [BIN_DIR=target/release] bench/auth.sh [EVENTS] [REQUESTS per endpoint and mode]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-50000}
requests=${2:-3000}
if [ -n "${BIN_DIR:-}" ]; then
  bin="$(cd "$BIN_DIR" && pwd)"
else
  cargo build --release --locked -p securewatch
  bin="$PWD/target/release"
fi
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

declare -A api hec
for mode in on off; do
  api[$mode]=$(port); hec[$mode]=$(port); syslog=$(port)
  cat > "$work/$mode.toml" <<TOML
[api]
listen = "127.0.0.1:${api[$mode]}"
[api.auth]
mode = "$mode"
[sources.hec]
listen = "127.0.0.1:${hec[$mode]}"
[sources.syslog]
udp_listen = "127.0.0.1:$syslog"
tcp_listen = "127.0.0.1:$syslog"
TOML
  SECUREWATCH_HEC_TOKEN=bench-token-bench-token-bench-token RUST_LOG=warn \
    "$bin/securewatch" run --config "$work/$mode.toml" --data-dir "$work/data-$mode" > "$work/$mode.log" 2>&1 &
  pids+=($!)
done
for mode in on off; do
  until curl -sf "http://127.0.0.1:${api[$mode]}/api/v1/health/ready" > /dev/null; do sleep 0.2; done
done
token=$(cat "$work/data-on/api_token")

# The same events for both: 50 hosts, 4 severities, spread over the last 50 minutes.
python3 - "$events" > "$work/events.json" <<'PY'
import json, sys, time
now = time.time()
count = int(sys.argv[1])
for n in range(count):
    print(json.dumps({"time": now - 3000 + 3000 * n / count, "host": f"web-{n % 50:02d}",
                      "event": {"message": f"login failed {n}", "severity": ["info", "warning", "error", "critical"][n % 4]}}))
PY
split -l 5000 "$work/events.json" "$work/batch-"
for mode in on off; do
  for batch in "$work"/batch-*; do
    curl -sf "http://127.0.0.1:${hec[$mode]}/services/collector/event" \
      -H "Authorization: Splunk bench-token-bench-token-bench-token" --data-binary "@$batch" > /dev/null
  done
done

python3 - "${api[on]}" "${api[off]}" "$token" "$events" "$requests" <<'PY'
import http.client, json, sys, time
on_port, off_port, token, events, requests = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
clients = {"on": (http.client.HTTPConnection("127.0.0.1", int(on_port)), {"Authorization": f"Bearer {token}"}),
           "off": (http.client.HTTPConnection("127.0.0.1", int(off_port)), {})}
def get(mode, path):
    connection, headers = clients[mode]
    started = time.perf_counter()
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    assert response.status == 200, (mode, path, response.status, body[:200])
    return elapsed, body
# Wait until both count every event in their rollups.
deadline = time.time() + 120
for mode in ("on", "off"):
    while True:
        _, body = get(mode, "/api/v1/dashboards/top?field=host&n=100")
        if sum(entry["count"] for entry in json.loads(body)["entries"]) >= events or time.time() > deadline:
            break
        time.sleep(0.5)
paths = {"timeseries": "/api/v1/dashboards/timeseries?by=host&bucket=1m", "top": "/api/v1/dashboards/top?field=host&n=10"}
def quantile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]
print(f"{'endpoint':<11} {'auth':<4} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
for name, path in paths.items():
    timings = {"on": [], "off": []}
    for n in range(200):  # warm-up
        for mode in ("on", "off"):
            get(mode, path)
    for n in range(requests):
        order = ("on", "off") if n % 2 == 0 else ("off", "on")
        for mode in order:
            timings[mode].append(get(mode, path)[0] * 1000)
    for mode in ("on", "off"):
        values = timings[mode]
        print(f"{name:<11} {mode:<4} {quantile(values, 0.5):7.2f} {quantile(values, 0.99):7.2f} {max(values):7.2f}")
    on99, off99 = quantile(timings["on"], 0.99), quantile(timings["off"], 0.99)
    print(f"{name:<11} p99 with auth / without: {on99 / off99:.3f}")
PY
