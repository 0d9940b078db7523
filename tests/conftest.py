"""Shared fixtures: a real bake of an official-format checkpoint, a real S3 HTTP endpoint, real Lambda events.

- ``baked_model_dir``: scripts/bake_weights.py run once per session on a checkpoint with the 482 official keys
  and shapes (seeded random values).
- ``s3_endpoint``: moto's ThreadedMotoServer on 127.0.0.1 (port 0), or the endpoint in ``AWS_ENDPOINT_URL``
  when one is set (e.g. a running LocalStack). Our code only ever makes plain ``boto3.client("s3")``.
- ``entry``: the real Lambda entry module (handler.entry), imported once with the environment a deployment sets.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import io
import json
import os
import struct
import sys
import urllib.parse
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EVENTS = Path(__file__).with_name("events")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts import bake_weights, make_test_checkpoint  # noqa: E402
from scripts.local_s3_invoke import Context  # noqa: E402

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
    return make_test_checkpoint.write_checkpoint(tmp_path_factory.mktemp("ckpt") / "midas_v21_small_256.pt", seed=0)


@pytest.fixture(scope="session")
def baked_model_dir(checkpoint_path, tmp_path_factory) -> Path:
    """The real bake of the test checkpoint: model.onnx + manifest.json, made once per session."""
    out = tmp_path_factory.mktemp("baked") / "model"
    bake_weights.bake(checkpoint_path, str(checkpoint_path), out)
    return out


@pytest.fixture(scope="session")
def torch_model(checkpoint_path):
    """The torch MidasNet_small loaded from the same checkpoint (the reference the ONNX path must match)."""
    return bake_weights.build_model(bake_weights.load_state_dict(checkpoint_path))


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
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
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


def list_keys(s3, bucket: str, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


# ------------------------------------------------------------------------------------------------ Lambda


# What the Lambda runtime passes as ``context`` (the fields Powertools and Mangum read): the same class
# `make invoke-s3` uses.
LambdaContext = Context


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()  # a fresh aws_request_id each time


@pytest.fixture(scope="session")
def entry(baked_model_dir, s3_endpoint, input_bucket, events_bucket, output_bucket):
    """handler.entry imported once, with the environment the SAM template gives the function."""
    env = {
        "MODEL_DIR": str(baked_model_dir),
        "OUTPUT_BUCKET": output_bucket,
        "OUTPUT_PREFIX": "depth/",
        "ALLOWED_INPUT_BUCKETS": f"{input_bucket},{events_bucket}",
        "UPLOAD_PREFIX": "uploads/",
        "WRITE_RAW_DEPTH": "true",
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        from handler.config import get_settings

        get_settings.cache_clear()
        module = importlib.import_module("handler.entry")
    return module


def load_event(name: str) -> dict:
    """A committed event payload from tests/events/ (``sam local generate-event`` payloads; third_party/: events
    written by others, see its README.md)."""
    return json.loads((EVENTS / name).read_text())


# ------------------------------------------------------------------------------------------------ images


def scene(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth synthetic RGB scene (gradients + blobs) so depth maps vary across the image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    for c in range(3):
        fx, fy, phase = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 6.28)
        img[..., c] = 127 + 60 * np.sin(xx / width * fx + phase) * np.cos(yy / height * fy) + 60 * (yy / height - 0.5)
    return np.clip(img, 0, 255).astype(np.uint8)


def encode(rgb: np.ndarray, fmt: str = "JPEG", **params) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **params)
    return buf.getvalue()


# Readers of the function's file outputs: the function itself only writes them.
_PLY_VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
_GLB_MAGIC = 0x46546C67  # "glTF"


def read_pfm(data: bytes) -> np.ndarray:
    """A grayscale PFM (upstream write_pfm: bottom-to-top rows, the scale's sign gives the byte order) → float32."""
    header, dims, scale, body = data.split(b"\n", 3)
    if header != b"Pf":
        raise ValueError("not a grayscale PFM")
    width, height = (int(v) for v in dims.split())
    dtype = "<f4" if float(scale) < 0 else ">f4"
    return np.flipud(np.frombuffer(body, dtype=dtype, count=width * height).reshape(height, width)).astype(np.float32)


def read_glb_points(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """A GLB's POSITION and COLOR_0 accessors: (positions float32 (N, 3), colours uint8 (N, 3))."""
    magic, _, total = struct.unpack_from("<III", data)
    if magic != _GLB_MAGIC or total != len(data):
        raise ValueError("not a GLB file")
    json_length, _ = struct.unpack_from("<II", data, 12)
    gltf = json.loads(data[20 : 20 + json_length])
    binary = data[20 + json_length + 8 :]
    views, accessors = gltf["bufferViews"], gltf["accessors"]
    pos, col = accessors[0], accessors[1]
    pos_view, col_view = views[pos["bufferView"]], views[col["bufferView"]]
    positions = np.frombuffer(binary, "<f4", pos["count"] * 3, pos_view["byteOffset"]).reshape(-1, 3)
    colors = np.frombuffer(binary, np.uint8, col["count"] * 4, col_view["byteOffset"]).reshape(-1, 4)[:, :3]
    return positions.copy(), colors.copy()


def read_ply_points(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The vertices of the function's binary PLY layout: (positions float32 (N, 3), colours uint8 (N, 3))."""
    end = data.index(b"end_header\n") + len(b"end_header\n")
    count = int(data[: data.index(b"\nproperty")].rsplit(b"element vertex ", 1)[1])
    vertices = np.frombuffer(data, _PLY_VERTEX, count=count, offset=end)
    positions = np.stack([vertices["x"], vertices["y"], vertices["z"]], axis=1)
    return positions, np.stack([vertices["red"], vertices["green"], vertices["blue"]], axis=1)


@pytest.fixture(scope="session")
def jpeg_640x480() -> bytes:
    return encode(scene(640, 480, seed=1), "JPEG", quality=90)


def api_event(
    kind: str, method: str, path: str, body: bytes | str | None = None, content_type: str | None = None, query: str = ""
) -> dict:
    """An API Gateway REST (v1), HTTP API (v2) or Function URL event built from the committed sam payloads."""
    headers = {"host": "abc123.execute-api.us-east-1.amazonaws.com", "user-agent": "pytest"}
    if content_type:
        headers["content-type"] = content_type
    raw = body.encode() if isinstance(body, str) else body
    encoded = base64.b64encode(raw).decode() if raw is not None else None
    if kind == "v1":
        event = load_event("apigw-v1-proxy.json")
        event.update(
            path=path,
            httpMethod=method,
            headers=headers,
            multiValueHeaders={k: [v] for k, v in headers.items()},
            queryStringParameters=dict(urllib.parse.parse_qsl(query)) or None,
            multiValueQueryStringParameters=None,
            pathParameters={"proxy": path.lstrip("/")},
            body=encoded,
            isBase64Encoded=raw is not None,
        )
        event["requestContext"].update(httpMethod=method, path=f"/prod{path}")
        return event
    event = load_event("apigw-v2-http.json")
    event.update(rawPath=path, rawQueryString=query, headers=headers, body=encoded, isBase64Encoded=raw is not None)
    event.pop("cookies", None)
    event.pop("queryStringParameters", None)
    if query:
        event["queryStringParameters"] = dict(urllib.parse.parse_qsl(query))
    event["requestContext"]["http"].update(method=method, path=path)
    if kind == "function-url":
        event["requestContext"].update(domainName="abc123.lambda-url.us-east-1.on.aws", domainPrefix="abc123")
        event["requestContext"].pop("stage", None)
        event["requestContext"].pop("authentication", None)
        event["requestContext"].pop("authorizer", None)
    return event


def response_body(response: dict) -> bytes:
    """The body of a Lambda proxy response, base64-decoded when flagged."""
    body = response.get("body") or ""
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
