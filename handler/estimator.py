"""The one inference path every entry uses: bytes → decode → MiDaS preprocessing → ORT → bicubic resize → renderings."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from handler import geometry, imaging, pointcloud, preprocess
from handler.config import Settings
from handler.model import DepthModel


@dataclass
class DepthResult:
    """Depth at the original image size plus the seconds each stage took (renderings add theirs)."""

    inverse_depth: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    # (min, max) of inverse_depth, measured as the upsample wrote it (the renderings' normalisation reuses it)
    depth_range: tuple[float, float] | None = None
    # Kept only when ``estimate`` is asked for a point budget: the colour grid for points and the lens EXIF.
    colors: np.ndarray | None = None
    stride: int = 1
    exif: geometry.CameraExif | None = None

    @property
    def height(self) -> int:
        return int(self.inverse_depth.shape[0])

    @property
    def width(self) -> int:
        return int(self.inverse_depth.shape[1])

    @property
    def total_seconds(self) -> float:
        return sum(self.timings.values())

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started


class DepthEstimator:
    """The inference core: shared by the HTTP API, the S3 trigger and the CLI (one per container)."""

    def __init__(self, settings: Settings, model: DepthModel) -> None:
        self.settings = settings
        self.model = model

    @classmethod
    def load(cls, settings: Settings) -> DepthEstimator:
        """Load and verify the baked model named by ``settings`` (raises ``ModelUnavailable``)."""
        return cls(settings, DepthModel.from_settings(settings))

    def estimate(
        self,
        data: bytes,
        *,
        max_pixels: int | None = None,
        max_points: int | None = None,
        before_decode: Callable[[int, int], None] | None = None,
    ) -> DepthResult:
        """Encoded image bytes → relative inverse depth (larger = nearer) at the image's own size; ``max_pixels``
        lowers the settings' pixel cap (the HTTP path's). With ``max_points`` the result also keeps what
        :meth:`point_cloud` needs: the colours of the even grid of at most that many pixels, and the lens EXIF.
        ``before_decode`` sees the image's size from its header, and may refuse it (``imaging.open_image``)."""
        result = DepthResult(inverse_depth=np.empty((0, 0), np.float32))
        with result.stage("decode"):
            picture = imaging.open_image(
                data,
                max_bytes=self.settings.max_image_bytes,
                max_pixels=min(max_pixels or self.settings.max_image_pixels, self.settings.max_image_pixels),
                memory_mb=self.settings.aws_lambda_function_memory_size,
                before_decode=before_decode,
            )
        height, width = picture.shape[:2]
        if max_points is not None:
            with result.stage("points"):
                result.stride = geometry.stride_for(height, width, max_points)
                # only the sampled rows are read out of the decoded image, not a whole RGB copy of it
                rows = picture[np.arange(0, height, result.stride)]
                result.colors = np.ascontiguousarray(rows[:, :: result.stride])
                result.exif = picture.camera  # read with the pixels: the file is not parsed again
        with result.stage("preprocess"):
            net_input = preprocess.to_net_input(picture)
        del picture
        with result.stage("inference"):
            prediction = self.model.infer(net_input)
        with result.stage("upsample"):
            result.inverse_depth, result.depth_range = preprocess.resize_with_range(prediction, width, height)
        return result

    def heatmap_png(self, result: DepthResult, colormap: str | None = None) -> bytes:
        """The coloured heatmap PNG (Inferno by default: yellow = near) at the original resolution."""
        colormap = colormap or self.settings.default_colormap
        with result.stage("colormap"):
            levels = imaging.normalise(result.inverse_depth, bits=1, depth_range=result.depth_range)
        with result.stage("encode"):
            return imaging.heatmap_png(levels, colormap, self.settings.png_compression)

    def depth_png16(self, result: DepthResult) -> bytes:
        """Min-max normalised depth as a 16-bit grayscale PNG (upstream run.py ``bits=2``)."""
        with result.stage("encode"):
            levels = imaging.normalise(result.inverse_depth, bits=2, depth_range=result.depth_range)
            return imaging.depth_png16(levels, self.settings.png_compression)

    def depth_pfm(self, result: DepthResult) -> bytearray:
        """The raw float32 depth as PFM (upstream run.py ``write_pfm``)."""
        with result.stage("encode"):
            return imaging.pfm_bytes(result.inverse_depth)

    def point_cloud(
        self, result: DepthResult, fmt: str, options: geometry.Options, *, max_faces: int | None = None
    ) -> tuple[bytes, geometry.PointCloud]:
        """The point cloud of ``result`` (estimated with ``max_points=options.max_points``) as ``fmt``
        ("ply" or "glb"; :mod:`handler.pointcloud`), and the points themselves; a mesh of more than ``max_faces``
        triangles is refused (``geometry.TooManyFaces``) before it is built or encoded."""
        if result.colors is None:
            raise ValueError("estimate() was not asked for points (max_points)")
        with result.stage("points"):
            cloud = geometry.back_project(
                geometry.sample(result.inverse_depth, result.stride),
                result.colors,
                result.width,
                result.height,
                result.stride,
                options,
                result.exif,
                max_faces,
            )
        with result.stage("encode_points"):
            return pointcloud.encode(cloud, fmt), cloud
