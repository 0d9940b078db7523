"""What one point costs in each point-cloud format, as the HTTP API counts it before decoding an image (an inline
cloud whose points alone cannot fit in the response is refused from the image's size): the files' own growth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from handler import geometry, pointcloud
from handler.geometry import Options

DOCS = Path(__file__).resolve().parents[2] / "docs"


def cloud(points: int) -> geometry.PointCloud:
    depth = np.linspace(2.0, 3.0, points, dtype=np.float32).reshape(1, points)
    colors = np.full((1, points, 3), 90, np.uint8)
    return geometry.back_project(1 / depth, colors, points, 1, 1, Options(scale=1.0, max_points=points))


@pytest.mark.parametrize("fmt", list(pointcloud.FORMATS))
def test_every_format_grows_by_its_point_bytes_a_point(fmt):
    small, large = (pointcloud.encode(cloud(n), fmt) for n in (1000, 3000))
    assert len(large) - len(small) == 2000 * pointcloud.POINT_BYTES[fmt]  # headers: the same length (4 digits)


@pytest.mark.parametrize("fmt", list(pointcloud.FORMATS))
def test_the_points_alone_are_the_least_a_file_takes(fmt):
    for n in (1, 7, 1000):
        size = len(pointcloud.encode(cloud(n), fmt))
        assert n * pointcloud.POINT_BYTES[fmt] < size < n * pointcloud.POINT_BYTES[fmt] + 2048


def mesh(rows: int, cols: int, seed: int = 0) -> geometry.PointCloud:
    """The mesh of a ``rows`` x ``cols`` grid at near/far (every point kept), of random depth."""
    prediction = np.random.default_rng(seed).uniform(0.1, 5.0, (rows, cols)).astype(np.float32)
    colors = np.full((rows, cols, 3), 90, np.uint8)
    return geometry.back_project(prediction, colors, cols, rows, 1, Options(max_points=rows * cols, mesh=True))


@pytest.mark.parametrize("fmt", list(pointcloud.FORMATS))
def test_a_mesh_grows_by_its_point_and_face_bytes(fmt):
    """Two more rows of a 40-wide grid: 80 points and 2 x 2 x 39 triangles more (the JSON of a GLB's bounds may differ
    by a few digits)."""
    small, large = (len(pointcloud.encode(mesh(rows, 40), fmt)) for rows in (30, 32))
    grown = 80 * pointcloud.POINT_BYTES[fmt] + 156 * pointcloud.FACE_BYTES[fmt]
    assert abs(large - small - grown) < 16


@pytest.mark.parametrize(("height", "width", "max_points"), [(480, 640, 120_000), (3096, 4128, 120_000), (7, 5, 35)])
def test_a_mesh_that_keeps_every_point_has_the_grids_points_and_two_triangles_a_cell(height, width, max_points):
    """What the API counts from an image's header alone (near/far, no edge threshold): every point of the grid, and two
    triangles for each cell of it."""
    rows, cols = geometry.grid_shape(height, width, max_points)
    stride = geometry.stride_for(height, width, max_points)
    assert (rows, cols) == (len(range(0, height, stride)), len(range(0, width, stride)))
    cloud = mesh(rows, cols, seed=height)
    assert (len(cloud), len(cloud.faces)) == (rows * cols, 2 * (rows - 1) * (cols - 1))


def test_the_layouts_say_what_their_documents_say():
    """binary PLY: float x, y, z and uchar red, green, blue, a face a uchar count and three int indices; GLB: float32
    VEC3 POSITION, unsigned short VEC4 COLOR_0, three unsigned int indices a triangle."""
    assert pointcloud.POINT_BYTES == {"ply": 3 * 4 + 3, "glb": 3 * 4 + 4 * 2}
    assert pointcloud.FACE_BYTES == {"ply": 1 + 3 * 4, "glb": 3 * 4}


def test_the_documents_name_the_largest_inline_clouds_the_api_allows():
    from handler.routes.results import largest_inline_cloud

    def stated(**mesh: bool) -> str:
        glb, ply = largest_inline_cloud("glb", **mesh), largest_inline_cloud("ply", **mesh)
        return f"{glb:,} GLB or {ply:,} PLY points".replace(",", " ")

    for doc in ("api.md", "hardening.md"):
        text = (DOCS / doc).read_text()
        assert stated() in text, doc
        assert stated(mesh=True) in text, doc
