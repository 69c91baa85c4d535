#!/usr/bin/env bash
# Runs every SecureWatch test: installs what the tests need when it is missing, builds the
# workspace, then runs unit tests and the end-to-end tests against the real binary.
# Usage: tests/run.sh [extra cargo test/nextest args]
set -euo pipefail
cd "$(dirname "$0")/.."

source tests/services/install.sh

say "tools"
need curl curl
need logger bsdutils
need gzip gzip
need hostname hostname
need openssl openssl # the JWT tests make RSA keys with it; the TLS tests make certificates and run s_client
# TLS syslog clients: rsyslog with its OpenSSL driver, installed; syslog-ng's Debian package
# conflicts with rsyslog's, so it is unpacked (with the libraries it needs installed) into a
# cache and run from there.
need rsyslogd rsyslog
[ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so ] || [ -n "$(find /usr/lib -name lmnsd_ossl.so 2>/dev/null)" ] \
  || { say "installing rsyslog-openssl (TLS driver)"; apt_install rsyslog-openssl; }
unpack_syslog_ng
export SECUREWATCH_TEST_SYSLOG_NG="$SYSLOG_NG_ROOT"
export SECUREWATCH_REQUIRE_TLS_CLIENTS=1
need docker-compose docker-compose
need kubectl kubernetes-client # renders the Kubernetes kustomizations (kubectl kustomize)
command -v cargo >/dev/null || { echo "error: cargo (Rust 1.95) is required" >&2; exit 1; }
# librdkafka is built with OpenSSL (Kafka over TLS, SASL SCRAM).
[ -e /usr/include/openssl/ssl.h ] || { say "installing libssl-dev (librdkafka's TLS)"; apt_install libssl-dev pkg-config; }
need python3 python3
# pip_need MODULES PACKAGES...: installs the PyPI PACKAGES unless python3 imports MODULES
# (comma-separated); the system Python needs --break-system-packages on Debian 12.
pip_need() {
  local modules=$1; shift
  python3 -c "import $modules" 2>/dev/null && return
  say "installing $* (PyPI)"
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  python3 -m pip install --quiet "$@" 2>/dev/null || python3 -m pip install --quiet --break-system-packages "$@"
}
# The GeoIP test writes a small MaxMind database with mmdb-writer.
pip_need mmdb_writer,netaddr mmdb-writer netaddr
export SECUREWATCH_REQUIRE_GEOIP_TEST=1
# The jobs' WebSocket is read by a real client: Python's websockets.
pip_need websockets websockets
export SECUREWATCH_REQUIRE_WEBSOCKETS_TEST=1
# A real HEC client library: the logging handler splunk-hec-handler (tests/e2e/hec_acks.rs).
pip_need splunk_hec_handler splunk-hec-handler==1.2.0
export SECUREWATCH_REQUIRE_PYTHON_HEC=1
# The web console is driven in a real headless Chromium: Debian's browser and driver, through
# Selenium (its driver is the Debian one; nothing is downloaded at test time).
need chromium chromium
need chromedriver chromium-driver
pip_need selenium selenium==4.51.0
export SECUREWATCH_REQUIRE_BROWSER_TEST=1
# The Kubernetes manifests are validated against the Kubernetes schemas with kubernetes-validate.
pip_need kubernetes_validate kubernetes-validate==1.37.0

# free_port: prints a free TCP port on the loopback interface.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Services the tests start, stopped at exit (also on failure or interrupt).
SERVICE_DIR="$(mktemp -d)"
SERVICE_PIDS=()
stop_services() {
  local pid
  for pid in "${SERVICE_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$SERVICE_DIR"
}
trap stop_services EXIT

# Redis for the Redis Streams bus tests: a throw-away server without persistence.
say "redis"
need redis-server redis-server
need sqlite3 sqlite3 # the fleet crash tests' checker reads the worker's store with it
need redis-cli redis-tools
REDIS_PORT="$(free_port)"
REDIS_TLS_PORT="$(free_port)"
mkdir -p "$SERVICE_DIR/redis"
# The same server also speaks TLS on a second port, requiring a client certificate there.
source tests/services/tls.sh
make_test_pki "$SERVICE_DIR/redis/tls"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
  --tls-port "$REDIS_TLS_PORT" --tls-cert-file "$SERVICE_DIR/redis/tls/server.pem" \
  --tls-key-file "$SERVICE_DIR/redis/tls/server.key" --tls-ca-cert-file "$SERVICE_DIR/redis/tls/ca.pem" \
  --tls-auth-clients yes \
  --dir "$SERVICE_DIR/redis" --logfile "$SERVICE_DIR/redis/redis.log" &
