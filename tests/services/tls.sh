# Sourced by tests/run.sh and tests/services/postgres.sh: throw-away certificates for the test
# services, made with openssl at test time (never committed).
# make_test_pki DIR: DIR/ca.pem (+ ca.key), DIR/server.pem + server.key for 127.0.0.1 and
# localhost, DIR/client.pem + client.key (CN securewatch-test-client), all EC P-256, 2 days.
make_test_pki() {
  local dir=$1 name
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=securewatch test services CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null || return 1
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$dir/server.ext"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$dir/client.ext"
  for name in server client; do
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=securewatch-test-$name" \
      -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null || return 1
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 2 \
      -extfile "$dir/$name.ext" -out "$dir/$name.pem" 2>/dev/null || return 1
  done
  chmod 600 "$dir"/*.key
}
