"""The API through the real Lambda entry (Mangum) with API Gateway REST (v1), HTTP API (v2) and Function URL events."""

from __future__ import annotations

import base64
import json

import cv2
import numpy as np
import pytest

from support import api_event, encode, load_event, response_body, scene

KINDS = ["v1", "v2", "function-url"]


@pytest.mark.parametrize("kind", KINDS)
def test_raw_image_body_gets_a_binary_png_response(entry, lambda_context, kind):
    jpeg = encode(scene(200, 120, seed=4))
    event = api_event(kind, "POST", "/depth", jpeg, "image/jpeg")
    response = entry.lambda_handler(event, lambda_context)
    assert response["statusCode"] == 200, response.get("body")
    assert response["isBase64Encoded"] is True
    headers = {k.lower(): v for k, v in response["headers"].items()}
    assert headers["content-type"] == "image/png"
    png = cv2.imdecode(np.frombuffer(response_body(response), np.uint8), cv2.IMREAD_COLOR)
    assert png.shape == (120, 200, 3)


@pytest.mark.parametrize("kind", KINDS)
def test_json_body_base64_encoded_by_api_gateway(entry, lambda_context, kind):
    payload = json.dumps({"image": base64.b64encode(encode(scene(64, 48))).decode(), "output": "inline"})
    response = entry.lambda_handler(api_event(kind, "POST", "/depth", payload, "application/json"), lambda_context)
    assert response["statusCode"] == 200, response.get("body")
    body = json.loads(response_body(response))
    assert body["width"] == 64 and body["height"] == 48 and body["heatmap_png_base64"]


@pytest.mark.parametrize("kind", KINDS)
def test_multipart_predict(entry, lambda_context, kind, output_bucket):
    boundary = "----midasboundary"
    jpeg = encode(scene(80, 60))
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + jpeg
        + f"\r\n--{boundary}--\r\n".encode()
    )
    event = api_event(kind, "POST", "/predict", body, f"multipart/form-data; boundary={boundary}")
    response = entry.lambda_handler(event, lambda_context)
    assert response["statusCode"] == 200, response.get("body")
    result = json.loads(response_body(response))
    assert result["status"] == "success" and result["width"] == 80 and result["height"] == 60
    assert result["s3"]["bucket"] == output_bucket


@pytest.mark.parametrize("kind", KINDS)
def test_health_and_errors_through_the_entry(entry, lambda_context, kind):
    health = entry.lambda_handler(api_event(kind, "GET", "/health"), lambda_context)
    assert health["statusCode"] == 200 and json.loads(response_body(health))["model"] == "MiDaS_small"
    bad = entry.lambda_handler(api_event(kind, "POST", "/depth", b"garbage", "image/png"), lambda_context)
    assert bad["statusCode"] == 400
    assert json.loads(response_body(bad))["error"] == "invalid_image"


def test_committed_sam_api_events_are_handled(entry, lambda_context):
    """The sam-generated payloads as committed (no edits) get clear JSON errors, not a crash."""
    for name, status, code in (
        ("apigw-v1-proxy.json", 415, "unsupported_media_type"),  # POST /depth without Content-Type
        ("apigw-v2-http.json", 404, "not_found"),  # POST /path/to/resource
    ):
        response = entry.lambda_handler(load_event(name), lambda_context)
        assert response["statusCode"] == status, response
        assert json.loads(response_body(response))["error"] == code


def test_docs_behind_a_rest_api_stage_point_under_the_stage(entry, lambda_context):
    """REST API events carry the stage only in requestContext.path: the docs must fetch /prod/openapi.json."""
    docs = entry.lambda_handler(api_event("v1", "GET", "/docs"), lambda_context)
    assert docs["statusCode"] == 200 and "'/prod/openapi.json'" in response_body(docs).decode()
    spec = json.loads(response_body(entry.lambda_handler(api_event("v1", "GET", "/openapi.json"), lambda_context)))
    assert spec["servers"] == [{"url": "/prod"}]
    plain = entry.lambda_handler(api_event("v2", "GET", "/docs"), lambda_context)  # $default stage: no prefix
    assert "'/openapi.json'" in response_body(plain).decode()


def test_health_states_the_limits(entry, lambda_context):
    health = entry.lambda_handler(api_event("v2", "GET", "/health"), lambda_context)
    limits = json.loads(response_body(health))["limits"]
    assert limits["max_response_bytes"] == 6 * 1024 * 1024 and limits["max_image_pixels"] > 0
