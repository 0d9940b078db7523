"""Point clouds from every entry: the CLI (``--ply --glb``), POST /depth (``"point_cloud"``) and the S3 trigger
(``WRITE_POINT_CLOUD``) give the same points for the same photo, with the real baked model and a real S3 endpoint."""

from __future__ import annotations

import base64
import io
import math
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from handler import geometry, pointcloud
from handler.estimator import DepthEstimator
from support import ROOT, encode, jpeg_with_exif, list_keys, read_glb_points, read_ply_points, s3_event, scene

FOCAL_35MM = 35


@pytest.fixture(scope="module")
def photo() -> bytes:
    """A 320 x 240 JPEG whose EXIF gives a 35 mm-equivalent focal length (used for the intrinsics)."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = FOCAL_35MM
    buf = io.BytesIO()
    Image.fromarray(scene(320, 240, seed=11)).save(buf, "JPEG", quality=92, exif=exif)
    return buf.getvalue()


@pytest.fixture(scope="module")
def expected(estimator, photo) -> geometry.PointCloud:
    """The points the core makes with the documented defaults."""
    result = estimator.estimate(photo, max_points=geometry.DEFAULT_MAX_POINTS)
    return estimator.point_cloud(result, "ply", geometry.Options())[1]


def same_points(got: tuple[np.ndarray, np.ndarray], cloud: geometry.PointCloud, exact: bool = True) -> None:
    positions, colors = got
    np.testing.assert_array_equal(colors, cloud.colors)
    if exact:
        np.testing.assert_array_equal(positions, cloud.positions)
    else:  # another process: ONNX Runtime may sum in another order
        np.testing.assert_allclose(positions, cloud.positions, rtol=1e-4, atol=1e-5)


def test_the_core_uses_every_pixel_the_exif_focal_length_and_the_near_far_defaults(expected):
    assert len(expected) == 320 * 240 and expected.stride == 1
    assert expected.intrinsics.source == "exif-35mm"
    assert expected.intrinsics.fx == pytest.approx(FOCAL_35MM * 400 / math.hypot(36, 24))
    depth = -expected.positions[:, 2]
    assert depth.min() == pytest.approx(1.0, rel=1e-5) and depth.max() == pytest.approx(10.0, rel=1e-5)


# ------------------------------------------------------------------------------------------------ CLI


def run_cli(tmp_path, photo: bytes, out, model_dir, *flags: str) -> subprocess.CompletedProcess:
    """`python -m handler predict photo.jpg --out OUT FLAGS` on ``photo`` written to ``tmp_path``."""
    (tmp_path / "photo.jpg").write_bytes(photo)
    return subprocess.run(
        [sys.executable, "-m", "handler", "predict", str(tmp_path / "photo.jpg"), "--out", str(out), *flags]
        + ["--model-dir", str(model_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_writes_ply_and_glb_with_the_same_points(tmp_path, baked_model_dir, photo, expected):
    out = tmp_path / "out"
    done = run_cli(tmp_path, photo, out, baked_model_dir, "--ply", "--glb")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["photo.jpg.glb", "photo.jpg.pfm", "photo.jpg.ply", "photo.jpg.png"]
    assert f"{out / 'photo.jpg.ply'}, {out / 'photo.jpg.glb'} (320x240" in done.stdout
    same_points(read_ply_points((out / "photo.jpg.ply").read_bytes()), expected, exact=False)
    same_points(read_glb_points((out / "photo.jpg.glb").read_bytes()), expected, exact=False)


def test_cli_geometry_options_and_refusals(tmp_path, baked_model_dir, photo):
    (tmp_path / "p.jpg").write_bytes(photo)
    args = [sys.executable, "-m", "handler", "predict", str(tmp_path / "p.jpg"), "--out", str(tmp_path / "o")]
    args += ["--model-dir", str(baked_model_dir), "--ply"]
    done = subprocess.run([*args, "--max-points", "5000", "--near", "2", "--far", "4"], capture_output=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    positions, _ = read_ply_points((tmp_path / "o" / "p.jpg.ply").read_bytes())
    assert len(positions) == 80 * 60  # stride 4
    assert -positions[:, 2].max() == pytest.approx(2.0, rel=1e-5) and -positions[:, 2].min() == pytest.approx(4.0)
    for bad in (["--near", "5", "--far", "4"], ["--max-points", "0"], ["--fov", "-3"]):
        refused = subprocess.run([*args, *bad], capture_output=True, text=True, cwd=ROOT)
        assert refused.returncode == 2 and "error:" in refused.stderr, bad


# ------------------------------------------------------------------------------------------------ API


def test_api_returns_the_same_points_inline(inline_client, photo, expected):
    for fmt, read in (("ply", read_ply_points), ("glb", read_glb_points)):
        body = {"image": base64.b64encode(photo).decode(), "point_cloud": fmt}
        response = inline_client.post("/depth", json=body)
        assert response.status_code == 200, response.text
        res = response.json()
        assert res["point_cloud"] == {
            "format": fmt,
            "points": 320 * 240,
            "stride": 1,
            "fx": round(expected.intrinsics.fx, 4),
            "fy": round(expected.intrinsics.fy, 4),
            "cx": 160.0,
            "cy": 120.0,
            "intrinsics": "exif-35mm",
        }
        assert {"points", "encode_points"} <= set(res["timings"])
        same_points(read(base64.b64decode(res["point_cloud_base64"])), expected)


def test_api_geometry_options_are_applied(inline_client, photo, estimator):
    geometry_fields = {"max_points": 1000, "fov": 90, "scale": 2.0, "shift": 0.5, "edge_threshold": 0.2}
    body = {"image": base64.b64encode(photo).decode(), "point_cloud": "glb", "geometry": geometry_fields}
    res = inline_client.post("/depth", json=body).json()
    assert res["point_cloud"]["stride"] == 9 and res["point_cloud"]["intrinsics"] == "fov"
    assert res["point_cloud"]["fx"] == pytest.approx(160.0)
    options = geometry.Options(**geometry_fields)
    cloud = estimator.point_cloud(estimator.estimate(photo, max_points=1000), "glb", options)[1]
    same_points(read_glb_points(base64.b64decode(res["point_cloud_base64"])), cloud)
    assert res["point_cloud"]["points"] == len(cloud) <= 1000


def test_api_writes_the_point_cloud_to_s3_with_the_heatmaps_metadata(client, s3, output_bucket, photo, expected):
    body = {"image": base64.b64encode(photo).decode(), "point_cloud": "ply", "output": "s3"}
    res = client.post("/depth", json=body).json()
    assert "point_cloud_base64" not in res and "heatmap_png_base64" not in res
    key = res["point_cloud_s3"]["key"]
    assert key.startswith("depth/api/") and key.endswith(".ply")
    assert key.removesuffix(".ply") == res["heatmap_s3"]["key"].removesuffix(".png")
    obj = s3.get_object(Bucket=output_bucket, Key=key)
    heatmap = s3.head_object(Bucket=output_bucket, Key=res["heatmap_s3"]["key"])
    assert obj["ContentType"] == "application/x-ply" and obj["Metadata"] == heatmap["Metadata"]
    same_points(read_ply_points(obj["Body"].read()), expected)


def test_api_point_cloud_too_large_inline_is_413_and_s3_only_with_both(client, inline_client):
    big = base64.b64encode(encode(scene(2000, 1500, seed=4), "JPEG", quality=80)).decode()
    body = {"image": big, "point_cloud": "ply", "geometry": {"max_points": 500_000}}  # MAX_REQUEST_POINTS
    refused = inline_client.post("/depth", json=body)
    assert refused.status_code == 413 and "max_points" in refused.json()["message"]
    # the default inline budget fits
    fits = inline_client.post("/depth", json={"image": big, "point_cloud": "ply"}).json()
    assert fits["point_cloud"]["points"] <= 120_000 and fits["point_cloud"]["stride"] == 5
    both = client.post("/depth", json={**body, "output": "both"}).json()
    assert "point_cloud_base64" not in both and both["point_cloud_s3"]["key"].endswith(".ply")
    assert both["point_cloud"]["points"] == 667 * 500 and "heatmap_png_base64" in both  # stride 3


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"point_cloud": "obj"}, "point_cloud"),
        ({"point_cloud": "ply", "geometry": {"nearest": 1}}, "geometry has 1 unknown field"),
        ({"point_cloud": "ply", "geometry": {"near": 5, "far": 2}}, "near must be less than far"),
        ({"point_cloud": "ply", "geometry": {"max_points": 0}}, "max_points"),
        ({"point_cloud": "ply", "geometry": {"fov": 180}}, "fov"),
        ({"geometry": {"near": 2}}, "'geometry' needs 'point_cloud'"),
    ],
)
def test_api_refuses_bad_point_cloud_requests(inline_client, photo, extra, words):
    response = inline_client.post("/depth", json={"image": base64.b64encode(photo).decode(), **extra})
    assert response.status_code == 422
    assert words in response.text


def test_api_refuses_another_format_naming_the_formats(inline_client, photo):
    response = inline_client.post("/depth", json={"image": base64.b64encode(photo).decode(), "point_cloud": "obj"})
    body = response.json()
    assert response.status_code == 422 and body["error"] == "validation_error"
    assert body["message"].startswith("point_cloud: ")
    assert all(f"'{fmt}'" in body["message"] for fmt in pointcloud.FORMATS), body["message"]


# ------------------------------------------------------------------------------------------------ S3 trigger


@pytest.mark.parametrize("fmt", ["ply", "glb"])
def test_s3_trigger_writes_the_point_cloud_beside_the_heatmap(
    fmt, entry, lambda_context, monkeypatch, depth_model, s3, input_bucket, output_bucket, photo, expected
):
    settings = entry.estimator.settings.model_copy(update={"write_point_cloud": fmt})
    monkeypatch.setattr(entry, "estimator", DepthEstimator(settings, depth_model))
    key = f"uploads/points-{fmt}/photo.jpg"
    s3.put_object(Bucket=input_bucket, Key=key, Body=photo)
    summary = entry.lambda_handler(s3_event(input_bucket, key), lambda_context)
    assert summary["written"][0][fmt] == f"depth/{key}.{fmt}"
    assert list_keys(s3, output_bucket, f"depth/uploads/points-{fmt}/") == sorted(
        [
            f"depth/{key}.{fmt}",
            f"depth/{key}.pfm",
            f"depth/{key}.png",
        ]
    )
    obj = s3.get_object(Bucket=output_bucket, Key=f"depth/{key}.{fmt}")
    heatmap = s3.head_object(Bucket=output_bucket, Key=f"depth/{key}.png")
    assert obj["ContentType"] == pointcloud.FORMATS[fmt][1] and obj["Metadata"] == heatmap["Metadata"]
    assert obj["Metadata"]["source-key"] == key
    read = read_ply_points if fmt == "ply" else read_glb_points
    same_points(read(obj["Body"].read()), expected)


def test_s3_trigger_writes_no_point_cloud_by_default(entry, lambda_context, s3, input_bucket, output_bucket, photo):
    assert entry.estimator.settings.write_point_cloud == "none"
    key = "uploads/points-none/photo.jpg"
    s3.put_object(Bucket=input_bucket, Key=key, Body=photo)
    entry.lambda_handler(s3_event(input_bucket, key), lambda_context)
    assert list_keys(s3, output_bucket, "depth/uploads/points-none/") == [f"depth/{key}.pfm", f"depth/{key}.png"]


def test_api_and_cli_mesh_over_the_same_points(inline_client, tmp_path, baked_model_dir, photo, expected):
    from plyfile import PlyData
    from pygltflib import GLTF2, TRIANGLES

    body = {"image": base64.b64encode(photo).decode(), "point_cloud": "ply", "geometry": {"mesh": True}}
    res = inline_client.post("/depth", json=body).json()
    assert res["point_cloud"]["points"] == 320 * 240 and res["point_cloud"]["faces"] == 2 * 319 * 239
    data = base64.b64decode(res["point_cloud_base64"])
    same_points(read_ply_points(data), expected)
    assert PlyData.read(io.BytesIO(data))["face"].count == 2 * 319 * 239

    done = run_cli(tmp_path, photo, tmp_path / "o", baked_model_dir, "--glb", "--mesh")
    assert done.returncode == 0, done.stderr
    glb = (tmp_path / "o" / "photo.jpg.glb").read_bytes()
    gltf = GLTF2.load_from_bytes(glb)
    assert gltf.meshes[0].primitives[0].mode == TRIANGLES
    assert gltf.accessors[gltf.meshes[0].primitives[0].indices].count == 3 * 2 * 319 * 239
    same_points(read_glb_points(glb), expected, exact=False)


# ------------------------------------------------------------------------------------------------ EXIF


def test_the_estimator_uses_the_photos_exif_focal_length(estimator):
    data = jpeg_with_exif(400, 300, **{"0xa405": 50})
    result = estimator.estimate(data, max_points=10_000)
    assert result.stride == 4 and result.colors.shape == (75, 100, 3)
    _, cloud = estimator.point_cloud(result, "ply", geometry.Options(max_points=10_000))
    assert cloud.intrinsics.source == "exif-35mm"
    assert cloud.intrinsics.fx == pytest.approx(50 * 500 / math.hypot(36, 24))
    # the colours are the photo's (flat 90, 120, 150, give or take JPEG)
    assert np.abs(cloud.colors.astype(int) - (90, 120, 150)).max() <= 3


def test_the_photos_orientation_is_applied_before_the_intrinsics(estimator):
    """EXIF Orientation 6 (rotated 90°): the cloud is of the upright 300 x 400 image; the focal length is the lens's."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0xA405] = 28
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), (10, 200, 30)).save(buf, "JPEG", exif=exif)
    result = estimator.estimate(buf.getvalue(), max_points=300 * 400)
    assert (result.width, result.height) == (300, 400) and result.colors.shape == (400, 300, 3)
    cloud = estimator.point_cloud(result, "glb", geometry.Options())[1]
    cam = cloud.intrinsics
    assert (cam.cx, cam.cy, cam.source) == (150, 200, "exif-35mm")
    assert cam.fx == pytest.approx(28 * 500 / math.hypot(36, 24))
    assert len(cloud) == 300 * 400


