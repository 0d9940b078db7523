"""Point clouds from relative inverse depth (handler.geometry) and their files (handler.pointcloud), on real geometry.

A synthetic scene with known depth — a tilted plane and a sphere in front of it, ray-cast through a pinhole camera —
gives the inverse depth MiDaS would ideally predict (up to an unknown scale and shift); back-projecting it must give
back the plane and the sphere. The files are read back by independent readers: ``plyfile`` and ``pygltflib``.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from handler import geometry, imaging, pointcloud
from handler.errors import EmptyGeometry
from handler.geometry import Options
from support import jpeg_with_exif, read_glb_points, read_ply_points
from support.readers import linear_to_srgb8

W, H, F = 320, 240, 260.0  # image size and focal length in pixels of the synthetic camera
PLANE_N, PLANE_D = np.array([0.0, 0.45, 0.89]) / np.linalg.norm([0.0, 0.45, 0.89]), -6.0  # n·X = d
SPHERE_C, SPHERE_R = np.array([0.4, -0.2, -3.5]), 0.8
PLANE_RGB, SPHERE_RGB = (200, 60, 40), (30, 90, 220)


def rays() -> np.ndarray:
    """Per pixel, the camera-frame ray through its centre, scaled so that its z is -1 (depth Z = t)."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64) + 0.5
    return np.stack([(u - W / 2) / F, -(v - H / 2) / F, -np.ones_like(u)], axis=-1)


