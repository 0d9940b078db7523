"""Relative inverse depth + colours + intrinsics → 3D points: the one geometry every entry (CLI, API, S3) uses.

MiDaS predicts *relative inverse depth* ("disparity" up to an unknown scale and shift; larger = nearer), never metric
depth. Turning it into points takes two choices this module makes explicit (docs/point-clouds.md):

- **disparity → depth.** By default the map (the budget's grid of it) is min-max normalised to ``d`` in [0, 1]
  and mapped to depth between a near and a far plane, linearly in *inverse* depth: ``depth = 1 / (d * (1/near -
  1/far) + 1/far)``, so ``d = 1`` (the nearest pixel) lands on ``near`` and ``d = 0`` on ``far`` (defaults 1 and 10
  scene units). Who knows the scale and shift that make the raw prediction ``p`` a true inverse depth gives them
  instead: ``depth = 1 / (scale * p + shift)``. Pixels whose depth would not be positive and finite are dropped.
- **intrinsics.** A pinhole camera: ``fx, fy, cx, cy`` in pixels, given, else from a field of view, else from the
  photo's EXIF (35 mm-equivalent focal length, or focal length with the focal-plane resolution), else a 60° horizontal
  field of view; the principal point defaults to the image centre.

Points are in the glTF / OpenGL camera frame: the camera at the origin looking down −z, x to the right, y up; a pixel
(column u, row v, centre at u + 0.5, v + 0.5) at depth Z goes to ``((u + 0.5 - cx) / fx * Z, -(v + 0.5 - cy) / fy *
Z, -Z)``. A point budget keeps every ``stride``-th pixel in both directions (an even grid), and an optional edge
threshold drops pixels whose depth differs from a grid neighbour's by more than that fraction (the "rubber sheet"
between a foreground object and the background).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_MAX_POINTS = 500_000
DEFAULT_FOV_DEGREES = 60.0
DEFAULT_NEAR = 1.0
DEFAULT_FAR = 10.0
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)  # what "35 mm-equivalent" focal lengths are relative to

# EXIF tags (in the Exif IFD 0x8769)
_EXIF_IFD = 0x8769
_FOCAL_LENGTH = 0x920A
_FOCAL_LENGTH_35MM = 0xA405
_FOCAL_PLANE_X_RESOLUTION = 0xA20E
_FOCAL_PLANE_RESOLUTION_UNIT = 0xA210
_PIXEL_X_DIMENSION = 0xA002
_PIXEL_Y_DIMENSION = 0xA003
_MM_PER_UNIT = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # inch, cm, mm, µm (EXIF ResolutionUnit values)


@dataclass(frozen=True)
class CameraExif:
    """What a photo's EXIF says about its lens, in the units EXIF uses (None where absent)."""

    focal_35mm: float | None = None
    focal_mm: float | None = None
    focal_plane_px_per_mm: float | None = None  # FocalPlaneXResolution in pixels per mm
    exif_width: int | None = None  # the image width the focal-plane resolution refers to
    exif_height: int | None = None


@dataclass(frozen=True)
class Intrinsics:
    fx: float
    fy: float
    cx: float
    cy: float
    source: str  # "given", "fov", "exif-35mm", "exif-focal-plane" or "default-fov"