# ------------------------------------------------------------------------------------------------ conventions


@pytest.mark.parametrize("stride", [1, 3])
def test_an_opencv_principal_point_is_given_plus_half_a_pixel(stride):
    """OpenCV / Open3D put pixel (u, v)'s centre at (u, v); this project at (u + 0.5, v + 0.5) (the image's corner
    at 0). With cx = cx_cv + 0.5, cy = cy_cv + 0.5, OpenCV's own projection with K(fx, fy, cx_cv, cy_cv) puts
    every point back on its pixel's integer index."""
    height, width = 30, 40
    fx, fy, cx_cv, cy_cv = 52.0, 47.0, 17.3, 13.8
    rng = np.random.default_rng(3)
    grid = geometry.sample(rng.uniform(0.1, 0.5, (height, width)).astype(np.float32), stride)
    colors = np.zeros((*grid.shape, 3), np.uint8)
    options = geometry.Options(scale=1.0, fx=fx, fy=fy, cx=cx_cv + 0.5, cy=cy_cv + 0.5, max_points=height * width)
    cloud = geometry.back_project(grid, colors, width, height, stride, options)
    assert len(cloud) == grid.size
    opencv_frame = cloud.positions.astype(np.float64) * (1, -1, -1)  # y down, z forward
    k = np.array([[fx, 0, cx_cv], [0, fy, cy_cv], [0, 0, 1]])
    projected, _ = cv2.projectPoints(opencv_frame, np.zeros(3), np.zeros(3), k, None)
    rows, cols = np.mgrid[0:height:stride, 0:width:stride]
    expected = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float64)
    np.testing.assert_allclose(projected.reshape(-1, 2), expected, atol=2e-3)
