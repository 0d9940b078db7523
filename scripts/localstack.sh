#!/usr/bin/env bash
# LocalStack (S3 + SQS) without Docker, from the Python package in .venv-localstack (make localstack-venv):
#   scripts/localstack.sh run CMD...   start it, wait for its health check, run CMD with AWS_ENDPOINT_URL pointing at
#                                      it (and LocalStack's test credentials), stop it; exit with CMD's status
# Environment: LOCALSTACK_PORT (default 4566), LOCALSTACK_VENV (default .venv-localstack).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = run ] && [ $# -ge 2 ] || { echo "usage: scripts/localstack.sh run CMD..." >&2; exit 2; }
shift
port="${LOCALSTACK_PORT:-4566}"
venv="${LOCALSTACK_VENV:-.venv-localstack}"
[ -x "$venv/bin/python" ] || { echo "no LocalStack in $venv: run make localstack-venv" >&2; exit 2; }
state="$(mktemp -d)"
log="$state/localstack.log"
SERVICES=s3,sqs GATEWAY_SERVER=hypercorn GATEWAY_LISTEN="127.0.0.1:$port" OVERRIDE_IN_DOCKER=0 DNS_ADDRESS=0 \
  FILESYSTEM_ROOT="$state/root" "$venv/bin/python" -m localstack.runtime.main >"$log" 2>&1 &
pid=$!
stop() {
  # LocalStack may ignore SIGTERM while it shuts its services down: give it 10 s, then SIGKILL.
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$state"
}
trap stop EXIT
for _ in $(seq 1 120); do
  if curl -sf "http://127.0.0.1:$port/_localstack/health" | grep -q '"s3": "\(available\|running\)"'; then break; fi
  kill -0 "$pid" 2>/dev/null || { tail -30 "$log" >&2; echo "LocalStack exited" >&2; exit 1; }
  sleep 0.5
done
curl -sf "http://127.0.0.1:$port/_localstack/health" >/dev/null || { tail -30 "$log" >&2; echo "LocalStack not healthy" >&2; exit 1; }
echo "LocalStack on http://127.0.0.1:$port" >&2
AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  AWS_DEFAULT_REGION=us-east-1 "$@"
