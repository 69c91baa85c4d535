# Shared by bench/run.sh and bench/long_run.sh (sourced from the repository root): resolves the
# release binaries into $bin (BIN_DIR, else a fresh release build) and defines port().
if [ -n "${BIN_DIR:-}" ]; then
  bin="$(cd "$BIN_DIR" && pwd)"
else
  cargo build --release --locked -p securewatch -p securewatch-bench
  bin="$PWD/target/release"
fi
# port: prints a free loopback TCP port.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
