"""What the tests share, in one importable place (tests never import from ``conftest``; fixtures stay there).

The helpers the local scripts use too (``make serve``, ``make invoke-s3``, the soak, the benchmarks) are defined
once in the ``localdev`` package and re-exported here, so a test and a script build the same event, image,
emulator and environment the same way, and scripts never import from tests. Submodules: :mod:`support.browser`
(the app in headless Chromium), :mod:`support.serve_stack` (``make serve`` on free ports), :mod:`support.doc_commands`
(the shell blocks of the documents), :mod:`support.readers` (the function's PFM, PLY and GLB read back),
:mod:`support.template` (the SAM template as plain data).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from localdev.events import (
    API_KINDS,
    BATCH_SCHEMAS,
    EVENTS,
    api_event,
    b64,
    batch_event,
    eventbridge_event,
    load_event,
    multipart,
    response_body,
    s3_event,
    sqs_event,
)
from localdev.function import LambdaContext, function_env
from localdev.images import (
    encode,
    jpeg_claiming,
    jpeg_scan_bomb,
    jpeg_with_comments,
    png_claiming,
    png_with_chunks,
    scene,
)
from localdev.s3_emulator import CREDENTIALS, free_port, start_moto
from support.readers import read_glb_points, read_pfm, read_ply_points

ROOT = Path(__file__).resolve().parents[2]

__all__ = [
    "API_KINDS",
    "BATCH_SCHEMAS",
    "CREDENTIALS",
    "EVENTS",
    "ROOT",
    "Answer",
    "LambdaContext",
    "api_event",
    "assert_clean_error",
    "b64",
    "batch_event",
    "call",
    "encode",
    "eventbridge_event",
    "free_port",
    "function_env",
    "jpeg_claiming",
    "jpeg_with_exif",
    "jpeg_scan_bomb",
    "jpeg_with_comments",
    "list_keys",
    "load_event",
    "local_client",
    "multipart",
    "png_claiming",
    "png_with_chunks",
    "read_glb_points",
    "read_pfm",
    "read_ply_points",
    "recorded_upstream",
    "response_body",
    "s3_event",
    "scene",
    "sqs_event",
    "start_moto",
]


def list_keys(s3, bucket: str, prefix: str = "") -> list[str]:
    """Every key under ``prefix`` of ``bucket``, sorted."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def recorded_upstream() -> dict[str, np.ndarray]:
    """Upstream's values recorded by scripts/record_upstream.py (what and how: localdev/upstream_record.py)."""
    with np.load(ROOT / "tests" / "unit" / "data" / "upstream.npz") as data:
        return {name: data[name] for name in data.files}


def jpeg_with_exif(width: int, height: int, **tags) -> bytes:
    """A flat (90, 120, 150) JPEG whose EXIF sub-IFD holds ``tags`` (hex names like ``"0xa405"`` or numbers)."""
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    for tag, value in tags.items():
        ifd[int(tag, 16) if isinstance(tag, str) and tag.startswith("0x") else tag] = value
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 150)).save(buf, "JPEG", exif=exif)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ HTTP answers


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def call(
    handler,
    context,
    kind: str,
    method: str,
    path: str,
    body=None,
    content_type: str | None = None,
    query: str = "",
    *,
    caller: str | None = None,
) -> Answer:
    """``handler`` (the Lambda entry) on an API event of ``kind`` (:data:`API_KINDS`) from ``caller`` (see
    ``api_event``), its answer unpacked."""
    response = handler(api_event(kind, method, path, body, content_type, query, caller=caller), context)
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    return Answer(response["statusCode"], headers, response_body(response))


def local_client(estimator, store, **kwargs):
    """A TestClient of the app as `make serve` serves it to its user: TRUST_LOOPBACK_CALLERS set and every request
    from 127.0.0.1, so an authenticated caller, whose S3 references are read (docs/api.md#authentication)."""
    from fastapi.testclient import TestClient

    from handler.app import create_app
    from handler.estimator import DepthEstimator

    settings = estimator.settings.model_copy(update={"trust_loopback_callers": True})
    app = create_app(DepthEstimator(settings, estimator.model), store)
    return TestClient(app, client=("127.0.0.1", 50000), **kwargs)


def assert_clean_error(answer: Answer, status: int, code: str, *words: str) -> dict:
    """A JSON error body naming the problem, with no stack trace, no internal path and no internal endpoint."""
    assert answer.status == status, answer.body[:500]
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["status"] == "error" and body["error"] == code, body
    for word in words:
        assert word in body["message"], body
    text = answer.body.decode()
    for leak in ("Traceback", 'File "', str(ROOT), "site-packages", "/tmp/", os.environ.get("AWS_ENDPOINT_URL", "@")):
        assert leak not in text, f"{leak!r} leaked: {text[:300]}"
    return body
