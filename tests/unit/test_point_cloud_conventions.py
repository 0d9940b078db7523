"""The conventions a reader of the files needs and cannot guess: the frame and the units, written into every PLY and
GLB, and how an explicit principal point relates to OpenCV's / Open3D's pixel-centre convention."""

from __future__ import annotations

import io
import json
import struct

import cv2
import numpy as np
import pytest

from handler import geometry, pointcloud
from handler.geometry import Options

FRAME = "x right, y up, camera at the origin looking down -z (the glTF / OpenGL camera frame)"
UNITS = "relative: MiDaS_small relative depth mapped to scene units, not metres"


def small_cloud(mesh: bool = False) -> geometry.PointCloud:
    depth = np.linspace(2.0, 3.0, 6 * 8, dtype=np.float32).reshape(6, 8)
    colors = np.full((6, 8, 3), 90, np.uint8)
    return geometry.back_project(1 / depth, colors, 8, 6, 1, Options(scale=1.0, max_points=48, mesh=mesh))


@pytest.mark.parametrize("mesh", [False, True])
def test_ply_header_comments_name_the_frame_and_the_units(mesh):
    from plyfile import PlyData

    ply = PlyData.read(io.BytesIO(pointcloud.ply_bytes(small_cloud(mesh))))
    assert ply.comments == [f"frame: {FRAME}", f"units: {UNITS}"]


@pytest.mark.parametrize("mesh", [False, True])
def test_glb_asset_extras_name_the_frame_and_the_units(mesh):
    data = pointcloud.glb_bytes(small_cloud(mesh))
    (length,) = struct.unpack_from("<I", data, 12)
    asset = json.loads(data[20 : 20 + length])["asset"]
    assert asset["extras"] == {"frame": FRAME, "units": UNITS} and asset["version"] == "2.0"


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
    options = Options(scale=1.0, fx=fx, fy=fy, cx=cx_cv + 0.5, cy=cy_cv + 0.5, max_points=height * width)
    cloud = geometry.back_project(grid, colors, width, height, stride, options)
    assert len(cloud) == grid.size
    opencv_frame = cloud.positions.astype(np.float64) * (1, -1, -1)  # y down, z forward
    k = np.array([[fx, 0, cx_cv], [0, fy, cy_cv], [0, 0, 1]])
    projected, _ = cv2.projectPoints(opencv_frame, np.zeros(3), np.zeros(3), k, None)
    rows, cols = np.mgrid[0:height:stride, 0:width:stride]
    expected = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float64)
    np.testing.assert_allclose(projected.reshape(-1, 2), expected, atol=2e-3)


def test_the_default_principal_point_is_opencvs_centre_of_the_middle_pixels():
    cam = geometry.intrinsics(40, 30, Options())
    assert (cam.cx - 0.5, cam.cy - 0.5) == ((40 - 1) / 2, (30 - 1) / 2)
