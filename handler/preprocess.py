"""MiDaS small transform (upstream ``small_transform``) and the resize of the prediction back to the image size."""

from __future__ import annotations

import math

import cv2
import numpy as np

from handler import contract

_MEAN = np.asarray(contract.MEAN, dtype=np.float32)
_STD = np.asarray(contract.STD, dtype=np.float32)


def _constrain_to_multiple_of(x: float, max_val: int, multiple: int = contract.MULTIPLE_OF) -> int:
    """Upstream Resize.constrain_to_multiple_of (min_val=0), except that it never returns 0.

    Upstream rounds an extreme aspect ratio's short side (e.g. 4000x100) down to 0 and cv2.resize then
    crashes; we keep one multiple instead. Every other size is exactly upstream's.
    """
    y = round(x / multiple) * multiple
    if y > max_val:
        y = math.floor(x / multiple) * multiple
    return max(y, multiple)


def net_input_size(width: int, height: int, net_size: int = contract.NET_SIZE) -> tuple[int, int]:
    """Upstream Resize(256, 256, keep_aspect_ratio=True, ensure_multiple_of=32, resize_method="upper_bound")."""
    scale = min(net_size / width, net_size / height)  # upper_bound: fit the tighter side
    return (
        _constrain_to_multiple_of(scale * width, net_size),
        _constrain_to_multiple_of(scale * height, net_size),
    )


def to_net_input(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) → normalised float32 (1, 3, h, w), resized in float with bicubic as upstream.

    Resizing is linear, so resizing x and then applying x/255 - mean)/std equals upstream's order of
    operations; the resize itself must run on float pixels (a uint8 resize rounds and clips, see MIDAS.md).
    """
    height, width = rgb.shape[:2]
    net_w, net_h = net_input_size(width, height)
    resized = cv2.resize(rgb.astype(np.float32), (net_w, net_h), interpolation=cv2.INTER_CUBIC)
    normalised = (resized * np.float32(1 / 255) - _MEAN) / _STD
    return np.ascontiguousarray(normalised.transpose(2, 0, 1))[np.newaxis]


def resize_to(prediction: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of the (h, w) prediction to (height, width); equals torch bicubic, align_corners=False."""
    return cv2.resize(prediction, (width, height), interpolation=cv2.INTER_CUBIC)
