"""Schemathesis against the app's own OpenAPI schema, with the app served by uvicorn on 127.0.0.1: whatever the
generated requests (valid and invalid bodies, media types, query values), the function never answers 5xx."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from handler.app import create_app
from handler.s3_store import S3Store

EXAMPLES = 150  # per generation mode, across all operations


@pytest.fixture(scope="module")
def base_url(estimator, s3_endpoint):
    """The app (the session's estimator, a real S3 endpoint) served by uvicorn on a free port of 127.0.0.1."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(estimator, S3Store()), host="127.0.0.1", port=0, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    yield f"http://{host}:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_no_server_errors(base_url, mode):
    """Every operation of /openapi.json with generated data (schema-valid, then schema-violating): never a 5xx."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    seen: Counter = Counter()

    @given(case=schema.as_strategy(mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def fuzz(case):
        response = case.call_and_validate(base_url=base_url, checks=[not_a_server_error])
        seen[f"{case.method} {case.path} {response.status_code}"] += 1

    fuzz()
    print(mode.value, dict(sorted(seen.items())))  # with -s: what was sent and answered (README: Hardening)
    assert {key.rsplit(" ", 1)[0] for key in seen} >= {"POST /depth", "POST /predict"}
