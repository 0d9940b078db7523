"""Fixtures of the end-to-end tests (the image, the stack's template, the local stack, the browser, the documents).

The session's bake, S3 endpoint, buckets and entry come from tests/conftest.py, shared with tests/functional.
"""

from __future__ import annotations

import pytest

from localdev.lambda_container import engine_error
from support.browser import CHROMIUM, chromium


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Playwright), one per test module; skipped, with the reason, without it."""
    if not CHROMIUM.exists():
        pytest.skip("needs Chromium at /usr/bin/chromium (apt: chromium)")
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skips, with the reason, where no Docker engine answers (the image and the stack in LocalStack need one)."""
    reason = engine_error()
    if reason:
        pytest.skip(f"no Docker engine answers ({reason}); .ci/run installs and starts one")
