#!/usr/bin/env bash
# Syslog anchors, side by side: the same loggen load (syslog-ng's load generator) over one TCP
# connection (unpaced: loggen at its fastest) into rsyslog, syslog-ng and `securewatch run`, in turn. rsyslog and syslog-ng write
# JSON lines to a file; SecureWatch writes its embedded store on its durable defaults (journal on,
# SQLite synchronous = full, rollups). Per receiver and load it prints messages/s (loggen's start
# to the last message written), the receiver's CPU seconds per million messages (utime + stime
# of all its threads), its peak RSS (VmHWM), and how many messages arrived.
# Usage: bench/syslog-anchors.sh [MESSAGES] [LOADS] [RECEIVERS]
#   MESSAGES   per run (default 1000000)
#   LOADS      default "rfc5424 rfc3164": rfc5424 = loggen -P, SIZE-byte messages, octet
#              counted; rfc3164 = the real lines of LINES_FILE as they are, newline framed, looped
#   RECEIVERS  default "rsyslog syslog-ng securewatch"
# Environment: SIZE (300), LINES_FILE (default: loghub's Linux_2k.log in ../shared/corpus, read
# in place; without it the rfc3164 load is skipped), BIN_DIR (prebuilt securewatch binaries).
# Installs rsyslog and unpacks syslog-ng-core (with loggen) when missing, as tests/run.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
messages="${1:-1000000}"
loads="${2:-rfc5424 rfc3164}"
receivers="${3:-rsyslog syslog-ng securewatch}"
size="${SIZE:-300}"
lines_file="${LINES_FILE:-../shared/corpus/syslog/loghub/Linux/Linux_2k.log}"

source tests/services/install.sh
need rsyslogd rsyslog
unpack_syslog_ng
source bench/common.sh
syslog_ng_env=(env "LD_LIBRARY_PATH=$SYSLOG_NG_ROOT/usr/lib/syslog-ng" "SYSLOGNG_PREFIX=$SYSLOG_NG_ROOT/usr")

work="$(mktemp -d)"
receiver_pid=""
stop_receiver() {
  if [ -n "$receiver_pid" ]; then kill "$receiver_pid" 2>/dev/null || true; wait "$receiver_pid" 2>/dev/null || true; fi
  receiver_pid=""
}
trap 'stop_receiver; rm -rf "$work"' EXIT

# cpu_seconds PID: user + system CPU seconds of PID's threads so far.
cpu_seconds() { awk -v tck="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / tck}' "/proc/$1/stat"; }
now() { date +%s.%N; }

# start_rsyslog LOAD PORT OUT: rsyslogd in the foreground, imtcp on PORT, JSON lines into OUT.
start_rsyslog() {
  cat > "$work/rsyslog.conf" <<CONF
global(workDirectory="$work/rsyslog")
module(load="imtcp")
template(name="json" type="list" option.jsonf="on") {
  property(outname="time" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="host" name="hostname" format="jsonf")
  property(outname="program" name="programname" format="jsonf")
  property(outname="severity" name="syslogseverity-text" format="jsonf")
  property(outname="message" name="msg" format="jsonf")
}
ruleset(name="bench") { action(type="omfile" file="$3" template="json") }
input(type="imtcp" address="127.0.0.1" port="$2" ruleset="bench")
CONF
  mkdir -p "$work/rsyslog"
  rsyslogd -n -f "$work/rsyslog.conf" -i "$work/rsyslog.pid" 2> "$work/receiver.err" &
  receiver_pid=$!
}

# start_syslog_ng LOAD PORT OUT: syslog-ng in the foreground with flow control (nothing dropped),
# the syslog() source for RFC 5424 with octet counting, network() for newline-framed RFC 3164.
start_syslog_ng() {
  local source_driver="network"
  [ "$1" = rfc5424 ] && source_driver="syslog"
  cat > "$work/syslog-ng.conf" <<CONF
@version: 3.38
options { keep-hostname(yes); };
source s_in { $source_driver(ip("127.0.0.1") port($2) transport("tcp")); };
destination d_file { file("$3" template("\$(format-json time=\${ISODATE} host=\${HOST} program=\${PROGRAM} severity=\${LEVEL} message=\${MESSAGE})\n")); };
log { source(s_in); destination(d_file); flags(flow-control); };
CONF
  "${syslog_ng_env[@]}" "$SYSLOG_NG_ROOT/usr/sbin/syslog-ng" -F --no-caps \
    --module-path="$SYSLOG_NG_ROOT/usr/lib/syslog-ng/3.38" --cfgfile="$work/syslog-ng.conf" \
    --persist-file="$work/syslog-ng.persist" --pidfile="$work/syslog-ng.pid" --control="$work/syslog-ng.ctl" \
    --stderr 2> "$work/receiver.err" &
  receiver_pid=$!
}

# start_securewatch LOAD PORT: `securewatch run` on its defaults, syslog TCP on PORT only.
start_securewatch() {
  api_port=$(port)
  mkdir -p "$work/securewatch"
  { api_config "$api_port"; printf '[sources.syslog]\nudp_listen = "off"\ntcp_listen = "127.0.0.1:%s"\n' "$2"; } > "$work/securewatch.toml"
  SECUREWATCH_HEC_TOKEN=bench RUST_LOG=warn "$bin/securewatch" run --config "$work/securewatch.toml" --data-dir "$work/securewatch" 2> "$work/receiver.err" &
  receiver_pid=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$api_port/api/v1/health/ready" >/dev/null && return; sleep 0.1; done
  echo "securewatch did not become ready" >&2; cat "$work/receiver.err" >&2; exit 1
}

# wait_port PORT: until something listens on PORT.
wait_port() {
  for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done
  echo "nothing listens on $1" >&2; cat "$work/receiver.err" >&2; exit 1
}

# written RECEIVER OUT: messages the receiver has written so far.
written() {
  if [ "$1" = securewatch ]; then
    curl -sf "http://127.0.0.1:$api_port/metrics" | awk '$1 == "securewatch_store_written_total" || index($1, "securewatch_store_written_total{") == 1 { s += $NF } END { printf "%.0f", s }'
  else
    wc -l < "$2"
  fi
}

# loggen_args LOAD: loggen's options for the load.
loggen_args() {
  case "$1" in
    rfc5424) echo "--syslog-proto --size $size" ;;
    rfc3164) echo "--read-file $work/lines.log --loop-reading --dont-parse" ;;
  esac
}

