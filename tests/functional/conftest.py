"""Fixtures of the functional tests (the real entry, app and CLI on a real S3 endpoint and a real baked model).

The session's bake, S3 endpoint, buckets and entry come from tests/conftest.py, shared with tests/e2e.
"""

from __future__ import annotations

import http.server

import pytest

from support import encode, local_client, scene
from support.http_servers import serving


@pytest.fixture(scope="session")
def torch_model(checkpoint_path):
    """The torch MidasNet_small loaded from the same checkpoint (the reference the ONNX path must match)."""
    from bake.checkpoint import build_model, load_state_dict

    return build_model(load_state_dict(checkpoint_path))


@pytest.fixture(scope="module")
def client(estimator, s3_endpoint):
    """The app of the session's deployment (its buckets, its S3 endpoint) as `make serve` serves it to its user: an
    authenticated caller, whose S3 references are read."""
    from handler.s3_store import S3Store

    return local_client(estimator, S3Store())


@pytest.fixture(scope="module")
def inline_client(depth_model, baked_model_dir):
    """A deployment without an output bucket: results come back inline only."""
    from handler.config import Settings
    from handler.estimator import DepthEstimator
    from handler.s3_store import S3Store

    settings = Settings(model_dir=str(baked_model_dir), output_bucket="")
    return local_client(DepthEstimator(settings, depth_model), S3Store())


@pytest.fixture(scope="session")
def jpeg_640x480() -> bytes:
    return encode(scene(640, 480, seed=1), "JPEG", quality=90)


@pytest.fixture
def canary():
    """A local HTTP server that counts the requests it gets: nothing may ever reach it."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            self.wfile.write(encode(scene(96, 64, seed=5)))

        def log_message(self, *args):
            pass

    with serving(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
        yield url, hits