class TooManyFaces(ValueError):
    """A mesh of more triangles than the caller allows, refused when they are counted: before one is built. The
    caller, who set the bound, says what it is (the HTTP API: 413 naming MAX_REQUEST_FACES)."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"the mesh has {count} triangles; at most {limit} may be made")
        self.count, self.limit = count, limit


@dataclass(frozen=True)
class Options:
    """How to make points; defaults are the documented ones. Validation of user input is the callers' schema's."""

    max_points: int = DEFAULT_MAX_POINTS
    near: float = DEFAULT_NEAR
    far: float = DEFAULT_FAR
    scale: float | None = None  # with shift: depth = 1 / (scale * prediction + shift), replaces near/far
    shift: float = 0.0
    fov: float | None = None  # horizontal field of view in degrees
    fx: float | None = None
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None
    edge_threshold: float | None = None  # drop points whose relative depth jump to a neighbour exceeds this
    mesh: bool = False  # also join grid neighbours into triangles (two per grid cell whose 4 corners are kept)

    def __post_init__(self) -> None:
        if self.max_points < 1:
            raise ValueError("max_points must be at least 1")
        if not 0 < self.near < self.far:
            raise ValueError("need 0 < near < far")
        if self.fov is not None and not 0 < self.fov < 180:
            raise ValueError("fov must be between 0 and 180 degrees")

    @property
    def keeps_every_point(self) -> bool:
        """Whether the cloud keeps every point of its grid, whatever the depth: near/far map every finite prediction
        to a positive depth and no edge threshold cuts (a scale and shift may give depths that are not positive).
        A mesh then has them all as vertices too, each a corner of a cell, once the grid has two rows and columns, and
        two triangles a cell."""
        return self.scale is None and self.edge_threshold is None


@dataclass
class PointCloud:
    """``positions`` float32 (N, 3) and ``colors`` uint8 (N, 3) in the same order (row-major over the grid);
    ``faces`` uint32 (M, 3) vertex indices, counter-clockwise seen from the camera, when a mesh was asked for."""

    positions: np.ndarray
    colors: np.ndarray
    intrinsics: Intrinsics
    stride: int
    faces: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.positions.shape[0])


# ------------------------------------------------------------------------------------------------ sampling


def stride_for(height: int, width: int, max_points: int) -> int:
    """The smallest stride whose grid (every stride-th row and column, from the first) has at most ``max_points``."""
    stride = max(1, math.isqrt(max(0, height * width // max_points)))
    while math.prod(_grid(height, width, stride)) > max_points:
        stride += 1
    return stride


def grid_shape(height: int, width: int, max_points: int) -> tuple[int, int]:
    """The rows and columns of the grid :func:`stride_for` picks: known from the image's size alone, before any pixel
    is decoded. A cloud holds at most their product, and where :attr:`Options.keeps_every_point` exactly that, and a
    mesh two triangles a cell of the grid."""
    return _grid(height, width, stride_for(height, width, max_points))


def grid_triangles(rows: int, cols: int) -> int:
    """The most triangles a mesh of a ``rows`` x ``cols`` grid has: two a cell (:func:`grid_faces`), all kept."""
    return 2 * max(0, rows - 1) * max(0, cols - 1)


def _grid(height: int, width: int, stride: int) -> tuple[int, int]:
    return -(-height // stride), -(-width // stride)


def sample(array: np.ndarray, stride: int) -> np.ndarray:
    """Every ``stride``-th row and column as a compact copy (a view would keep the whole array alive)."""
    return np.ascontiguousarray(array[::stride, ::stride])


# ------------------------------------------------------------------------------------------------ intrinsics


def read_camera_exif(exif) -> CameraExif:
    """A Pillow ``Image.Exif`` → the lens fields (missing or malformed values are None)."""
    try:
        ifd = exif.get_ifd(_EXIF_IFD)
    except Exception:  # a malformed IFD: no lens information
        return CameraExif()

    def number(tag: int) -> float | None:
        value = ifd.get(tag, exif.get(tag))
        try:
            value = float(value)
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        return value if math.isfinite(value) and value > 0 else None

    px_per_mm = None
    resolution = number(_FOCAL_PLANE_X_RESOLUTION)
    unit = ifd.get(_FOCAL_PLANE_RESOLUTION_UNIT, 2)
    if resolution and unit in _MM_PER_UNIT:
        px_per_mm = resolution / _MM_PER_UNIT[unit]
    width, height = number(_PIXEL_X_DIMENSION), number(_PIXEL_Y_DIMENSION)
    return CameraExif(
        focal_35mm=number(_FOCAL_LENGTH_35MM),
        focal_mm=number(_FOCAL_LENGTH),
        focal_plane_px_per_mm=px_per_mm,
        exif_width=int(width) if width else None,
        exif_height=int(height) if height else None,
    )


def intrinsics(width: int, height: int, options: Options, exif: CameraExif | None = None) -> Intrinsics:
    """Pinhole intrinsics in pixels of the (upright) image: given fx/fy, else fov, else EXIF, else 60° horizontal."""
    cx = options.cx if options.cx is not None else width / 2
    cy = options.cy if options.cy is not None else height / 2
    fx, fy, source = _focal_lengths(width, height, options=options, exif=exif or CameraExif())
    return Intrinsics(float(fx), float(fy), float(cx), float(cy), source)


def _focal_lengths(width: int, height: int, *, options: Options, exif: CameraExif) -> tuple[float, float, str]:
    """fx, fy in pixels and where they came from (:attr:`Intrinsics.source`)."""
    if options.fx is not None or options.fy is not None:
        fx = options.fx if options.fx is not None else options.fy
        fy = options.fy if options.fy is not None else fx
        return fx, fy, "given"  # one of them is given: neither is None
    if options.fov is not None:
        f = width / 2 / math.tan(math.radians(options.fov) / 2)
        return f, f, "fov"
    f, source = _exif_focal_length(width, height, exif)
    return f, f, source


def _exif_focal_length(width: int, height: int, exif: CameraExif) -> tuple[float, str]:
    """The focal length in pixels that the photo's EXIF gives, else that of a 60° horizontal field of view."""
    if exif.focal_35mm:
        # 35 mm-equivalent: the same field of view on a 36 x 24 mm frame, matched along the diagonal
        return exif.focal_35mm * math.hypot(width, height) / FULL_FRAME_DIAGONAL_MM, "exif-35mm"
    if exif.focal_mm and exif.focal_plane_px_per_mm:
        f = exif.focal_mm * exif.focal_plane_px_per_mm
        if exif.exif_width and exif.exif_height:
            # the resolution counts pixels of the sensor's readout; scale to this image (either orientation)
            f *= max(width, height) / max(exif.exif_width, exif.exif_height)
        return f, "exif-focal-plane"
    return width / 2 / math.tan(math.radians(DEFAULT_FOV_DEGREES) / 2), "default-fov"