SERVICE_PIDS+=("$!")
for _ in $(seq 100); do
  [ "$(redis-cli -p "$REDIS_PORT" PING 2>/dev/null)" = PONG ] && break
  sleep 0.1
done
[ "$(redis-cli -p "$REDIS_PORT" PING 2>/dev/null)" = PONG ] \
  || { echo "error: redis-server did not start on port $REDIS_PORT" >&2; cat "$SERVICE_DIR/redis/redis.log" >&2; exit 1; }
export SECUREWATCH_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export SECUREWATCH_TEST_REDIS_TLS_URL="rediss://127.0.0.1:$REDIS_TLS_PORT"
export SECUREWATCH_TEST_REDIS_TLS_DIR="$SERVICE_DIR/redis/tls" # ca.pem, client.pem, client.key
export SECUREWATCH_REQUIRE_REDIS=1
echo "redis-server $(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p') on $SECUREWATCH_TEST_REDIS_URL"

# A Kafka-API broker for the Kafka bus tests: tansu from crates.io with memory storage, built
# once (a long compile) into a cache that later runs reuse.
say "kafka-api broker (tansu)"
TANSU_VERSION=0.6.0
TANSU_ROOT="$HOME/.cache/securewatch/tansu"
TANSU="$TANSU_ROOT/bin/tansu"
if ! { [ -x "$TANSU" ] && [ "$("$TANSU" --version 2>/dev/null)" = "tansu $TANSU_VERSION" ]; }; then
  echo "building tansu $TANSU_VERSION into $TANSU_ROOT (once; cached for later runs)"
  cargo install tansu --version "$TANSU_VERSION" --features dynostore --locked --quiet \
    --root "$TANSU_ROOT" --target-dir "$HOME/.cache/securewatch/tansu-build"
  rm -rf "$HOME/.cache/securewatch/tansu-build" # 1.4 GB of intermediate files; the binary stays
fi
KAFKA_PORT="$(free_port)"
CLUSTER_ID=securewatch-test "$TANSU" broker --silent \
  --listener-url "tcp://127.0.0.1:$KAFKA_PORT" --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
  --storage-engine memory://tansu/ >"$SERVICE_DIR/tansu.log" 2>&1 &
SERVICE_PIDS+=("$!")
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null && break
  sleep 0.1
done
export SECUREWATCH_TEST_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
export SECUREWATCH_TEST_TANSU="$TANSU" # the fleet crash tests start brokers of their own
if ! python3 -c 'import confluent_kafka' 2>/dev/null; then
  python3 -m pip install --quiet confluent-kafka 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages confluent-kafka
fi
timeout 120 python3 tests/kafka_smoke.py "$SECUREWATCH_TEST_KAFKA_BROKERS" \
  || { echo "error: tansu on $SECUREWATCH_TEST_KAFKA_BROKERS failed the smoke test" >&2; tail -20 "$SERVICE_DIR/tansu.log" >&2; exit 1; }
export SECUREWATCH_REQUIRE_KAFKA=1

say "docker-compose.yml (validated only: no Docker engine here)"
docker-compose -f docker-compose.yml config -q

say "build"
cargo build --workspace --all-targets --locked

export SECUREWATCH_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/securewatch"

say "Kubernetes manifests (rendered, schema-validated, configs checked by the binary)"
python3 deploy/kubernetes/check.py "$SECUREWATCH_BIN"
# Services the tests run against (tests/services/*.sh), stopped at exit.
source tests/services/postgres.sh
source tests/services/timescale.sh
trap 'timescale_stop; postgres_stop; stop_services' EXIT # keeps stopping Redis and tansu too
say "services"
POSTGRES_TLS=1 postgres_start
export SECUREWATCH_REQUIRE_POSTGRES=1
timescale_start && export SECUREWATCH_REQUIRE_TIMESCALE=1 || echo "TimescaleDB (PGlite) did not start: its test is skipped"

say "tests (unit + end-to-end)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
