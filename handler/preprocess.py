"""MiDaS small transform (upstream ``small_transform``) and the resize of the prediction back to the image size.

Both resizes are bicubic with OpenCV's / torch's kernel (a = -0.75, half-pixel centres, edge pixels replicated),
in NumPy so the runtime needs no OpenCV. Downscaling a photo to the network's size reads only the 4 source rows
and columns each output pixel uses (a 12 MP photo costs little more than a small one); upsampling the prediction
is two matrix products, ``Wy @ depth @ Wx.T``, which BLAS does faster than gathering taps.
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


@lru_cache(maxsize=16)
def cubic_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``dst`` output pixels, the 4 source indices (clamped at the borders) and weights it reads."""
    centre = (np.arange(dst, dtype=np.float64) + 0.5) * (src / dst) - 0.5
    left = np.floor(centre)
    t = centre - left
    w0 = ((_A * (t + 1) - 5 * _A) * (t + 1) + 8 * _A) * (t + 1) - 4 * _A
    w1 = ((_A + 2) * t - (_A + 3)) * t * t + 1
    w2 = ((_A + 2) * (1 - t) - (_A + 3)) * (1 - t) * (1 - t) + 1
    weights = np.stack([w0, w1, w2, 1 - w0 - w1 - w2], axis=1).astype(np.float32)
    index = np.clip(left.astype(np.int64)[:, None] + np.arange(-1, 3), 0, src - 1)
    index.setflags(write=False)  # cached and shared between requests
    weights.setflags(write=False)
    return index, weights


def cubic_weights(src: int, dst: int) -> np.ndarray:
    """The same taps as a dense (dst, src) matrix, for resizes done as matrix products (built per call: at full
    image size it is megabytes, not worth keeping)."""
    index, weights = cubic_taps(src, dst)
    dense = np.zeros((dst, src), dtype=np.float32)
    np.add.at(dense, (np.arange(dst)[:, None], index), weights)  # clamped taps add up at the borders
    return dense


def to_net_input(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) → normalised float32 (1, 3, h, w): bicubic resize in float, then ImageNet normalisation.

    The resize is linear, so resizing the 0..255 values and then applying (x/255 - mean)/std equals upstream's
    order of operations; it runs on float pixels (a uint8 resize rounds and clips, which moved outputs by up to
    40 % of the depth range on a test network). Only the 4 source rows per output row are converted to float,
    then the 4 columns per output column are combined.
    """
    height, width = rgb.shape[:2]
    net_w, net_h = net_input_size(width, height)
    rows, row_w = cubic_taps(height, net_h)
    cols, col_w = cubic_taps(width, net_w)
    taps = rgb[rows.ravel()].astype(np.float32).reshape(net_h, 4, width, 3)
    tall = np.einsum("yk,ykxc->yxc", row_w, taps)  # (net_h, width, 3)
    resized = np.einsum("xk,yxkc->cyx", col_w, tall[:, cols])  # (3, net_h, net_w)
    return (resized * _SCALE + _OFFSET)[np.newaxis]


def resize_to(prediction: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of the (h, w) prediction to (height, width); equals torch bicubic, align_corners=False."""
    h, w = prediction.shape
    wy, wx = cubic_weights(h, height), cubic_weights(w, width)
    if h * w * width + height * h * width <= height * h * w + height * w * width:  # cheaper association first
        return wy @ (prediction @ wx.T)
    return (wy @ prediction) @ wx.T
