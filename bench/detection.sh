#!/usr/bin/env bash
# Detection throughput (issue 4): SecureWatch's detection stage in-process (rules + correlations,
# 1 and 2 workers) beside the rsigma CLI (0.23, --logsource-routing) on the same events and rules.
#
# Rules: the detection rules of corpus/sigma and its hayabusa correlations (read in place; the
# specification's fragments under correlation/sigma-specification reference rules that do not
# exist, which stops rsigma from loading anything) plus bench/detection/correlations.yml (5 base
# rules, 10 correlations), seen by both tools through one directory of symlinks.
# Events: `securewatch-bench detection-events` (the corpus's SigmaHQ regression samples,
# flattened, replicated with varied hosts, users and times), EVENTS of them (default 1,000,000).
# Each side runs ROUNDS times (default 2), alternated, first with the detection rules alone
# (single-event matching: rules/, no correlations), then with all rules and correlations.
# rsigma's rate excludes its rule loading: (total time - time of the same command on an empty
# event file).
# Usage: bench/detection.sh [EVENTS]   (CORPUS=../shared/corpus, WORK=dir for the event file)
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
ROUNDS=${ROUNDS:-2}
CORPUS=$(cd "${CORPUS:-../shared/corpus}" && pwd)
RSIGMA_ROOT=${RSIGMA_ROOT:-$HOME/.cache/securewatch/rsigma}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked -p securewatch-bench
bench="$target/release/securewatch-bench"
if [ ! -x "$RSIGMA_ROOT/bin/rsigma" ]; then
  cargo install --locked rsigma --version =0.23 --root "$RSIGMA_ROOT"
fi
rsigma="$RSIGMA_ROOT/bin/rsigma"
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK/rules" "$WORK/rules-only"
trap 'rm -rf "$WORK"' EXIT
for dir in rules rules-emerging-threats rules-threat-hunting correlation/hayabusa-rules; do
  ln -sfn "$CORPUS/sigma/$dir" "$WORK/rules/$(basename "$dir")"
done
ln -sfn "$PWD/bench/detection" "$WORK/rules/bench"
for dir in rules rules-emerging-threats rules-threat-hunting; do
  ln -sfn "$CORPUS/sigma/$dir" "$WORK/rules-only/$dir"
done
"$bench" detection-events --corpus "$CORPUS" --out "$WORK/events.jsonl" --events "$EVENTS"
: > "$WORK/empty.jsonl"
echo "rsigma: $("$rsigma" --version)"
rsigma_run() {
  local rules=$1 file=$2 start end
  start=$(date +%s.%N)
  "$rsigma" engine eval -r "$rules" -e "@$file" --logsource-routing --timestamp-field SystemTime > "$WORK/rsigma.out" 2> "$WORK/rsigma.err"
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
for round in $(seq 1 "$ROUNDS"); do
  for set in rules-only rules; do
    for workers in 1 2; do
      echo "round $round, $set: $("$bench" detection --rules "$WORK/$set" --events "$WORK/events.jsonl" --workers "$workers")"
    done
    load=$(rsigma_run "$WORK/$set" "$WORK/empty.jsonl")
    total=$(rsigma_run "$WORK/$set" "$WORK/events.jsonl")
    lines=$(wc -l < "$WORK/rsigma.out")
    stats=$(grep -h Processed "$WORK/rsigma.err" || true)
    rate=$(echo "$EVENTS / ($total - $load)" | bc)
    echo "round $round, $set: rsigma: $EVENTS events: total ${total} s, rule loading ${load} s, ${rate} events/s, $lines output lines ($stats)"
  done
done
