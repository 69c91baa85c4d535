#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each with cargo-fuzz (libFuzzer, no
# sanitizer: it runs on the stable toolchain), and prints executions per target.
# Usage: tests/fuzz/run.sh [SECONDS] [TARGET...]     (default 10 s, every target)
#        FUZZ_RUNS=N tests/fuzz/run.sh [TARGET...]    (N inputs each from seed 1 and a fresh corpus:
#                                                      the same inputs on every machine; what CI runs)
#        FUZZ_RUNS=N FUZZ_KEEP_CORPUS=1 tests/fuzz/run.sh [TARGET...]
#                                                     (N inputs each, growing the kept corpus: long runs)
#        FUZZ_TIMEOUT=S ...                           (an input running S seconds is a hang; default 10.
#                                                      Long runs niced beside benchmarks use more, so
#                                                      waiting for a core is not taken for a hang)
# New inputs go to tests/fuzz/corpus/<target> (kept between runs, not committed), crashes to
# tests/fuzz/artifacts/<target>; the seeds are tests/fuzz/seeds/<target> plus, when it exists,
# the matching part of ../shared/corpus, read in place. Exits non-zero when a target crashed.
set -euo pipefail
cd "$(dirname "$0")/../.."

CARGO_FUZZ_VERSION=0.13.2
if [ -n "${FUZZ_RUNS:-}" ]; then
  budget=(-runs="$FUZZ_RUNS")
  [ -n "${FUZZ_KEEP_CORPUS:-}" ] || budget+=(-seed=1)
else
  seconds="${1:-10}"
  shift || true
  budget=(-max_total_time="$seconds")
fi
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION (crates.io)"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --quiet
fi
flags=(--fuzz-dir tests/fuzz -O --sanitizer none --debug-assertions)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list --fuzz-dir tests/fuzz)
cargo fuzz build "${flags[@]}"

shared="../shared/corpus"
# shared_seeds TARGET: the directories of ../shared/corpus that hold inputs for TARGET.
shared_seeds() {
  [ -d "$shared" ] || return 0
  case "$1" in
    syslog) echo "$shared/syslog" ;;
    wazuh) echo "$shared/wazuh/alerts" ;;
    sigma) echo "$shared/sigma/rules" "$shared/sigma/correlation" ;;
  esac
}

# max_len TARGET: the longest input libFuzzer makes for TARGET. The syslog target caps messages at
# 256 bytes, so 2 KiB holds several frames of every kind and runs ~4 times as many inputs.
max_len() {
  case "$1" in
    syslog) echo 2048 ;;
    *) echo 16384 ;;
  esac
}

failed=0
printf '%-12s %12s %10s %8s %8s  %s\n' target executions exec/s seconds slowest result
SECONDS=0
for target in "${targets[@]}"; do
  corpus="tests/fuzz/corpus/$target"
  fresh_corpus=""
  [ -z "${FUZZ_RUNS:-}" ] || [ -n "${FUZZ_KEEP_CORPUS:-}" ] || fresh_corpus=1
  [ -z "$fresh_corpus" ] || corpus="$(mktemp -d)"
  mkdir -p "$corpus" "tests/fuzz/artifacts/$target"
  log="$(mktemp)"
  # shellcheck disable=SC2046 # each shared seed directory is an argument of its own
  if cargo fuzz run "${flags[@]}" "$target" "$corpus" "tests/fuzz/seeds/$target" $(shared_seeds "$target") -- \
      "${budget[@]}" -max_len="$(max_len "$target")" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="tests/fuzz/artifacts/$target/" >"$log" 2>&1; then
    result=ok
  else
    result="CRASH (see tests/fuzz/artifacts/$target and the log below)"
    failed=1
  fi
  took=$SECONDS; SECONDS=0
  executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  slowest="$(sed -n 's/^stat::slowest_unit_time_sec: *//p' "$log" | tail -1)"
  printf '%-12s %12s %10s %8s %8s  %s\n' "$target" "${executions:-?}" "${rate:-?}" "$took" "${slowest:-?}" "$result"
  [ "$result" = ok ] || tail -40 "$log"
  rm -f "$log"
  [ -z "$fresh_corpus" ] || rm -rf "$corpus"
done
exit "$failed"
