# Shared by the bench scripts (sourced from the repository root): resolves the release binaries
# into $bin (BIN_DIR, else a fresh release build) and defines port(), api_config(),
# sources_config() and stop_server().
if [ -n "${BIN_DIR:-}" ]; then
  bin="$(cd "$BIN_DIR" && pwd)"
else
  cargo build --release --locked -p securewatch -p securewatch-bench
  bin="$PWD/target/release"
fi
# port: prints a free loopback TCP port.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# api_config PORT: the [api] tables of a benchmark server on loopback PORT. The benchmarks read
# /metrics and /api/v1/health without a credential (bench/auth.sh measures what access control
# costs).
api_config() {
  printf '[api]\nlisten = "127.0.0.1:%s"\n[api.auth]\nopen_health = true\nopen_metrics = true\n' "$1"
}
# sources_config HEC_PORT [SYSLOG_PORT]: HEC on loopback HEC_PORT, syslog UDP and TCP on
# SYSLOG_PORT (without it, the default syslog listeners).
sources_config() {
  printf '[sources.hec]\nlisten = "127.0.0.1:%s"\n' "$1"
  [ -z "${2:-}" ] || printf '[sources.syslog]\nudp_listen = "127.0.0.1:%s"\ntcp_listen = "127.0.0.1:%s"\n' "$2" "$2"
}
# stop_server: stops the benchmark server $server (when one runs) and removes its data
# directory $data; a script sets both when it starts a server and traps EXIT with this.
server=""
data=""
stop_server() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  if [ -n "$data" ]; then rm -rf "$data"; fi
  server=""; data=""
}
