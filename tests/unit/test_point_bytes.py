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


def test_the_layouts_say_what_their_documents_say():
    """binary PLY: float x, y, z and uchar red, green, blue; GLB: float32 VEC3 POSITION, unsigned short VEC4 COLOR_0."""
    assert pointcloud.POINT_BYTES == {"ply": 3 * 4 + 3, "glb": 3 * 4 + 4 * 2}


def test_the_documents_name_the_largest_inline_clouds_the_api_allows():
    from handler.routes.results import largest_inline_cloud

    stated = f"{largest_inline_cloud('glb'):,} GLB or {largest_inline_cloud('ply'):,} PLY points".replace(",", " ")
    for doc in ("api.md", "hardening.md"):
        assert stated in (DOCS / doc).read_text(), doc
