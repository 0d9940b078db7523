"""MiDaS small transform (upstream ``small_transform``) and the resize of the prediction back to the image size.

Both resizes are bicubic with OpenCV's / torch's kernel (a = -0.75, half-pixel centres, edge pixels replicated),
in NumPy so the runtime needs no OpenCV (ONNX Runtime's own cubic ``Resize`` is far slower than this). Each
output pixel reads 4 source pixels per axis, and the work is shaped so NumPy does it in a few large BLAS calls
with no strided transposes:

- shrinking (a photo to the network's size) gathers only the 4 source rows / columns each output reads, as uint8,
  and weighs them with one batched matrix product per axis; one colour channel at a time, so every array is 2-D;
- resizing the prediction to the photo's size multiplies by the weight matrix in bands: a band of output rows
  reads only the few source rows under it, so the products skip the weight matrix's zeros, most of a large
  upsample's arithmetic (docs/performance.md).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from handler import contract

if TYPE_CHECKING:
    from handler import imaging

_A = -0.75  # cubic convolution coefficient of cv2.INTER_CUBIC and torch's bicubic
# (x/255 - mean)/std folded into one multiply-add per channel, applied after the (linear) resize
_SCALE = (1.0 / (255.0 * np.asarray(contract.STD, dtype=np.float64))).astype(np.float32)
_OFFSET = (-np.asarray(contract.MEAN, dtype=np.float64) / np.asarray(contract.STD)).astype(np.float32)
# Shrink horizontally first (columns before rows) when the width shrinks at least this much: the column gather
# then touches fewer pixels than the rows-first pass (docs/performance.md).
_COLUMNS_FIRST_FACTOR = 6


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


@lru_cache(maxsize=16)
def cubic_bands(src: int, dst: int) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """The (dst, src) weight matrix of :func:`cubic_taps` cut into bands of output rows: (first and end output row,
    first and end source row, the band's dense weights). Each band spans only the source rows its taps read;
    about 8 source rows per band, so the products stay small while skipping the matrix's zeros."""
    index, weights = cubic_taps(src, dst)
    step = max(8, round(8 * dst / src))
    bands = []
    for start in range(0, dst, step):
        end = min(dst, start + step)
        first, last = int(index[start:end].min()), int(index[start:end].max()) + 1
        dense = np.zeros((end - start, last - first), dtype=np.float32)
        np.add.at(dense, (np.arange(end - start)[:, None], index[start:end] - first), weights[start:end])
        dense.setflags(write=False)
        bands.append((start, end, first, last, dense))
    return tuple(bands)


def _weigh_taps(gathered: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(4 * n, M) source rows gathered 4 per output row, in tap order → (n, M) float32: each output's weighted sum."""
    n = weights.shape[0]
    taps = gathered.reshape(n, 4, -1).astype(np.float32, copy=False)
    return np.matmul(weights[:, None, :], taps).reshape(n, -1)


def to_net_input(rgb: np.ndarray | imaging.Picture) -> np.ndarray:
    """RGB uint8 (H, W, 3) → normalised float32 (1, 3, h, w): bicubic resize in float, then ImageNet normalisation.
    ``rgb`` is an array or a decoded :class:`imaging.Picture` (only the rows read are copied out of it).

    The resize is linear, so resizing the 0..255 values and then applying (x/255 - mean)/std equals upstream's
    order of operations; it runs on float pixels (a uint8 resize rounds and clips, which moved outputs by up to
    40 % of the depth range on a test network). Only the 4 source rows per output row are read, as uint8.
    """
    height, width = rgb.shape[:2]
    net_w, net_h = net_input_size(width, height)
    rows, row_w = cubic_taps(height, net_h)
    cols, col_w = cubic_taps(width, net_w)
    picked = rgb[rows.ravel()]  # (4 * net_h, width, 3) uint8: whole rows, copied
    out = np.empty((1, 3, net_h, net_w), dtype=np.float32)
    if width >= _COLUMNS_FIRST_FACTOR * net_w:  # columns, then rows; a channel at a time, every array 2-D
        for c in range(3):
            taps = picked[:, cols.ravel(), c].astype(np.float32).reshape(4 * net_h, net_w, 4)
            out[0, c] = _weigh_taps(np.einsum("rxk,xk->rx", taps, col_w), row_w)
    else:  # rows, then columns: per channel, transposed so that the column taps are rows
        tall = _weigh_taps(picked.reshape(4 * net_h, width * 3), row_w).reshape(net_h, width, 3)
        for c in range(3):
            across = tall[:, :, c].T.copy()  # (width, net_h)
            out[0, c] = _weigh_taps(across[cols.ravel()], col_w).T
    out *= _SCALE[None, :, None, None]
    out += _OFFSET[None, :, None, None]
    return out


def resize_to(prediction: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of the (h, w) prediction to (height, width); equals torch bicubic, align_corners=False."""
    return resize_with_range(prediction, width, height)[0]


def resize_with_range(prediction: np.ndarray, width: int, height: int) -> tuple[np.ndarray, tuple[float, float]]:
    """:func:`resize_to`, and the minimum and maximum of what it wrote (NaN where any value is NaN, as NumPy's
    min and max give them): columns, then rows, each by the bands of :func:`cubic_bands` (the products skip the
    weight matrix's zeros); each band of output rows is measured while it is still in cache, which spares the
    heatmap's normalisation a read of the whole map."""
    h, w = prediction.shape
    wide = np.empty((h, width), dtype=np.float32)
    for start, end, first, last, band in cubic_bands(w, width):
        np.matmul(prediction[:, first:last], band.T, out=wide[:, start:end])
    out = np.empty((height, width), dtype=np.float32)
    lows, highs = [], []
    for start, end, first, last, band in cubic_bands(h, height):
        rows = out[start:end]
        np.matmul(band, wide[first:last], out=rows)
        lows.append(rows.min())
        highs.append(rows.max())
    return out, (float(np.min(lows)), float(np.max(highs)))
