"""The conventions a reader of the files needs and cannot guess: the frame and the units, written into every PLY and
GLB, and how the default principal point relates to OpenCV's / Open3D's pixel-centre convention (an explicit one is
checked against OpenCV's own projection in tests/functional/test_point_clouds.py)."""

from __future__ import annotations

import io
import json
import struct

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


def test_the_default_principal_point_is_opencvs_centre_of_the_middle_pixels():
    cam = geometry.intrinsics(40, 30, Options())
    assert (cam.cx - 0.5, cam.cy - 0.5) == ((40 - 1) / 2, (30 - 1) / 2)
