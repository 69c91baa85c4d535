#!/usr/bin/env bash
# Backtest throughput (issue 20): `securewatch rules backtest` over EVENTS stored events (default
# 1,000,000) with the detection benchmark's rule set, read from SQLite and from PostgreSQL,
# beside rsigma (0.23, `engine eval --logsource-routing`) over the same events as NDJSON; then
# the live pipeline's HEC ingest rate alone and while a backtest job of the same server runs.
#
# Rules: as bench/detection.sh (corpus/sigma detection rules and hayabusa correlations, plus
# bench/detection/correlations.yml), one directory of symlinks seen by both tools.
# Events: `securewatch-bench detection-events` (the corpus's SigmaHQ regression samples,
# replicated), stored by `securewatch-bench backtest-load` into a data directory's SQLite store
# and a throw-away PostgreSQL 15 (schema bench_backtest).
# Each backtest runs ROUNDS times (default 2) per store, with --data-dir (no server); its rate
# excludes start-up and rule compiling: EVENTS / (total - time of the same command over a range
# holding no events). rsigma's rate is measured the same way (as bench/detection.sh).
# Live ingest: `securewatch run` over the loaded data directory (detection on with the same
# rules), `securewatch-bench hec` sends INGEST_EVENTS (default 200,000) alone, then again while
# `securewatch rules backtest --server` runs over the stored range (a job of that server).
# Usage: bench/backtest.sh [EVENTS]   (CORPUS=../shared/corpus, WORK=dir, ROUNDS=2,
#        INGEST_EVENTS=200000, BIN_DIR=dir of built binaries: default a fresh release build,
#        RSIGMA=off to leave rsigma out, e.g. for a quick check of the script at a small size)
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
ROUNDS=${ROUNDS:-2}
INGEST_EVENTS=${INGEST_EVENTS:-200000}
CORPUS=$(cd "${CORPUS:-../shared/corpus}" && pwd)
RSIGMA_ROOT=${RSIGMA_ROOT:-$HOME/.cache/securewatch/rsigma}
source bench/common.sh
RSIGMA=${RSIGMA:-on}
if [ "$RSIGMA" = on ] && [ ! -x "$RSIGMA_ROOT/bin/rsigma" ]; then
  cargo install --locked rsigma --version =0.23 --root "$RSIGMA_ROOT"
fi
rsigma="$RSIGMA_ROOT/bin/rsigma"
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK/rules"
source tests/services/postgres.sh
cleanup() { stop_server; postgres_stop; rm -rf "$WORK"; }
trap cleanup EXIT
for dir in rules rules-emerging-threats rules-threat-hunting correlation/hayabusa-rules; do
  ln -sfn "$CORPUS/sigma/$dir" "$WORK/rules/$(basename "$dir")"
done
ln -sfn "$PWD/bench/detection" "$WORK/rules/bench"
POSTGRES_FSYNC=on POSTGRES_SHARED_BUFFERS=${POSTGRES_SHARED_BUFFERS:-1GB} postgres_start

"$bin/securewatch-bench" detection-events --corpus "$CORPUS" --out "$WORK/events.jsonl" --events "$EVENTS"
loaded=$("$bin/securewatch-bench" backtest-load --events "$WORK/events.jsonl" --data-dir "$WORK/data" --url "$SECUREWATCH_TEST_POSTGRES_URL")
echo "$loaded"
from=$(echo "$loaded" | sed -E 's/.* from ([^ ]+) to .*/\1/')
last=$(echo "$loaded" | sed -E 's/.* to ([^ ]+)$/\1/')
to=$(date -u -d "$last + 1 second" +%Y-%m-%dT%H:%M:%S.%3NZ)
printf '[sinks.postgres]\nurl = "%s"\nschema = "bench_backtest"\n' "$SECUREWATCH_TEST_POSTGRES_URL" > "$WORK/postgres.toml"
: > "$WORK/sqlite.toml"

# backtest STORE FROM TO: seconds of one `rules backtest --data-dir` run (its table to
# $WORK/backtest.out, its summary line to $WORK/backtest.err).
backtest() {
  local start end
  start=$(date +%s.%N)
  "$bin/securewatch" rules backtest "$WORK/rules" --from "$2" --to "$3" --data-dir "$WORK/data" \
    --config "$WORK/$1.toml" --quiet > "$WORK/backtest.out" 2> "$WORK/backtest.err"
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
summary() { tail -n 1 "$WORK/backtest.err"; }
rsigma_run() {
  local file=$1 start end
  start=$(date +%s.%N)
  "$rsigma" engine eval -r "$WORK/rules" -e "@$file" --logsource-routing --timestamp-field SystemTime > "$WORK/rsigma.out" 2> "$WORK/rsigma.err"
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
: > "$WORK/empty.jsonl"
[ "$RSIGMA" = off ] || echo "rsigma: $("$rsigma" --version)"
for round in $(seq 1 "$ROUNDS"); do
  for store in sqlite postgres; do
    load=$(backtest "$store" 2000-01-01T00:00:00Z 2000-01-01T00:00:01Z)
    total=$(backtest "$store" "$from" "$to")
    rate=$(echo "$EVENTS / ($total - $load)" | bc)
    echo "round $round, backtest from $store: total ${total} s, start-up and rules ${load} s, ${rate} events/s; $(summary)"
  done
  [ "$RSIGMA" = off ] && continue
  load=$(rsigma_run "$WORK/empty.jsonl")
  total=$(rsigma_run "$WORK/events.jsonl")
  rate=$(echo "$EVENTS / ($total - $load)" | bc)
  echo "round $round, rsigma: total ${total} s, rule loading ${load} s, ${rate} events/s, $(wc -l < "$WORK/rsigma.out") output lines"
done

# Live HEC ingest alone, then during a backtest job of the same server.
hec_port=$(port); syslog_port=$(port); api_port=$(port)
cat > "$WORK/live.toml" <<TOML
$(api_config "$api_port")
$(sources_config "$hec_port" "$syslog_port")
[detection]
enabled = true
rules_dir = "$WORK/rules"
poll_interval_ms = 0
TOML
SECUREWATCH_HEC_TOKEN=bench RUST_LOG=warn "$bin/securewatch" run --config "$WORK/live.toml" --data-dir "$WORK/data" > "$WORK/run.log" 2>&1 &
server=$!
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$api_port/api/v1/health/ready" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$api_port/api/v1/health/ready" >/dev/null || { echo "the server did not become ready:" >&2; cat "$WORK/run.log" >&2; exit 1; }
hec() {
  "$bin/securewatch-bench" hec --url "http://127.0.0.1:$hec_port" --api "http://127.0.0.1:$api_port" \
    --token bench --events "$INGEST_EVENTS" --batch 100 --concurrency 8 --now-times
}
echo "live ingest alone: $(hec)"
start=$(date +%s.%N)
"$bin/securewatch" rules backtest . --rules-on-server --from "$from" --to "$to" --server "http://127.0.0.1:$api_port" \
  --token "$(cat "$WORK/data/api_token")" --quiet > "$WORK/backtest.out" 2> "$WORK/backtest.err" &
job=$!
echo "live ingest during a backtest: $(hec)"
backtest_running=$(kill -0 "$job" 2>/dev/null && echo yes || echo no)
wait "$job"
end=$(date +%s.%N)
echo "backtest job (the server's, from sqlite) still running when the ingest ended: $backtest_running; $(echo "$end - $start" | bc) s; $(summary)"
