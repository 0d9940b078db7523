"""Upstream MiDaS CPU pipeline restated (isl-org/MiDaS run.py + midas/transforms.py): tests and the bench baseline.

float64 image/255 → Resize(upper_bound, multiple of 32, cv2.INTER_CUBIC) → normalise → torch forward →
torch bicubic (align_corners=False) back to the image size → write_depth's min-max to uint8/uint16.

OpenCV and torch are imported by the two functions that use them: the sizes and write_depth's normalisation are
NumPy alone, so the unit tests (no torch, no OpenCV) check against upstream's own code for those.
"""

from __future__ import annotations

import numpy as np

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def constrain_to_multiple_of(x, multiple=32, min_val=0, max_val=None) -> int:
    y = (np.round(x / multiple) * multiple).astype(int)
    if max_val is not None and y > max_val:
        y = (np.floor(x / multiple) * multiple).astype(int)
    if y < min_val:
        y = (np.ceil(x / multiple) * multiple).astype(int)
    return int(y)


def get_size(width: int, height: int, net=256) -> tuple[int, int]:
    scale_height, scale_width = net / height, net / width
    if scale_width < scale_height:  # upper_bound: fit width
        scale_height = scale_width
    else:
        scale_width = scale_height
    return (
        constrain_to_multiple_of(scale_width * width, max_val=net),
        constrain_to_multiple_of(scale_height * height, max_val=net),
    )


def small_transform(rgb_uint8: np.ndarray) -> np.ndarray:
    """run.py's read_image (RGB/255 float64) + the small model's transform → (1, 3, h, w) float32."""
    import cv2

    image = rgb_uint8 / 255.0
    width, height = get_size(image.shape[1], image.shape[0])
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)
    image = (image - MEAN) / STD
    return np.ascontiguousarray(np.transpose(image, (2, 0, 1))).astype(np.float32)[np.newaxis]


def predict(model, rgb_uint8: np.ndarray) -> np.ndarray:
    """run.py's process(): forward, then bicubic interpolate to the original size."""
    import torch

    sample = torch.from_numpy(small_transform(rgb_uint8))
    with torch.no_grad():
        prediction = model.forward(sample)
        prediction = (
            torch.nn.functional.interpolate(
                prediction.unsqueeze(1), size=rgb_uint8.shape[:2], mode="bicubic", align_corners=False
            )
            .squeeze()
            .cpu()
            .numpy()
        )
    return prediction


def write_depth_values(depth: np.ndarray, bits: int) -> np.ndarray:
    """utils.write_depth's normalisation (before applyColorMap / imwrite)."""
    if not np.isfinite(depth).all():
        depth = np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0)
    depth_min, depth_max = depth.min(), depth.max()
    max_val = (2 ** (8 * bits)) - 1
    if depth_max - depth_min > np.finfo("float").eps:
        out = max_val * (depth - depth_min) / (depth_max - depth_min)
    else:
        out = np.zeros(depth.shape, dtype=depth.dtype)
    return out.astype("uint8" if bits == 1 else "uint16")
