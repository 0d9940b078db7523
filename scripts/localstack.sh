#!/usr/bin/env bash
# LocalStack (S3 and SQS) without Docker: its Python package in .venv-localstack (Python 3.13), on 127.0.0.1.
#
#   scripts/localstack.sh start        start it in the background on LOCALSTACK_PORT (default 4566), wait for health
#   scripts/localstack.sh stop         stop the one `start` started on LOCALSTACK_PORT (default 4566)
#   scripts/localstack.sh run CMD...   start one on a free port (or LOCALSTACK_PORT), run CMD with AWS_ENDPOINT_URL
#                                      and test credentials pointing at it, always stop it; exit with CMD's status
#   scripts/localstack.sh install      only make the venv (start and run do it first); scripts/stack.py uses it
#
# The venv (LOCALSTACK_VENV, default .venv-localstack) is made on first use with LOCALSTACK_PYTHON (default: a
# python3.13 on PATH or in pyenv) and needs PyPI once. If it cannot be made, every command fails: a test pass
# against LocalStack is never skipped silently.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${LOCALSTACK_VENV:-$ROOT/.venv-localstack}"
VERSION="2026.3.0"
# Pins under which this release runs on Python 3.13 (newer cbor2, pyOpenSSL and cryptography break its start).
PACKAGES=("localstack-core[runtime]==$VERSION" "cbor2<6" "pyopenssl<24.3" "cryptography<44" service_identity)
STAMP="$VENV/.installed-$VERSION"
HEALTH_WAIT=90  # seconds: the first start on a busy machine compiles and imports a lot
CREDENTIALS=(AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1)

die() {
  echo "localstack: error: $*" >&2
  exit 1
}

find_python() {
  if [ -n "${LOCALSTACK_PYTHON:-}" ]; then
    echo "$LOCALSTACK_PYTHON"
    return
  fi
  if python3.13 -c '' >/dev/null 2>&1; then  # (a pyenv shim exists even where its version is not selected)
    echo python3.13
    return
  fi
  local candidate
  for candidate in "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/3.13*/bin/python3.13; do
    [ -x "$candidate" ] && { echo "$candidate"; return; }
  done
  die "no Python 3.13 to make $VENV with: install one, or set LOCALSTACK_PYTHON=/path/to/python3.13"
}

install() {
  [ -f "$STAMP" ] && return 0
  local python
  python="$(find_python)"
  echo "localstack: installing localstack-core $VERSION into $VENV ($python)" >&2
  rm -rf "$VENV"
  "$python" -m venv "$VENV" || die "$python -m venv $VENV failed"
  "$VENV/bin/python" -m pip install --quiet "${PACKAGES[@]}" \
    || die "pip could not install ${PACKAGES[*]} into $VENV (LocalStack needs PyPI once)"
  touch "$STAMP"
}

state_dir() { echo "${TMPDIR:-/tmp}/midas-localstack-$1"; }

free_port() {
  "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

healthy() {  # S3 and SQS both up on port $1
  "$VENV/bin/python" - "$1" 2>/dev/null <<'EOF'
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/_localstack/health", timeout=2) as reply:
    services = json.load(reply)["services"]
sys.exit(0 if all(services.get(name) in ("available", "running") for name in ("s3", "sqs")) else 1)
EOF
}

port_taken() {
  "$VENV/bin/python" - "$1" 2>/dev/null <<'EOF'
import socket, sys
with socket.socket() as s:
    sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
EOF
}

# start PORT: LocalStack in the background, in a session of its own (no terminal signals), its pid in the state dir.
start() {
  local port=$1 dir pid
  dir="$(state_dir "$port")"
  port_taken "$port" && die "127.0.0.1:$port is already taken (a LocalStack running? stop it, or set LOCALSTACK_PORT)"
  rm -rf "$dir"
  mkdir -p "$dir/root"
  (
    cd "$dir"
    exec env SERVICES=s3,sqs,events GATEWAY_SERVER=hypercorn GATEWAY_LISTEN="127.0.0.1:$port" OVERRIDE_IN_DOCKER=0 \
      DNS_ADDRESS=0 FILESYSTEM_ROOT="$dir/root" setsid "$VENV/bin/python" -m localstack.runtime.main \
      >"$dir/log" 2>&1 </dev/null
  ) &
  pid=$!
  echo "$pid" >"$dir/pid"
  for _ in $(seq 1 $((HEALTH_WAIT * 4))); do
    if healthy "$port"; then
      echo "localstack: S3 and SQS on http://127.0.0.1:$port (pid $pid, log $dir/log)" >&2
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -20 "$dir/log" >&2
      die "LocalStack exited before answering on 127.0.0.1:$port"
    fi
    sleep 0.25
  done
  tail -20 "$dir/log" >&2
  stop "$port"
  die "LocalStack did not answer on 127.0.0.1:$port within $HEALTH_WAIT s"
}

# stop PORT: SIGTERM to the process `start` recorded (it may ignore it while its services shut down), then SIGKILL.
stop() {
  local port=$1 dir pid
  dir="$(state_dir "$port")"
  [ -f "$dir/pid" ] || { echo "localstack: none started on port $port" >&2; return 0; }
  pid="$(cat "$dir/pid")"
  if kill -TERM "$pid" 2>/dev/null; then
    for _ in $(seq 1 40); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}

usage() {
  sed -n '3,8p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

case "${1:-}" in
  start)
    install
    port="${LOCALSTACK_PORT:-4566}"
    start "$port"
    echo "export AWS_ENDPOINT_URL=http://127.0.0.1:$port ${CREDENTIALS[*]}"
    echo "# stop it: ${LOCALSTACK_PORT:+LOCALSTACK_PORT=$port }scripts/localstack.sh stop"
    ;;
  stop)
    stop "${LOCALSTACK_PORT:-4566}"
    ;;
  install)
    install
    ;;
  run)
    shift
    [ $# -gt 0 ] || usage
    install
    port="${LOCALSTACK_PORT:-$(free_port)}"
    trap 'stop "$port"' EXIT
    trap 'exit 130' INT TERM
    start "$port"
    status=0
    env AWS_ENDPOINT_URL="http://127.0.0.1:$port" "${CREDENTIALS[@]}" "$@" || status=$?
    exit "$status"
    ;;
  *)
    usage
    ;;
esac
