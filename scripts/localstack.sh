#!/usr/bin/env bash
# LocalStack (S3 and SQS) without Docker, on 127.0.0.1: the command line of localdev/localstack.py, the one launcher
# (its docstring says more; standard library only, so any python3 runs it).
#
#   scripts/localstack.sh start        start it in the background on LOCALSTACK_PORT (default 4566), wait for health
#   scripts/localstack.sh stop         stop the one `start` started on LOCALSTACK_PORT (default 4566)
#   scripts/localstack.sh run CMD...   start one on a free port (or LOCALSTACK_PORT), run CMD with AWS_ENDPOINT_URL
#                                      and test credentials pointing at it, always stop it; exit with CMD's status
#   scripts/localstack.sh install      only make the venv (start and run do it first)
set -euo pipefail
exec python3 "$(cd "$(dirname "$0")/.." && pwd)/localdev/localstack.py" "$@"
