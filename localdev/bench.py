"""What the benchmarks share (scripts/bench.py, bench_image.py, bench_pointcloud.py): the request sizes, photo-like
JPEGs and Lambda's prices."""

from __future__ import annotations

SIZES = {"640x480": (640, 480), "1920x1080": (1920, 1080), "4032x3024": (4032, 3024)}
# Lambda list prices (us-east-1, first pricing tier): $ per GB-second by architecture, $ per request; 1 vCPU per
# 1769 MB.
PRICE_GB_S = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
PRICE_REQUEST = 0.20 / 1e6
MB_PER_VCPU = 1769


def photo_like_jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """A JPEG with photo-like statistics (smooth shapes, texture, noise), so codecs work as on real photos."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(max(2, height // 64), max(2, width // 64), 3), dtype=np.uint8)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    img += rng.normal(0, 8, size=img.shape).astype(np.int16)
    ok, buf = cv2.imencode(".jpg", np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return buf.tobytes()
