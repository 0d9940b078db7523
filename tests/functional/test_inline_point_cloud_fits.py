"""A point cloud returned inline at the default budget fits in Lambda's 6 MB response beside the heatmap, for the
photos people take: a 12.8-megapixel phone photo (4128 × 3096, whose default budget lands just under the inline
point limit), through the real Lambda entry as an HTTP API event, base64 JSON in and out, in both formats.

The photograph is scikit-image's sample ``chelsea`` scaled to the phone's size (its heatmap is as large as a real
photo's: the depth is estimated at 256 pixels and scaled up, so it is smooth at any size)."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from handler.config import LAMBDA_MAX_RESPONSE_BYTES
from localdev.events import api_event, response_body

PHONE = (4128, 3096)


@pytest.fixture(scope="module")
def phone_photo() -> bytes:
    from skimage import data

    image = Image.fromarray(data.chelsea()).resize(PHONE, Image.BICUBIC)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["glb", "ply"])
def test_the_default_inline_point_cloud_fits_the_response(entry, lambda_context, phone_photo, fmt):
    body = json.dumps({"image": base64.b64encode(phone_photo).decode(), "output": "inline", "point_cloud": fmt})
    response = entry.lambda_handler(api_event("v2", "POST", "/depth", body, "application/json"), lambda_context)
    answer = json.loads(response_body(response))
    assert response["statusCode"] == 200, answer
    assert answer["point_cloud"]["format"] == fmt and "point_cloud_base64" in answer
    assert (answer["width"], answer["height"]) == PHONE
    assert len(json.dumps(response).encode()) <= LAMBDA_MAX_RESPONSE_BYTES
