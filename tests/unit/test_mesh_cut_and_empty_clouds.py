"""Meshes cut along their diagonals as along their edges and hold only the vertices of their triangles; clouds
without points and meshes without triangles are refused rather than written as files no glTF reader accepts."""

from __future__ import annotations

import io

import numpy as np
import pytest

from handler import geometry, pointcloud
from handler.errors import EmptyGeometry
from handler.geometry import Options, TooManyFaces

THRESHOLD = 0.05


def cloud_from_depth(depth: np.ndarray, max_faces: int | None = None, **options) -> geometry.PointCloud:
    """Back-project a depth grid exactly (``scale`` 1: the prediction is the inverse depth), grey colours."""
    height, width = depth.shape
    options = Options(fx=100.0, scale=1.0, max_points=height * width, **options)
    colors = np.full((height, width, 3), 128, np.uint8)
    return geometry.back_project((1 / depth).astype(np.float32), colors, width, height, 1, options, None, max_faces)


def smoothed_diagonal_step(height: int = 12, width: int = 16) -> np.ndarray:
    """A step in depth along the image's diagonal, smoothed over one pixel as a network's prediction is: every
    horizontal and vertical neighbour differs by 4 %, under the 5 % threshold, while the cells' top-right to
    bottom-left diagonals span 8.2 %."""
    rows, cols = np.mgrid[0:height, 0:width]
    level = np.clip(rows - cols, -1, 1) + 1  # 0, 1, 2 across the band where rows - cols is -1, 0, 1
    return 2.0 * 1.04 ** level.astype(np.float64)


def relative_jumps(cloud: geometry.PointCloud) -> np.ndarray:
    """Each triangle's three edges' relative depth differences, (M, 3)."""
    z = -cloud.positions[:, 2].astype(np.float64)[cloud.faces]
    pairs = [(0, 1), (1, 2), (2, 0)]
    return np.stack([np.abs(z[:, i] - z[:, j]) / np.minimum(z[:, i], z[:, j]) for i, j in pairs], axis=1)


def test_no_triangle_edge_or_diagonal_spans_more_than_the_threshold():
    depth = smoothed_diagonal_step()
    mesh = cloud_from_depth(depth, mesh=True, edge_threshold=THRESHOLD)
    assert len(mesh.faces) > 0
    assert relative_jumps(mesh).max() <= THRESHOLD + 1e-6
    # the cut keeps the flat parts on both sides of the step whole
    whole = cloud_from_depth(depth, mesh=True)
    assert len(mesh.faces) >= len(whole.faces) - 2 * 2 * (min(depth.shape) + 1)
    assert relative_jumps(whole).max() > THRESHOLD, "without the cut, the step's cells are joined"


def test_a_mesh_file_holds_only_the_vertices_of_its_triangles():
    """A hole (one invalid pixel) leaves the first column's points in no cell with four corners."""
    depth = np.full((3, 4), 2.0)
    depth[1, 1] = np.inf  # prediction 0: no positive finite depth, the pixel is dropped
    mesh = cloud_from_depth(depth, mesh=True)
    assert len(mesh.faces) == 2 * 2  # the two cells of columns 2-3
    assert len(mesh) == 6 and mesh.colors.shape == (6, 3)
    assert sorted(set(mesh.faces.ravel().tolist())) == list(range(6))
    np.testing.assert_allclose(-mesh.positions[:, 2], 2.0)
    from plyfile import PlyData

    ply = PlyData.read(io.BytesIO(pointcloud.ply_bytes(mesh)))
    assert ply["vertex"].count == 6 and ply["face"].count == 4
    # a cloud (no mesh) keeps every valid point
    assert len(cloud_from_depth(depth)) == 11


def test_a_mesh_over_the_triangle_bound_is_refused_when_counted_before_any_file_is_made():
    """The bound counts exactly the triangles the mesh would have (the edge and diagonal cut included), and an
    over-bound mesh never becomes a cloud, so there is nothing an encoder could be called with."""
    depth = smoothed_diagonal_step()
    made = len(cloud_from_depth(depth, mesh=True, edge_threshold=THRESHOLD).faces)
    assert len(cloud_from_depth(depth, made, mesh=True, edge_threshold=THRESHOLD).faces) == made
    with pytest.raises(TooManyFaces, match=f"the mesh has {made} triangles; at most {made - 1} may be made") as refused:
        cloud_from_depth(depth, made - 1, mesh=True, edge_threshold=THRESHOLD)
    assert (refused.value.count, refused.value.limit) == (made, made - 1)
    assert len(cloud_from_depth(depth, 0)) == depth.size  # points alone make no triangle to bound


@pytest.mark.parametrize("fmt", ["ply", "glb"])
def test_a_cloud_without_points_is_refused(fmt):
    cloud = geometry.back_project(
        np.ones((4, 5), np.float32), np.zeros((4, 5, 3), np.uint8), 5, 4, 1, Options(scale=-1.0, shift=0.0)
    )
    assert len(cloud) == 0
    with pytest.raises(EmptyGeometry, match="no point is left to write") as refused:
        pointcloud.encode(cloud, fmt)
    assert (refused.value.status_code, refused.value.code) == (422, "empty_point_cloud")


@pytest.mark.parametrize("fmt", ["ply", "glb"])
def test_a_mesh_without_triangles_is_refused(fmt):
    """One row of points (a one-row grid, as --max-points 1 gives) makes no triangle."""
    mesh = cloud_from_depth(np.full((1, 6), 3.0), mesh=True)
    with pytest.raises(EmptyGeometry, match="the mesh has no triangles"):
        pointcloud.encode(mesh, fmt)


def test_one_point_is_a_file():
    cloud = cloud_from_depth(np.full((1, 1), 3.0))
    assert len(cloud) == 1
    for fmt in ("ply", "glb"):
        assert pointcloud.encode(cloud, fmt)
