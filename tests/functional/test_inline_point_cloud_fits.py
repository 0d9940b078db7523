"""A point cloud returned inline at the default budget fits in Lambda's 6 MB response beside the heatmap, for the
photos people take: a 12.8-megapixel phone photo (4128 × 3096, whose default budget lands just under the inline
point limit), through the real Lambda entry as an HTTP API event, base64 JSON in and out, in both formats.

The photograph is scikit-image's sample ``chelsea`` scaled to the phone's size (its heatmap is as large as a real
photo's: the depth is estimated at 256 pixels and scaled up, so it is smooth at any size).

A budget asked for whose points alone cannot fit, or for a mesh whose points and triangles cannot, is refused from the
image's header, before the model runs (the model's runs counted by GET /health), naming the largest budget that fits;
the one it names is served."""

from __future__ import annotations

import base64
import io
import json
import re

import pytest
from PIL import Image

from handler import pointcloud
from handler.config import LAMBDA_MAX_RESPONSE_BYTES
from support import Answer, api_event, assert_clean_error, b64, call, encode, png_claiming, response_body, scene

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


# ---------------------------------------------------------------------------------------- budgets that cannot fit

# Every second pixel of it (stride 2) is 420 000 points: more than either format fits in the response as base64.
LARGE = (1400, 1200)
ROW = 1024  # the width of the images that find the bound to a row of pixels
FITS = re.compile(r'"max_points" of at most (\d+)')


@pytest.fixture(scope="module")
def large_photo() -> bytes:
    return encode(scene(*LARGE, seed=11))


def images_processed(entry, lambda_context) -> int:
    """The model's runs in this container, as GET /health counts them."""
    return call(entry.lambda_handler, lambda_context, "v2", "GET", "/health").json()["images_processed"]


def inline_cloud(entry, lambda_context, image: bytes, fmt: str, **geometry) -> tuple[Answer, bool]:
    """POST /depth for ``image`` with a point cloud inline only, through the Lambda entry; and whether the model ran."""
    body = {"image": b64(image), "output": "inline", "point_cloud": fmt, "geometry": geometry}
    before = images_processed(entry, lambda_context)
    answer = call(entry.lambda_handler, lambda_context, "v2", "POST", "/depth", json.dumps(body), "application/json")
    return answer, images_processed(entry, lambda_context) > before


@pytest.mark.parametrize("fmt", ["glb", "ply"])
def test_a_budget_whose_points_cannot_fit_inline_is_refused_before_the_model_runs(
    entry, lambda_context, large_photo, fmt
):
    answer, ran = inline_cloud(entry, lambda_context, large_photo, fmt, max_points=500_000)
    body = assert_clean_error(answer, 413, "payload_too_large", "420000 points", "6 MB response", '"s3"')
    assert not ran, "the refusal came after the model's run"
    fitting = int(FITS.search(body["message"])[1])
    assert fitting < 420_000

    # the budget the refusal names is served, from the same photo: its grid (every third pixel) fits
    answer, ran = inline_cloud(entry, lambda_context, large_photo, fmt, max_points=fitting)
    assert answer.status == 200 and ran, answer.body[:500]
    served = answer.json()
    assert served["point_cloud"]["format"] == fmt and served["point_cloud"]["points"] <= fitting
    assert base64.b64decode(served["point_cloud_base64"])


@pytest.mark.parametrize("fmt", ["glb", "ply"])
def test_the_bound_is_the_points_as_base64_within_a_row_of_pixels(entry, lambda_context, large_photo, fmt):
    """Images of as many pixels as the named bound allows, and of one row more, each with a budget that keeps every
    pixel: the first is decoded and run (and answered 413 after rendering, beside its heatmap, or 200), the second
    refused before."""
    refusal, _ = inline_cloud(entry, lambda_context, large_photo, fmt, max_points=500_000)
    fitting = int(FITS.search(refusal.json()["message"])[1])
    rows = fitting // ROW
    answer, ran = inline_cloud(entry, lambda_context, encode(scene(ROW, rows, seed=2)), fmt, max_points=500_000)
    assert ran, answer.body[:500]
    if answer.status != 200:
        assert_clean_error(answer, 413, "payload_too_large", "beside the heatmap")
    answer, ran = inline_cloud(entry, lambda_context, encode(scene(ROW, rows + 1, seed=2)), fmt, max_points=500_000)
    assert_clean_error(answer, 413, "payload_too_large", f"{ROW * (rows + 1)} points", f"at most {fitting}")
    assert not ran