# ------------------------------------------------------------------------------------------------ depth


def depth_from_disparity(prediction: np.ndarray, options: Options) -> np.ndarray:
    """Relative inverse depth → depth (float32; NaN where it would not be positive and finite). See the module doc."""
    p = prediction.astype(np.float32, copy=False)
    if options.scale is not None:
        inverse = p * np.float32(options.scale) + np.float32(options.shift)
    else:
        finite = p[np.isfinite(p)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        d = (p - np.float32(lo)) / np.float32(hi - lo) if hi > lo else np.ones_like(p)
        inverse = d * np.float32(1 / options.near - 1 / options.far) + np.float32(1 / options.far)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.float32(1) / inverse
    depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    return depth


def edge_mask(depth: np.ndarray, threshold: float) -> np.ndarray:
    """True where no 4-neighbour's depth differs from this one by more than ``threshold`` (relative)."""
    keep = np.isfinite(depth)
    dy = _cut(depth[1:], depth[:-1], threshold)
    dx = _cut(depth[:, 1:], depth[:, :-1], threshold)
    keep[1:] &= ~dy
    keep[:-1] &= ~dy
    keep[:, 1:] &= ~dx
    keep[:, :-1] &= ~dx
    return keep


def _cut(a: np.ndarray, b: np.ndarray, threshold: float) -> np.ndarray:
    """True where depths ``a`` and ``b`` differ by more than ``threshold`` of the nearer one (NaN: False)."""
    with np.errstate(invalid="ignore"):
        return np.abs(a - b) > threshold * np.minimum(a, b)


# ------------------------------------------------------------------------------------------------ points


def back_project(
    prediction: np.ndarray,
    colors: np.ndarray,
    width: int,
    height: int,
    stride: int,
    options: Options,
    exif: CameraExif | None = None,
    max_faces: int | None = None,
) -> PointCloud:
    """The strided prediction (``prediction[::stride, ::stride]`` of a ``width`` x ``height`` image) and its
    colours (same grid) → points. Use :func:`stride_for` and :func:`sample` for both grids. A mesh of more than
    ``max_faces`` triangles is refused (:class:`TooManyFaces`) as soon as they are counted."""
    if prediction.shape != colors.shape[:2]:
        raise ValueError(f"prediction grid {prediction.shape} and colour grid {colors.shape[:2]} differ")
    cam = intrinsics(width, height, options, exif)
    depth = depth_from_disparity(prediction, options)
    keep = edge_mask(depth, options.edge_threshold) if options.edge_threshold is not None else np.isfinite(depth)
    rows, cols = np.nonzero(keep)
    z = depth[rows, cols]
    u = cols.astype(np.float32) * np.float32(stride) + np.float32(0.5)
    v = rows.astype(np.float32) * np.float32(stride) + np.float32(0.5)
    positions = np.empty((z.size, 3), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        positions[:, 0] = (u - np.float32(cam.cx)) * (z / np.float32(cam.fx))
        positions[:, 1] = (np.float32(cam.cy) - v) * (z / np.float32(cam.fy))
    positions[:, 2] = -z
    finite = np.isfinite(positions).all(axis=1)  # extreme intrinsics can overflow float32: such points are dropped
    if not finite.all():
        positions, rows, cols = positions[finite], rows[finite], cols[finite]
    colours = np.ascontiguousarray(colors[rows, cols], dtype=np.uint8)
    if not options.mesh:
        return PointCloud(positions, colours, cam, stride)
    faces = grid_faces(rows, cols, depth, options.edge_threshold, max_faces)
    # a mesh file holds only the vertices of its triangles (a point of no triangle is no part of the surface)
    # (a mask and a running count: linear, where sorting every index of a million-triangle mesh is not)
    used = np.zeros(len(positions), bool)
    used[faces] = True
    renumbered = (np.cumsum(used, dtype=np.int64) - 1).astype(np.uint32)
    return PointCloud(positions[used], colours[used], cam, stride, renumbered[faces])


def grid_faces(
    rows: np.ndarray, cols: np.ndarray, depth: np.ndarray, threshold: float | None = None, max_faces: int | None = None
) -> np.ndarray:
    """Two triangles per grid cell whose four corners are all points (``rows``/``cols``: each point's grid cell, in
    point order; ``depth``: the grid's depth), counter-clockwise as seen from the camera (glTF's front faces). Dropped
    points (edges, invalid depth) leave holes rather than stretched triangles; with a ``threshold`` the cell's
    diagonal (top-right to bottom-left, shared by both triangles) obeys the same relative cut as the edges, which
    :func:`edge_mask` has checked already. More than ``max_faces`` triangles: :class:`TooManyFaces`, before any is
    built."""
    index = np.full(depth.shape, -1, np.int64)
    index[rows, cols] = np.arange(rows.size)
    a, b = index[:-1, :-1], index[:-1, 1:]  # top-left, top-right
    c, d = index[1:, :-1], index[1:, 1:]  # bottom-left, bottom-right
    whole = (a >= 0) & (b >= 0) & (c >= 0) & (d >= 0)
    if threshold is not None:
        whole &= ~_cut(depth[:-1, 1:], depth[1:, :-1], threshold)
    count = 2 * int(np.count_nonzero(whole))
    if max_faces is not None and count > max_faces:
        raise TooManyFaces(count, max_faces)
    a, b, c, d = a[whole], b[whole], c[whole], d[whole]
    faces = np.empty((2 * a.size, 3), np.uint32)
    faces[0::2] = np.stack([a, c, b], axis=1)  # y points up, so image-down is counter-clockwise from a to c to b
    faces[1::2] = np.stack([b, c, d], axis=1)
    return faces
