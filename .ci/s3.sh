# A throwaway S3-compatible server for the ground's tests, sourced by .ci/run (and usable by hand:
# `source .ci/s3.sh && start_s3`, then `stop_s3`).
#
# start_s3: runs moto's server (`moto_server`, PyPI `moto[server]`, installed by .ci/run) on
# 127.0.0.1 on a port free at start, waits until it answers, and makes the bucket the tests use.
# moto keeps everything in memory and checks no credentials: a store for one run, gone at its end.
# Exports ORBITDOCK_TEST_S3_URL (its endpoint) and ORBITDOCK_TEST_S3_BUCKET; the tests give each
# test ground a prefix of its own (crates/ground/tests/common/s3.rs).
#
# stop_s3: stops the server and deletes its log.

start_s3() {
  command -v moto_server >/dev/null || { echo "moto's server is not installed (pip install 'moto[server]')" >&2; return 1; }
  S3_DIR="$(mktemp -d /tmp/orbitdock-s3.XXXXXX)"
  local port
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  moto_server -H 127.0.0.1 -p "$port" >"$S3_DIR/server.log" 2>&1 &
  S3_PID=$!
  local url="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$url/moto-api/" 2>/dev/null && break
    kill -0 "$S3_PID" 2>/dev/null || { cat "$S3_DIR/server.log" >&2; return 1; }
    sleep 0.2
  done
  local bucket=orbitdock-test
  curl -fsS -o /dev/null -X PUT "$url/$bucket" \
    || { echo "the S3 server at $url did not make the bucket $bucket" >&2; cat "$S3_DIR/server.log" >&2; return 1; }
  export ORBITDOCK_TEST_S3_URL="$url"
  export ORBITDOCK_TEST_S3_BUCKET="$bucket"
}

stop_s3() {
  if [[ -n "${S3_PID:-}" ]]; then
    kill "$S3_PID" 2>/dev/null || true
    wait "$S3_PID" 2>/dev/null || true
    S3_PID=
  fi
  [[ -n "${S3_DIR:-}" && -d "$S3_DIR" ]] && rm -rf "$S3_DIR"
  S3_DIR=
}