@pytest.mark.parametrize("mesh", [False, True])
def test_the_header_alone_is_enough_to_refuse_it(entry, lambda_context, mesh):
    """A PNG of a header and a few bytes, claiming the large photo's size: refused as too large for the response,
    not as a truncated image (which only the decode finds). A mesh holds the same points, and its triangles."""
    answer, ran = inline_cloud(entry, lambda_context, png_claiming(*LARGE), "glb", max_points=500_000, mesh=mesh)
    assert_clean_error(answer, 413, "payload_too_large", "420000 points")
    assert not ran


# A 1024 x 200 image, every pixel a point: 204 800 points fit in the response in either format, but not with the mesh's
# 407 154 triangles (2 a grid cell).
MESH_ROWS = 200


@pytest.mark.parametrize("fmt", ["glb", "ply"])
def test_a_mesh_whose_triangles_cannot_fit_inline_is_refused_before_the_model_runs(entry, lambda_context, fmt):
    image = encode(scene(ROW, MESH_ROWS, seed=5))
    answer, ran = inline_cloud(entry, lambda_context, image, fmt, max_points=500_000, mesh=True)
    faces = 2 * (ROW - 1) * (MESH_ROWS - 1)
    body = assert_clean_error(answer, 413, "payload_too_large", f"{faces} triangles", "6 MB response", '"s3"')
    assert not ran, "the refusal came after the model's run"

    # the budget the refusal names is served as a mesh, from the same image
    fitting = int(FITS.search(body["message"])[1])
    answer, ran = inline_cloud(entry, lambda_context, image, fmt, max_points=fitting, mesh=True)
    assert answer.status == 200 and ran, answer.body[:500]
    served = answer.json()["point_cloud"]
    assert served["points"] <= fitting and served["faces"] > 0


@pytest.mark.parametrize("fmt", ["glb", "ply"])
def test_the_bound_of_a_mesh_is_its_points_and_triangles_as_base64_within_a_row_of_pixels(entry, lambda_context, fmt):
    """The most rows of a 1024-wide image whose mesh (every pixel a point, two triangles a grid cell) fits in the
    response as base64, by the bytes each point and triangle takes in the file: decoded and run; one row more: refused
    before."""

    def body_bytes(rows: int) -> int:
        points, faces = ROW * rows, 2 * (ROW - 1) * (rows - 1)
        return points * pointcloud.POINT_BYTES[fmt] + faces * pointcloud.FACE_BYTES[fmt]

    budget = LAMBDA_MAX_RESPONSE_BYTES - 64 * 1024  # the response's room for base64 (4 characters for 3 bytes)
    rows = max(r for r in range(2, 400) if 4 * -(-body_bytes(r) // 3) <= budget)
    image = encode(scene(ROW, rows, seed=4))
    answer, ran = inline_cloud(entry, lambda_context, image, fmt, max_points=500_000, mesh=True)
    assert ran, answer.body[:500]
    if answer.status != 200:
        assert_clean_error(answer, 413, "payload_too_large", "beside the heatmap")
    image = encode(scene(ROW, rows + 1, seed=4))
    answer, ran = inline_cloud(entry, lambda_context, image, fmt, max_points=500_000, mesh=True)
    assert_clean_error(answer, 413, "payload_too_large", f"{2 * (ROW - 1) * rows} triangles")
    assert not ran


@pytest.mark.parametrize("geometry", [{"edge_threshold": 0.05}, {"scale": 1.0}], ids=["edges", "scale"])
def test_a_cloud_that_may_lose_points_is_left_to_the_check_after_rendering(
    entry, lambda_context, large_photo, geometry
):
    """An edge threshold, or a scale and shift, drop points by their depth: how many are left is known only once
    the model has run, so the request runs, and is answered by what it made (near/far alone keep every point)."""
    answer, ran = inline_cloud(entry, lambda_context, large_photo, "glb", max_points=500_000, **geometry)
    assert ran, answer.body[:500]
    if answer.status == 200:
        assert answer.json()["point_cloud"]["points"] < 420_000
    else:
        assert_clean_error(answer, 413, "payload_too_large", "beside the heatmap")
