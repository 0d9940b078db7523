"""The HTTP API through FastAPI's TestClient, against a really baked model and a real S3 HTTP endpoint."""

from __future__ import annotations

import base64
import json
import urllib.request

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from handler import pointcloud
from handler.config import Settings
from handler.estimator import DepthEstimator
from handler.s3_store import S3Store
from support import Answer, assert_clean_error, encode, list_keys, local_client, scene


def png_shape(data: bytes) -> tuple[int, ...]:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None, "not a PNG"
    return img.shape


def make_client(depth_model, **settings) -> TestClient:
    return local_client(DepthEstimator(Settings(**settings), depth_model), S3Store())


def assert_error(response, status: int, code: str, *words: str) -> dict:
    """A TestClient response: the clean JSON error ``support.assert_clean_error`` checks on the entry's answers."""
    headers = {name.lower(): value for name, value in response.headers.items()}
    assert "/work/" not in response.text
    return assert_clean_error(Answer(response.status_code, headers, response.content), status, code, *words)


# ------------------------------------------------------------------------------------------------ /predict


def test_predict_contract_with_output_bucket(client, s3, output_bucket, jpeg_640x480):
    response = client.post("/predict", files={"image": ("photo.jpg", jpeg_640x480, "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    assert body["width"] == 640 and body["height"] == 480
    assert 0 < body["inference_time"] < 30
    assert body["model_version"].startswith("MiDaS_small@")
    assert body["s3"]["bucket"] == output_bucket and body["s3"]["key"].startswith("depth/api/")
    assert body["depth_map_url"] == body["s3"]["url"]
    with urllib.request.urlopen(body["depth_map_url"]) as fetched:  # the presigned URL really serves the PNG
        assert png_shape(fetched.read()) == (480, 640, 3)
    head = s3.head_object(Bucket=output_bucket, Key=body["s3"]["key"])
    assert head["ContentType"] == "image/png" and head["Metadata"]["source"] == "upload"


def test_predict_inline_returns_a_data_url(inline_client, jpeg_640x480):
    body = inline_client.post("/predict", files={"image": ("a.jpg", jpeg_640x480, "image/jpeg")}).json()
    prefix = "data:image/png;base64,"
    assert body["depth_map_url"].startswith(prefix) and "s3" not in body
    assert png_shape(base64.b64decode(body["depth_map_url"][len(prefix) :])) == (480, 640, 3)


def test_predict_errors(client):
    assert_error(client.post("/predict", json={"image": "x"}), 415, "unsupported_media_type", "multipart/form-data")
    assert_error(client.post("/predict", files={"photo": ("a.jpg", b"xx")}), 422, "validation_error", "'image'")
    assert_error(client.post("/predict", files={"image": (None, "text")}), 422, "validation_error", "file upload")
    assert_error(client.post("/predict", files={"image": ("a.jpg", b"not a jpeg")}), 400, "invalid_image")


# ------------------------------------------------------------------------------------------------ /depth JSON


def test_depth_base64_inline_with_depth(inline_client, estimator, jpeg_640x480):
    response = inline_client.post(
        "/depth", json={"image": base64.b64encode(jpeg_640x480).decode(), "include_depth": True}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    heatmap = base64.b64decode(body["heatmap_png_base64"])
    depth16 = base64.b64decode(body["depth_png16_base64"])
    assert png_shape(heatmap) == (480, 640, 3)
    depth_img = cv2.imdecode(np.frombuffer(depth16, np.uint8), cv2.IMREAD_UNCHANGED)
    assert depth_img.dtype == np.uint16 and depth_img.shape == (480, 640)
    # the API's renderings are exactly the core's on the same bytes (one inference path)
    direct = estimator.estimate(jpeg_640x480)
    assert heatmap == estimator.heatmap_png(direct)
    assert set(body["timings"]) == {"decode", "preprocess", "inference", "upsample", "colormap", "encode"}
    assert body["colormap"] == "inferno" and "depth_map_url" not in body and "heatmap_s3" not in body


def test_depth_data_url_and_colormap(inline_client):
    png = encode(scene(96, 64), "PNG")
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    body = inline_client.post("/depth", json={"image": url, "colormap": "gray"}).json()
    assert png_shape(base64.b64decode(body["heatmap_png_base64"])) == (64, 96)  # gray = one channel
    assert body["colormap"] == "gray"


def test_depth_urlsafe_base64_without_padding(inline_client):
    png = encode(scene(33, 31), "PNG")
    text = base64.urlsafe_b64encode(png).decode().rstrip("=")
    body = inline_client.post("/depth", json={"image": text}).json()
    assert body["width"] == 33 and body["height"] == 31


@pytest.mark.parametrize("ref_style", ["object", "uri"])
def test_depth_from_s3_reference_writes_both(client, s3, input_bucket, output_bucket, ref_style):
    key = f"uploads/refs/{ref_style} photo ü.jpg"
    s3.put_object(Bucket=input_bucket, Key=key, Body=encode(scene(320, 240, seed=9)))
    ref = {"bucket": input_bucket, "key": key} if ref_style == "object" else f"s3://{input_bucket}/{key}"
    response = client.post("/depth", json={"s3": ref, "include_depth": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["width"] == 320 and body["height"] == 240
    assert png_shape(base64.b64decode(body["heatmap_png_base64"])) == (240, 320, 3)  # default: both
    for field, suffix in (("heatmap_s3", ".png"), ("depth_s3", ".depth.png")):
        loc = body[field]
        assert loc["bucket"] == output_bucket and loc["key"].endswith(suffix)
        with urllib.request.urlopen(loc["url"]) as fetched:
            assert png_shape(fetched.read())[:2] == (240, 320)
    meta = s3.head_object(Bucket=output_bucket, Key=body["heatmap_s3"]["key"])["Metadata"]
    assert (
        meta["source-bucket"] == input_bucket
        and meta["source-key"] == "uploads/refs/" + ref_style + " photo %C3%BC.jpg"
    )
    assert body["depth_map_url"] == body["heatmap_s3"]["url"]


def test_depth_output_s3_only_returns_no_inline_payload(client, output_bucket, s3):
    body = client.post("/depth", json={"image": base64.b64encode(encode(scene(64, 64))).decode(), "output": "s3"})
    body = body.json()
    assert "heatmap_png_base64" not in body and body["heatmap_s3"]["key"] in list_keys(s3, output_bucket, "depth/api/")


def test_resending_the_same_image_stores_nothing_new(client, output_bucket, s3):
    """API results are keyed by the image's sha256 (and colormap): the same bytes land on the same keys."""
    image = base64.b64encode(encode(scene(72, 56, seed=31))).decode()
    first = client.post("/depth", json={"image": image, "output": "s3", "include_depth": True}).json()
    stored = list_keys(s3, output_bucket, "depth/api/")
    again = client.post("/depth", json={"image": image, "output": "s3", "include_depth": True}).json()
    assert list_keys(s3, output_bucket, "depth/api/") == stored
    assert (again["heatmap_s3"]["key"], again["depth_s3"]["key"]) == (
        first["heatmap_s3"]["key"],
        first["depth_s3"]["key"],
    )
    other = client.post(
        "/depth", json={"image": base64.b64encode(encode(scene(72, 56, seed=32))).decode(), "output": "s3"}
    )
    assert other.json()["heatmap_s3"]["key"] != first["heatmap_s3"]["key"]


def test_raw_image_body_answers_with_the_png(client, jpeg_640x480):
    response = client.post("/depth?colormap=magma", content=jpeg_640x480, headers={"content-type": "image/jpeg"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-image-width"] == "640" and response.headers["x-image-height"] == "480"
    assert float(response.headers["x-inference-time"]) > 0
    assert png_shape(response.content) == (480, 640, 3)


# ------------------------------------------------------------------------------------------------ /health, docs


def test_health_reports_model_and_warmth(depth_model, baked_model_dir):
    fresh = make_client(depth_model, model_dir=str(baked_model_dir))
    manifest = json.loads((baked_model_dir / "manifest.json").read_text())
    body = fresh.get("/health").json()
    assert body["status"] == "ok" and body["model"] == "MiDaS_small"
    assert body["onnx_sha256"] == manifest["onnx_sha256"]
    assert body["checkpoint_sha256"] == manifest["checkpoint_sha256"]
    assert "versions" not in body and body["threads"] >= 1  # versions only with HEALTH_DETAILS
    runs = body["images_processed"]
    fresh.post("/depth", json={"image": base64.b64encode(encode(scene(32, 32))).decode()})
    after = fresh.get("/health").json()
    assert after["warm"] is True and after["images_processed"] == runs + 1


def test_docs_and_openapi(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/depth"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "image/*"}
    assert "DepthRequest" in spec["components"]["schemas"] and "S3Ref" in spec["components"]["schemas"]
    assert "multipart/form-data" in spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    # the point-cloud formats, exactly those handler.pointcloud writes: in the request and in the response
    schemas = spec["components"]["schemas"]
    requested = schemas["DepthRequest"]["properties"]["point_cloud"]["anyOf"]
    assert [branch["enum"] for branch in requested if "enum" in branch] == [list(pointcloud.FORMATS)]
    assert schemas["PointCloudInfo"]["properties"]["format"]["enum"] == list(pointcloud.FORMATS)


# ------------------------------------------------------------------------------------------------ errors


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("payload", "status", "code", "words"),
    [
        ({"image": "@@@not base64@@@"}, 400, "invalid_base64", ["not valid base64"]),
        ({"image": b64(b"just some text")}, 400, "invalid_image", ["not an image"]),
        ({"image": "data:text/plain;base64," + b64(b"hi")}, 415, "unsupported_media_type", ["text/plain"]),
        ({}, 422, "validation_error", ["exactly one"]),
        ({"image": "aGk=", "s3": "s3://bkt/k"}, 422, "validation_error", ["exactly one"]),
        ({"image": "aGk=", "extra": 1}, 422, "validation_error", ["1 unknown field; allowed: image, s3"]),
        ({"image": "aGk=", "colormap": "rainbow"}, 422, "validation_error", ["colormap"]),
        ({"s3": "https://example.com/a.jpg"}, 422, "validation_error", ["s3://bucket/key"]),
        ({"s3": {"bucket": "midas-in", "key": "../etc/passwd"}}, 422, "validation_error", ["'..'"]),
    ],
)
def test_bad_json_requests(client, payload, status, code, words):
    assert_error(client.post("/depth", json=payload), status, code, *words)


def test_truncated_image_is_400(client):
    data = encode(scene(300, 200))
    assert_error(client.post("/depth", json={"image": b64(data[: len(data) // 2])}), 400, "invalid_image", "truncated")


def test_malformed_json_is_400(client):
    response = client.post("/depth", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_request", "not valid JSON")


def test_unsupported_content_type_is_415(client):
    response = client.post("/depth", content=b"hello", headers={"content-type": "text/plain"})
    assert_error(response, 415, "unsupported_media_type", "text/plain")


def test_limits_are_413(depth_model, baked_model_dir):
    small = make_client(
        depth_model,
        model_dir=str(baked_model_dir),
        max_image_bytes=2000,
        max_image_pixels=10_000,
        max_json_bytes=50_000,
    )
    big = encode(scene(200, 200), "PNG")
    assert_error(small.post("/depth", json={"image": b64(big)}), 413, "payload_too_large", "limit is 2000 bytes")
    assert_error(small.post("/depth", content=big, headers={"content-type": "image/png"}), 413, "payload_too_large")
    assert_error(small.post("/predict", files={"image": ("a.png", big)}), 413, "payload_too_large")
    huge_json = json.dumps({"image": "A" * 60_000})
    response = small.post("/depth", content=huge_json, headers={"content-type": "application/json"})
    assert_error(response, 413, "payload_too_large", "JSON body")
    pixels = encode(scene(120, 100), "JPEG", quality=10)  # few bytes, 12 000 pixels
    assert_error(small.post("/depth", json={"image": b64(pixels)}), 413, "too_many_pixels", "120x100")


def test_s3_reference_errors(client, input_bucket):
    assert_error(client.post("/depth", json={"s3": "s3://not-allowed-bucket/a.jpg"}), 403, "bucket_not_allowed")
    missing = client.post("/depth", json={"s3": f"s3://{input_bucket}/uploads/nope/missing.jpg"})
    assert_error(missing, 404, "s3_object_not_found", "uploads/nope/missing.jpg")


def test_allowed_but_missing_bucket_is_404(depth_model, baked_model_dir, s3_endpoint):
    c = make_client(depth_model, model_dir=str(baked_model_dir), allowed_input_buckets="midas-does-not-exist")
    assert_error(c.post("/depth", json={"s3": "s3://midas-does-not-exist/uploads/a.jpg"}), 404, "s3_object_not_found")


def test_s3_unreachable_is_503(depth_model, baked_model_dir, input_bucket, monkeypatch):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    c = make_client(depth_model, model_dir=str(baked_model_dir), allowed_input_buckets=input_bucket)
    body = assert_error(c.post("/depth", json={"s3": f"s3://{input_bucket}/uploads/a.jpg"}), 503, "s3_unavailable")
    assert "127.0.0.1" not in body["message"]  # internal endpoints are not echoed


def test_output_s3_without_bucket_is_400(inline_client):
    response = inline_client.post("/depth", json={"image": b64(encode(scene(32, 32))), "output": "s3"})
    assert_error(response, 400, "output_bucket_not_configured")


def test_unknown_route_and_method_are_json(client):
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.get("/depth"), 405, "method_not_allowed")