# loghub's files end without a newline, which would join each loop's last line to the next
# loop's first: the load reads a copy that ends with one.
[ ! -f "$lines_file" ] || sed -e '$a\' "$lines_file" > "$work/lines.log"

printf '%-12s %-8s %12s %12s %14s %10s  %s\n' receiver load messages msgs/s "CPU-s/million" "peak RSS" arrived
for load in $loads; do
  if [ "$load" = rfc3164 ] && [ ! -f "$lines_file" ]; then
    echo "== skipped rfc3164: no $lines_file (set LINES_FILE)"; continue
  fi
  for receiver in $receivers; do
    listen=$(port)
    out="$work/$receiver-$load.json"
    : > "$out"
    case "$receiver" in
      rsyslog) start_rsyslog "$load" "$listen" "$out" ;;
      syslog-ng) start_syslog_ng "$load" "$listen" "$out" ;;
      securewatch) start_securewatch "$load" "$listen" ;;
    esac
    wait_port "$listen"
    cpu_before=$(cpu_seconds "$receiver_pid")
    started=$(now)
    # shellcheck disable=SC2046 # the load's options are words of their own
    "${syslog_ng_env[@]}" "$SYSLOG_NG_ROOT/usr/bin/loggen" --inet --stream --quiet --rate 100000000 --interval 3600 $(loggen_args "$load") \
      --number "$messages" 127.0.0.1 "$listen" > "$work/loggen.out" 2>&1 || { cat "$work/loggen.out" >&2; exit 1; }
    # Done when every message is written, or when nothing more arrived for 10 s (a loss).
    count=0; last_count=-1; last_change=$(now); finished=$last_change
    while :; do
      count=$(written "$receiver" "$out")
      if [ "$count" != "$last_count" ]; then last_count=$count; last_change=$(now); finished=$last_change; fi
      [ "$count" -ge "$messages" ] && break
      awk -v a="$(now)" -v b="$last_change" 'BEGIN { exit !(a - b > 10) }' && break
      sleep 0.1
    done
    cpu_after=$(cpu_seconds "$receiver_pid")
    rss=$(awk '/VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$receiver_pid/status")
    awk -v r="$receiver" -v l="$load" -v n="$messages" -v s="$started" -v f="$finished" -v c0="$cpu_before" -v c1="$cpu_after" \
      -v rss="$rss" -v got="$count" 'BEGIN { printf "%-12s %-8s %12d %12.0f %14.1f %10s  %d\n", r, l, n, got / (f - s), (c1 - c0) * 1e6 / got, rss, got }'
    stop_receiver
    rm -rf "$out" "$work/securewatch"
  done
done
