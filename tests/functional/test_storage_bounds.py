"""What one API request may store is bounded (MAX_REQUEST_POINTS, MAX_REQUEST_FACES, MAX_RESULT_BYTES): an 87 KB
request for a 2 000 000-point mesh of a flat 4096 x 4096 PNG used to store 77.5 MB. Over a bound: 422 or 413 naming
it, and nothing written. Through the Lambda entry (an anonymous function URL event) and the app, with the really
baked model and the suite's S3 endpoint.
"""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient

from handler.app import create_app
from handler.estimator import DepthEstimator
from handler.s3_store import S3Store
from support import assert_clean_error, call, encode, list_keys, scene


@pytest.fixture(scope="module")
def flat_4096_png() -> bytes:
    """A 4096 x 4096 PNG of a few tens of KB (a smooth ramp compresses to almost nothing): the small request."""
    ramp = np.linspace(0, 255, 4096, dtype=np.float32).astype(np.uint8)
    image = np.dstack([np.tile(ramp, (4096, 1))] * 3)
    png = encode(image, "PNG")
    assert len(png) < 100_000
    return png


def amplifying(png: bytes, **geometry) -> str:
    body = {"image": base64.b64encode(png).decode(), "output": "s3", "point_cloud": "ply"}
    return json.dumps(body | {"geometry": {"mesh": True, **geometry}})


def stored_bytes(s3, bucket: str, keys: set[str]) -> int:
    return sum(s3.head_object(Bucket=bucket, Key=key)["ContentLength"] for key in keys)


def test_a_small_request_for_a_huge_mesh_is_refused_before_any_work(
    entry, lambda_context, s3, output_bucket, flat_4096_png
):
    before = set(list_keys(s3, output_bucket))
    payload = amplifying(flat_4096_png, max_points=2_000_000)
    assert len(payload) < 100_000
    answer = call(entry.lambda_handler, lambda_context, "function-url", "POST", "/depth", payload, "application/json")
    assert_clean_error(answer, 422, "validation_error", "max_points", "500000", "MAX_REQUEST_POINTS")
    assert set(list_keys(s3, output_bucket)) == before


def test_at_the_bounds_a_request_stores_at_most_max_result_bytes(
    entry, lambda_context, s3, output_bucket, flat_4096_png
):
    settings = entry.estimator.settings
    before = set(list_keys(s3, output_bucket))
    payload = amplifying(flat_4096_png, max_points=settings.max_request_points)
    answer = call(entry.lambda_handler, lambda_context, "function-url", "POST", "/depth", payload, "application/json")
    assert answer.status == 200, answer.body[:300]
    cloud = answer.json()["point_cloud"]
    assert cloud["points"] <= settings.max_request_points and cloud["faces"] <= settings.max_request_faces
    written = set(list_keys(s3, output_bucket)) - before
    assert written and stored_bytes(s3, output_bucket, written) <= settings.max_result_bytes


@pytest.fixture
def bounded(estimator, s3_endpoint):
    """A TestClient of the app whose settings are the session's with ``**bounds``."""

    def make(**bounds) -> TestClient:
        settings = estimator.settings.model_copy(update=bounds)
        return TestClient(create_app(DepthEstimator(settings, estimator.model), S3Store()))

    return make


def test_more_triangles_than_max_request_faces_is_413_and_nothing_is_written(bounded, s3, output_bucket):
    client = bounded(max_request_faces=1000)
    before = set(list_keys(s3, output_bucket))
    body = {"image": base64.b64encode(encode(scene(160, 120, seed=41))).decode(), "output": "s3"}
    response = client.post("/depth", json=body | {"point_cloud": "glb", "geometry": {"mesh": True}})
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"
    counted = re.match(
        r"the mesh has (\d+) triangles; one request may make at most 1000 \(MAX_REQUEST_FACES\); ask for fewer",
        response.json()["message"],
    )
    assert counted and int(counted[1]) > 1000, response.json()
    assert set(list_keys(s3, output_bucket)) == before
    assert client.post("/depth", json=body | {"point_cloud": "glb"}).status_code == 200  # points alone: no faces


def test_results_over_max_result_bytes_are_413_and_nothing_is_written(bounded, s3, output_bucket):
    client = bounded(max_result_bytes=200_000)
    before = set(list_keys(s3, output_bucket))
    body = {"image": base64.b64encode(encode(scene(400, 300, seed=42))).decode(), "output": "both"}
    response = client.post("/depth", json=body | {"point_cloud": "ply"})  # 120 000 points: 1.8 MB
    assert response.status_code == 413 and "MAX_RESULT_BYTES" in response.json()["message"]
    assert set(list_keys(s3, output_bucket)) == before
    assert client.post("/depth", json=body).status_code == 200  # the heatmap alone fits


def test_a_lower_max_request_points_lowers_the_default_budget(bounded):
    client = bounded(max_request_points=1000)
    image = base64.b64encode(encode(scene(400, 300, seed=43))).decode()
    answer = client.post("/depth", json={"image": image, "output": "inline", "point_cloud": "ply"})
    assert answer.status_code == 200 and answer.json()["point_cloud"]["points"] <= 1000
    refused = client.post("/depth", json={"image": image, "point_cloud": "ply", "geometry": {"max_points": 1001}})
    assert refused.status_code == 422 and "MAX_REQUEST_POINTS" in refused.json()["message"]