def synthetic_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(depth Z (H, W), colours (H, W, 3), True where the sphere is seen)."""
    r = rays()
    t_plane = PLANE_D / (r @ PLANE_N)
    a = (r * r).sum(-1)
    b = -2 * (r @ SPHERE_C)
    c = SPHERE_C @ SPHERE_C - SPHERE_R**2
    disc = b * b - 4 * a * c
    t_sphere = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf)
    on_sphere = t_sphere < t_plane
    depth = np.where(on_sphere, t_sphere, t_plane)
    colors = np.where(on_sphere[..., None], np.array(SPHERE_RGB, np.uint8), np.array(PLANE_RGB, np.uint8))
    return depth, colors.astype(np.uint8), on_sphere


def fit_plane(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Least-squares plane: (unit normal, offset d with n·X = d, RMS residual)."""
    centre = points.mean(0)
    _, _, vt = np.linalg.svd(points - centre, full_matrices=False)
    n = vt[-1] * np.sign(vt[-1] @ PLANE_N)
    residual = (points - centre) @ n
    return n, float(n @ centre), float(np.sqrt((residual**2).mean()))


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Algebraic least-squares sphere: |X|² = 2 C·X + (R² - |C|²)."""
    a = np.c_[2 * points, np.ones(len(points))]
    sol, *_ = np.linalg.lstsq(a, (points**2).sum(1), rcond=None)
    centre = sol[:3]
    return centre, float(np.sqrt(sol[3] + centre @ centre))


def cloud_of(prediction, colors, options: Options, stride: int = 1) -> geometry.PointCloud:
    return geometry.back_project(
        geometry.sample(prediction, stride), geometry.sample(colors, stride), W, H, stride, options
    )


# ------------------------------------------------------------------------------------------------ geometry


@pytest.mark.parametrize("mapping", ["scale-shift", "near-far"])
def test_back_projection_recovers_the_plane_and_the_sphere(mapping):
    depth, colors, on_sphere = synthetic_scene()
    # What a perfect MiDaS would predict: inverse depth up to an unknown scale and shift.
    a, b = 37.0, 4.5
    prediction = (a / depth + b).astype(np.float32)
    if mapping == "scale-shift":
        options = Options(fx=F, max_points=W * H, scale=1 / a, shift=-b / a)
    else:  # the true nearest and farthest depths as near/far planes
        options = Options(fx=F, max_points=W * H, near=float(depth.min()), far=float(depth.max()))
    cloud = cloud_of(prediction, colors, options)
    assert len(cloud) == W * H and cloud.intrinsics.source == "given"
    sphere_points = cloud.positions[on_sphere.ravel()].astype(np.float64)
    plane_points = cloud.positions[~on_sphere.ravel()].astype(np.float64)

    normal, offset, rms = fit_plane(plane_points)
    assert rms < 1e-3 and np.degrees(np.arccos(min(1.0, normal @ PLANE_N))) < 0.1
    assert offset == pytest.approx(PLANE_D, abs=5e-3)
    centre, radius = fit_sphere(sphere_points)
    np.testing.assert_allclose(centre, SPHERE_C, atol=5e-3)
    assert radius == pytest.approx(SPHERE_R, abs=5e-3)
    # every sphere point lies on the sphere; colours follow their pixels
    assert np.abs(np.linalg.norm(sphere_points - SPHERE_C, axis=1) - SPHERE_R).max() < 5e-3
    assert (cloud.colors[on_sphere.ravel()] == SPHERE_RGB).all()
    assert (cloud.colors[~on_sphere.ravel()] == PLANE_RGB).all()
    assert (cloud.positions[:, 2] < 0).all(), "the camera looks down -z"


def test_near_far_mapping_puts_the_nearest_pixel_on_near_and_the_farthest_on_far():
    prediction = np.linspace(0.2, 9.0, W * H, dtype=np.float32).reshape(H, W)  # larger = nearer
    z = geometry.depth_from_disparity(prediction, Options(near=2.0, far=50.0))
    assert z[-1, -1] == pytest.approx(2.0, rel=1e-5) and z[0, 0] == pytest.approx(50.0, rel=1e-5)
    assert (np.diff(z.ravel()) < 0).all(), "nearer (larger) inverse depth must give smaller depth"
    # defaults: 1 and 10 scene units
    default = geometry.depth_from_disparity(prediction, Options())
    assert (default.min(), default.max()) == (pytest.approx(1.0, rel=1e-5), pytest.approx(10.0, rel=1e-5))
    # a shift that makes some inverse depths negative drops those pixels instead of flipping them behind the camera
    z = geometry.depth_from_disparity(prediction, Options(scale=1.0, shift=-1.0))
    assert np.isnan(z[prediction <= 1.0]).all() and (z[prediction > 1.0] > 0).all()


def test_the_point_budget_is_an_even_stride_over_the_same_pixels():
    depth, colors, _ = synthetic_scene()
    prediction = (1 / depth).astype(np.float32)
    options = Options(fx=F, scale=1.0, max_points=5_000)
    stride = geometry.stride_for(H, W, options.max_points)
    assert stride == 4 and math.ceil(H / stride) * math.ceil(W / stride) <= 5_000
    assert math.ceil(H / (stride - 1)) * math.ceil(W / (stride - 1)) > 5_000, "the smallest stride that fits"
    full = cloud_of(prediction, colors, Options(fx=F, scale=1.0, max_points=W * H))
    budgeted = cloud_of(prediction, colors, options, stride)
    grid = np.zeros((H, W), bool)
    grid[::stride, ::stride] = True
    np.testing.assert_array_equal(budgeted.positions, full.positions[grid.ravel()])
    for h, w, budget in [(4000, 3000, 500_000), (3000, 4000, 500_000), (1, 1, 1), (7, 5, 3), (480, 640, 500_000)]:
        s = geometry.stride_for(h, w, budget)
        assert math.ceil(h / s) * math.ceil(w / s) <= budget and (
            s == 1 or math.ceil(h / (s - 1)) * math.ceil(w / (s - 1)) > budget
        )


def test_edge_threshold_drops_the_flying_pixels_between_sphere_and_plane():
    depth, colors, on_sphere = synthetic_scene()
    # A network's prediction is smooth across the silhouette: blur it, as MiDaS's upsampling does.
    blurred = np.asarray(
        Image.fromarray((1 / depth).astype(np.float32), "F").resize((W // 4, H // 4), 2).resize((W, H), 2)
    )
    options = Options(fx=F, scale=1.0, max_points=W * H)

    def off_both_surfaces(cloud) -> int:
        p = cloud.positions.astype(np.float64)
        to_plane = np.abs(p @ PLANE_N - PLANE_D)
        to_sphere = np.abs(np.linalg.norm(p - SPHERE_C, axis=1) - SPHERE_R)
        return int((np.minimum(to_plane, to_sphere) > 0.3).sum())

    everything = cloud_of(blurred, colors, options)
    cut = cloud_of(blurred, colors, Options(fx=F, scale=1.0, max_points=W * H, edge_threshold=0.03))
    assert off_both_surfaces(everything) > 200
    assert off_both_surfaces(cut) < off_both_surfaces(everything) / 10
    assert len(cut) > 0.8 * W * H, "only the silhouette goes"


# ------------------------------------------------------------------------------------------------ intrinsics


def lens(data: bytes) -> geometry.CameraExif:
    """The lens EXIF as the pipeline reads it: with the pixels, by the decode."""
    return imaging.open_image(data, max_bytes=len(data), max_pixels=50_000_000).camera


def test_intrinsics_from_exif_fov_given_and_the_default():
    # FocalLengthIn35mmFilm = 28 mm: the same diagonal field of view as 28 mm on a 36 x 24 mm frame
    data = jpeg_with_exif(4000, 3000, **{"0xa405": 28})
    exif = lens(data)
    cam = geometry.intrinsics(4000, 3000, Options(), exif)
    assert cam.source == "exif-35mm" and cam.fx == cam.fy == pytest.approx(28 * 5000 / math.hypot(36, 24))
    assert (cam.cx, cam.cy) == (2000, 1500)
    # FocalLength 4.2 mm with 400 px/mm on the sensor (FocalPlaneXResolution 4000 per cm), image downscaled 2x
    data = jpeg_with_exif(
        2000,
        1500,
        **{"0x920a": IFDRational(42, 10), "0xa20e": IFDRational(4000, 1), "0xa210": 3, "0xa002": 4000, "0xa003": 3000},
    )
    cam = geometry.intrinsics(2000, 1500, Options(), lens(data))
    assert cam.source == "exif-focal-plane" and cam.fx == pytest.approx(4.2 * 400 / 2)
    # a field of view or explicit values win over EXIF; without anything: 60° horizontal
    assert geometry.intrinsics(4000, 3000, Options(fov=90), exif).fx == pytest.approx(2000)
    given = geometry.intrinsics(4000, 3000, Options(fx=1000, cx=10, cy=20), exif)
    assert (given.fx, given.fy, given.cx, given.cy, given.source) == (1000, 1000, 10, 20, "given")
    default = geometry.intrinsics(640, 480, Options(), lens(jpeg_with_exif(640, 480)))
    assert default.source == "default-fov" and default.fx == pytest.approx(320 / math.tan(math.radians(30)))


# ------------------------------------------------------------------------------------------------ files


@pytest.fixture(scope="module")
def cloud() -> geometry.PointCloud:
    depth, colors, _ = synthetic_scene()
    return cloud_of((1 / depth).astype(np.float32), colors, Options(fx=F, scale=1.0, max_points=W * H))


def test_ply_reads_back_with_plyfile(cloud):
    from plyfile import PlyData

    data = pointcloud.ply_bytes(cloud)
    ply = PlyData.read(io.BytesIO(data))
    assert ply.text is False and ply.byte_order == "<"
    vertex = ply["vertex"]
    assert vertex.count == len(cloud) == W * H
    assert [(p.name, p.val_dtype) for p in vertex.properties] == [
        ("x", "f4"),
        ("y", "f4"),
        ("z", "f4"),
        ("red", "u1"),
        ("green", "u1"),
        ("blue", "u1"),
    ]
    positions = np.stack([vertex["x"], vertex["y"], vertex["z"]], 1)
    np.testing.assert_array_equal(positions, cloud.positions)
    np.testing.assert_array_equal(np.stack([vertex["red"], vertex["green"], vertex["blue"]], 1), cloud.colors)
    assert len(data) == data.index(b"end_header\n") + 11 + 15 * len(cloud)


def test_glb_reads_back_with_pygltflib(cloud):
    from pygltflib import GLTF2, POINTS

    data = pointcloud.glb_bytes(cloud)
    assert len(data) % 4 == 0
    gltf = GLTF2.load_from_bytes(data)
    primitive = gltf.meshes[0].primitives[0]
    assert primitive.mode == POINTS
    position, color = gltf.accessors[primitive.attributes.POSITION], gltf.accessors[primitive.attributes.COLOR_0]
    assert position.count == color.count == len(cloud)
    assert (position.type, position.componentType) == ("VEC3", 5126)
    assert (color.type, color.componentType, color.normalized) == ("VEC4", 5123, True)
    np.testing.assert_array_equal(position.min, cloud.positions.min(0).tolist())
    np.testing.assert_array_equal(position.max, cloud.positions.max(0).tolist())
    binary = gltf.binary_blob()
    assert gltf.buffers[0].byteLength == 20 * len(cloud) and len(binary) >= gltf.buffers[0].byteLength
    for accessor, width in ((position, 12), (color, 8)):
        view = gltf.bufferViews[accessor.bufferView]
        assert view.byteLength == width * len(cloud) and view.byteOffset % 4 == 0
    view = gltf.bufferViews[position.bufferView]
    positions = np.frombuffer(binary, "<f4", 3 * len(cloud), view.byteOffset).reshape(-1, 3)
    np.testing.assert_array_equal(positions, cloud.positions)
    view = gltf.bufferViews[color.bufferView]
    rgba = np.frombuffer(binary, "<u2", 4 * len(cloud), view.byteOffset).reshape(-1, 4)
    np.testing.assert_array_equal(linear_to_srgb8(rgba[:, :3] / 65535), cloud.colors)
    assert (rgba[:, 3] == 65535).all()
    # the project's own readers agree
    for read, encoded in (
        (read_glb_points, data),
        (read_ply_points, pointcloud.ply_bytes(cloud)),
    ):
        positions, colors = read(encoded)
        np.testing.assert_array_equal(positions, cloud.positions)
        np.testing.assert_array_equal(colors, cloud.colors)


@pytest.mark.parametrize("n", [1, 3])
def test_glb_chunks_are_padded_for_any_count(n):
    from pygltflib import GLTF2

    small = geometry.PointCloud(np.arange(3 * n, dtype=np.float32).reshape(n, 3), np.full((n, 3), 7, np.uint8), None, 1)
    data = pointcloud.glb_bytes(small)
    json_length = int.from_bytes(data[12:16], "little")
    assert len(data) % 4 == 0 and json_length % 4 == 0
    assert int.from_bytes(data[8:12], "little") == len(data)
    assert GLTF2.load_from_bytes(data).accessors[0].count == n


def test_extreme_intrinsics_drop_points_instead_of_writing_non_finite_ones():
    depth, colors, _ = synthetic_scene()
    # fx below float32's range: x and y overflow for every pixel (no pixel centre is on cx)
    cloud = cloud_of((1 / depth).astype(np.float32), colors, Options(fx=1e-40, scale=1.0, max_points=W * H))
    assert len(cloud) == 0 and cloud.colors.shape == (0, 3)
    with pytest.raises(EmptyGeometry):  # no file rather than one with non-finite bounds
        pointcloud.glb_bytes(cloud)
    # only the overflowing points go: a wide principal point leaves the columns near it
    cloud = cloud_of((1 / depth).astype(np.float32), colors, Options(fx=1e-37, cx=0.5, scale=1.0, max_points=W * H))
    assert 0 < len(cloud) < W * H and np.isfinite(cloud.positions).all()


# ------------------------------------------------------------------------------------------------ meshes


def test_mesh_joins_grid_neighbours_facing_the_camera_and_leaves_the_silhouette_open():
    depth, colors, on_sphere = synthetic_scene()
    prediction = (1 / depth).astype(np.float32)
    whole = cloud_of(prediction, colors, Options(fx=F, scale=1.0, max_points=W * H, mesh=True))
    assert whole.faces.shape == (2 * (H - 1) * (W - 1), 3) and whole.faces.dtype == np.uint32
    p = whole.positions.astype(np.float64)
    tri = p[whole.faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    towards_camera = -tri.mean(1)  # from the triangle to the camera at the origin
    assert ((normals * towards_camera).sum(1) > 0).all(), "every triangle is counter-clockwise seen from the camera"

    # With the edge cut, no triangle joins the sphere to the plane behind it.
    cut = cloud_of(prediction, colors, Options(fx=F, scale=1.0, max_points=W * H, mesh=True, edge_threshold=0.05))

    def sphere_corners(cloud) -> np.ndarray:
        on = np.linalg.norm(cloud.positions.astype(np.float64) - SPHERE_C, axis=1) < SPHERE_R + 1e-3
        return on[cloud.faces]

    assert not (sphere_corners(cut).any(1) & ~sphere_corners(cut).all(1)).any()
    assert sphere_corners(cut).all(1).sum() > 0.8 * sphere_corners(whole).all(1).sum()
    joined = sphere_corners(whole)
    assert (joined.any(1) & ~joined.all(1)).any(), "without the cut, triangles stretch from sphere to plane"


def test_mesh_files_read_back_with_plyfile_and_pygltflib():
    from plyfile import PlyData
    from pygltflib import GLTF2, TRIANGLES

    depth, colors, _ = synthetic_scene()
    mesh = cloud_of((1 / depth).astype(np.float32), colors, Options(fx=F, scale=1.0, max_points=4000, mesh=True), 4)
    assert len(mesh) == 60 * 80 and len(mesh.faces) == 2 * 59 * 79

    ply = PlyData.read(io.BytesIO(pointcloud.ply_bytes(mesh)))
    assert ply["vertex"].count == len(mesh) and ply["face"].count == len(mesh.faces)
    np.testing.assert_array_equal(np.stack(ply["face"]["vertex_indices"]), mesh.faces)
    positions, colours = read_ply_points(pointcloud.ply_bytes(mesh))
    np.testing.assert_array_equal(positions, mesh.positions)

    data = pointcloud.glb_bytes(mesh)
    gltf = GLTF2.load_from_bytes(data)
    primitive = gltf.meshes[0].primitives[0]
    assert primitive.mode == TRIANGLES and gltf.extensionsUsed == ["KHR_materials_unlit"]
    indices = gltf.accessors[primitive.indices]
    assert (indices.type, indices.componentType, indices.count) == ("SCALAR", 5125, mesh.faces.size)
    assert (indices.min, indices.max) == ([0], [len(mesh) - 1])
    view = gltf.bufferViews[indices.bufferView]
    assert view.target == 34963 and view.byteLength == 4 * mesh.faces.size and view.byteOffset % 4 == 0
    stored = np.frombuffer(gltf.binary_blob(), "<u4", mesh.faces.size, view.byteOffset).reshape(-1, 3)
    np.testing.assert_array_equal(stored, mesh.faces)
    assert gltf.buffers[0].byteLength == 20 * len(mesh) + 12 * len(mesh.faces)
