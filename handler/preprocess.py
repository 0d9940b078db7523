"""MiDaS small transform (upstream ``small_transform``) and the resize of the prediction back to the image size.

Both resizes are bicubic with OpenCV's / torch's kernel (a = -0.75, half-pixel centres, edge pixels replicated),
written as two small matrix products in NumPy so the runtime needs no OpenCV: ``out = Wy @ image @ Wx.T``.
Downscaling a photo only touches the (at most 4 per output pixel) source rows and columns the kernel reads, so a
12 MP image costs about as much as a small one; the resize still runs on float pixels, as upstream's does.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from handler import contract

_A = -0.75  # cubic convolution coefficient of cv2.INTER_CUBIC and torch's bicubic
# (x/255 - mean)/std folded into one multiply-add per channel, applied after the (linear) resize
_SCALE = (1.0 / (255.0 * np.asarray(contract.STD, dtype=np.float64))).astype(np.float32)[:, None, None]
_OFFSET = (-np.asarray(contract.MEAN, dtype=np.float64) / np.asarray(contract.STD)).astype(np.float32)[:, None, None]


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


@lru_cache(maxsize=32)
def cubic_weights(src: int, dst: int) -> np.ndarray:
    """(dst, src) matrix of bicubic weights: row i holds the ≤ 4 taps output pixel i reads (borders clamped)."""
    centre = (np.arange(dst, dtype=np.float64) + 0.5) * (src / dst) - 0.5
    left = np.floor(centre)
    t = centre - left
    taps = [
        ((_A * (t + 1) - 5 * _A) * (t + 1) + 8 * _A) * (t + 1) - 4 * _A,
        ((_A + 2) * t - (_A + 3)) * t * t + 1,
        ((_A + 2) * (1 - t) - (_A + 3)) * (1 - t) * (1 - t) + 1,
    ]
    taps.append(1 - taps[0] - taps[1] - taps[2])
    weights = np.zeros((dst, src), dtype=np.float64)
    rows = np.arange(dst)
    for k, w in enumerate(taps):
        np.add.at(weights, (rows, np.clip(left.astype(np.int64) + k - 1, 0, src - 1)), w)
    weights = weights.astype(np.float32)
    weights.setflags(write=False)  # cached and shared between requests
    return weights


def _used(weights: np.ndarray) -> np.ndarray:
    """Indices of the source pixels a weight matrix reads."""
    return np.flatnonzero(np.any(weights != 0, axis=0))


def to_net_input(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) → normalised float32 (1, 3, h, w): bicubic resize in float, then ImageNet normalisation.

    The resize is linear, so resizing the 0..255 values and then applying (x/255 - mean)/std equals upstream's
    order of operations; it runs on float pixels (a uint8 resize would round and clip, see MIDAS.md).
    """
    height, width = rgb.shape[:2]
    net_w, net_h = net_input_size(width, height)
    wy, wx = cubic_weights(height, net_h), cubic_weights(width, net_w)
    rows, cols = _used(wy), _used(wx)
    pixels = rgb[rows[:, None], cols].astype(np.float32).transpose(2, 0, 1)  # (3, rows, cols): only what is read
    resized = wy[:, rows] @ pixels @ wx[:, cols].T
    return (resized * _SCALE + _OFFSET)[np.newaxis]


def resize_to(prediction: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of the (h, w) prediction to (height, width); equals torch bicubic, align_corners=False."""
    h, w = prediction.shape
    wy, wx = cubic_weights(h, height), cubic_weights(w, width)
    if h * w * width + height * h * width <= height * h * w + height * w * width:  # cheaper association first
        return wy @ (prediction @ wx.T)
    return (wy @ prediction) @ wx.T
