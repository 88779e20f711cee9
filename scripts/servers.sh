# Sourced by scripts/test, scripts/bench and .ci/run: installs and starts the servers tests need.
VENV=${VENV:-$PWD/.venv}
SECANTUS_VERSION=0.7.0b3
# The outside OpenAPI fuzzer scripts/contract runs (CI runs it too).
SCHEMATHESIS_VERSION=4.32.5
# An independent TOTP implementation the MFA tests take codes from.
PYOTP_VERSION=2.12.1

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_port() {  # host port seconds
  for _ in $(seq 1 $(( $3 * 10 ))); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server on $1:$2 did not start" >&2; return 1
}

servers_install() {
  if [ ! -x "$VENV/bin/secantusd-py" ] || [ ! -x "$VENV/bin/moto_server" ] || [ ! -x "$VENV/bin/st" ] \
    || ! "$VENV/bin/python" -c 'import pyotp' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "secantusdb==$SECANTUS_VERSION" 'moto[server]' \
      "schemathesis==$SCHEMATHESIS_VERSION" "pyotp==$PYOTP_VERSION"
  fi
  # A local OpenID Connect provider for the federation tests (tests/src/oidc.rs).
  [ -d tests/oidc-provider/node_modules/oauth2-mock-server ] \
    || npm ci --prefix tests/oidc-provider --no-audit --no-fund --loglevel=error
  # cargo lambda watch is the Lambda service the hook tests invoke (tests/src/lambda_watch.rs).
  [ -x "$VENV/bin/cargo-lambda" ] || "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "cargo-lambda==${CARGO_LAMBDA_VERSION:-1.9.2}" "ziglang==${ZIGLANG_VERSION:-0.17.1}"
}

servers_start() {
  mkdir -p target
  local mport aport
  mport=$(free_port); aport=$(free_port)
  "$VENV/bin/secantusd-py" --host 127.0.0.1 --port "$mport" --storage-path :memory: >target/secantusd.log 2>&1 &
  SERVER_PIDS="$!"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$aport" >target/moto.log 2>&1 &
  SERVER_PIDS="$SERVER_PIDS $!"
  trap 'kill $SERVER_PIDS 2>/dev/null || true' EXIT
  wait_port 127.0.0.1 "$mport" 30
  wait_port 127.0.0.1 "$aport" 30
  export TEST_MONGO_URI="mongodb://127.0.0.1:$mport/?directConnection=true&retryWrites=false"
  export TEST_AWS_ENDPOINT="http://127.0.0.1:$aport"
  # Dummy credentials and region for the AWS SDK talking to the emulator; no real AWS is reached.
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export AWS_EC2_METADATA_DISABLED=true
  export SECANTUSD_BIN="$VENV/bin/secantusd-py"
  export MOTO_SERVER_BIN="$VENV/bin/moto_server"
  export TEST_PYTHON="$VENV/bin/python"
  echo "test servers: MongoDB-protocol $TEST_MONGO_URI, AWS emulator $TEST_AWS_ENDPOINT"
}
