"""Fixtures every scope may ask for: a real bake of an official-format checkpoint, a real S3 HTTP endpoint, the entry.

Each scope adds its own in its folder's conftest.py (tests/unit, tests/functional, tests/e2e). Nothing here imports
torch, OpenCV or the bake at import time: the bake runs (and imports torch) only when a test asks for the model, so
``make unit`` collects and runs without them (tests/unit/conftest.py refuses them outright).

- ``baked_model_dir``: the bake (the ``bake`` package, what scripts/bake_weights.py runs) once per session on a
  checkpoint with the 482 official keys and shapes (seeded random values).
- ``s3_endpoint``: moto's ThreadedMotoServer on 127.0.0.1 (port 0), or the endpoint in ``AWS_ENDPOINT_URL``
  when one is set (e.g. a running LocalStack). Our code only ever makes plain ``boto3.client("s3")``.
- ``entry``: the real Lambda entry module (handler.entry), imported once with the environment a deployment sets.

Only fixtures live here: the helpers the tests share are in the ``support`` package (tests/support/).
"""

from __future__ import annotations

import importlib
import inspect
import os
import uuid
from pathlib import Path

import pytest

from support import LambdaContext, function_env, start_moto

# Credentials/region for the emulator only (set before anything creates a boto3 client).
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")


# ------------------------------------------------------------------------------------------------ markers

# A test that asks for one of these talks to the session's S3/SQS endpoint itself: it is marked ``s3`` (``make test``
# runs those a second time against LocalStack). Tests that only reach S3 through an app or estimator built on the
# session's buckets are not: their S3 calls are the same ones the marked tests make.
S3_FIXTURES = {"s3_endpoint", "s3", "sqs", "input_bucket", "output_bucket"}


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "s3: talks to the S3/SQS endpoint (moto, or AWS_ENDPOINT_URL's LocalStack)")


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        function = getattr(item, "function", None)
        if function is not None and S3_FIXTURES & set(inspect.signature(function).parameters):
            item.add_marker(pytest.mark.s3)


# ------------------------------------------------------------------------------------------------ model


@pytest.fixture(scope="session")
def checkpoint_path(tmp_path_factory) -> Path:
    """A checkpoint with the 482 official keys/shapes (seeded random values)."""
    from bake.random_checkpoint import write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "midas_v21_small_256.pt", seed=0)


@pytest.fixture(scope="session")
def baked_model_dir(checkpoint_path, tmp_path_factory) -> Path:
    """The real bake of the test checkpoint: model.onnx + manifest.json, made once per session."""
    from bake.pipeline import bake

    out = tmp_path_factory.mktemp("baked") / "model"
    bake(checkpoint_path, str(checkpoint_path), out)
    return out


@pytest.fixture(scope="session")
def depth_model(baked_model_dir):
    from handler.model import DepthModel

    return DepthModel.load(baked_model_dir)


# ------------------------------------------------------------------------------------------------ S3


@pytest.fixture(scope="session")
def s3_endpoint():
    """URL of a real S3 HTTP endpoint: the configured one, or a moto server started for this session."""
    configured = os.environ.get("AWS_ENDPOINT_URL")
    if configured:
        yield configured
        return
    server, url = start_moto()
    os.environ["AWS_ENDPOINT_URL"] = url
    try:
        yield url
    finally:
        os.environ.pop("AWS_ENDPOINT_URL", None)
        server.stop()


@pytest.fixture(scope="session")
def s3(s3_endpoint):
    import boto3

    return boto3.client("s3")


@pytest.fixture(scope="session")
def sqs(s3_endpoint):
    import boto3

    return boto3.client("sqs")


def _bucket(s3, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def input_bucket(s3) -> str:
    return _bucket(s3, "midas-in")


@pytest.fixture(scope="session")
def events_bucket(s3) -> str:
    """A second input bucket, for tests that point its notifications at a queue of their own."""
    return _bucket(s3, "midas-events")


@pytest.fixture(scope="session")
def output_bucket(s3) -> str:
    return _bucket(s3, "midas-out")


@pytest.fixture(scope="session")
def settings(baked_model_dir, input_bucket, output_bucket):
    from handler.config import Settings

    return Settings(model_dir=str(baked_model_dir), output_bucket=output_bucket, allowed_input_buckets=input_bucket)


@pytest.fixture(scope="session")
def estimator(settings, depth_model):
    from handler.estimator import DepthEstimator

    return DepthEstimator(settings, depth_model)


# ------------------------------------------------------------------------------------------------ Lambda


@pytest.fixture
def lambda_context() -> LambdaContext:
    """What the Lambda runtime passes as ``context``: the class `make invoke-s3` uses, a fresh aws_request_id."""
    return LambdaContext()


@pytest.fixture(scope="session")
def entry(baked_model_dir, s3_endpoint, input_bucket, events_bucket, output_bucket):
    """handler.entry imported once, with the environment the SAM template gives the function."""
    env = function_env(
        model_dir=baked_model_dir,
        output_bucket=output_bucket,
        input_buckets=f"{input_bucket},{events_bucket}",
        OUTPUT_PREFIX="depth/",
        WRITE_RAW_DEPTH="true",
    )
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        from handler.config import get_settings

        get_settings.cache_clear()
        module = importlib.import_module("handler.entry")
    return module
