"""Values of upstream's pipeline recorded for the unit tests, which run without torch and OpenCV.

``scripts/record_upstream.py`` writes them to ``tests/unit/data/upstream.npz``; tests/functional/test_upstream_parity.py
checks that recording again gives the committed file's values. What is recorded, computed by the upstream code
restated in :mod:`bake.upstream_reference` (OpenCV, torch):

- ``transform/<w>x<h>``: the small model's transform of ``scene(w, h, seed=w)``, at ``SAMPLES`` positions of the
  (1, 3, h', w') network input (``index``, ``value``);
- ``resize/<w>x<h>``: torch's bicubic (align_corners=False) of a seeded network-sized map back to w x h, at
  ``SAMPLES`` positions, with the whole result's peak-to-peak;
- ``colormap/<name>``: ``cv2.applyColorMap`` of the levels 0..255 (BGR, 256 x 3), as upstream's write_depth colours;
- ``imread16``: a 16-bit grey PNG written by ``cv2.imencode`` and what ``cv2.imread`` makes of it (8-bit BGR).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from localdev.images import scene

SAMPLES = 512
TRANSFORM_SIZES = [(640, 480), (333, 500), (64, 48), (1280, 720), (1920, 1080), (1080, 1920), (4032, 3024), (10, 10)]
TRANSFORM_SIZES += [(1200, 200)]
RESIZE_SIZES = [(640, 480), (1920, 1080), (4032, 3024), (100, 100), (257, 255), (300, 40), (7, 3)]
COLORMAPS = ["inferno", "magma", "plasma", "viridis", "turbo"]


def net_sized_map(width: int, height: int) -> np.ndarray:
    """The seeded map (network input size for a w x h image) that ``resize/<w>x<h>`` enlarges or shrinks back."""
    from bake.upstream_reference import get_size

    net_w, net_h = get_size(width, height)
    return np.random.default_rng(3).random((net_h, net_w), dtype=np.float32) * 50


def gray16() -> np.ndarray:
    """The 16-bit grey picture of ``imread16``."""
    return (np.arange(32 * 24, dtype=np.uint32).reshape(24, 32) * 85).astype(np.uint16)


def samples(size: int) -> np.ndarray:
    return np.sort(np.random.default_rng(0).choice(size, min(SAMPLES, size), replace=False))


def record() -> dict[str, np.ndarray]:
    """Every recorded array, by name (the keys of the .npz)."""
    import cv2
    import torch

    from bake import upstream_reference as upstream

    out: dict[str, np.ndarray] = {}
    for width, height in TRANSFORM_SIZES:
        ref = upstream.small_transform(scene(width, height, seed=width))
        index = samples(ref.size)
        out[f"transform/{width}x{height}/shape"] = np.array(ref.shape)
        out[f"transform/{width}x{height}/index"] = index
        out[f"transform/{width}x{height}/value"] = ref.reshape(-1)[index]
    for width, height in RESIZE_SIZES:
        pred = torch.from_numpy(net_sized_map(width, height))[None, None]
        ref = torch.nn.functional.interpolate(pred, size=(height, width), mode="bicubic", align_corners=False)
        ref = ref[0, 0].numpy()
        index = samples(ref.size)
        out[f"resize/{width}x{height}/index"] = index
        out[f"resize/{width}x{height}/value"] = ref.reshape(-1)[index]
        out[f"resize/{width}x{height}/ptp"] = np.array(np.ptp(ref))
    levels = np.arange(256, dtype=np.uint8).reshape(1, 256)
    for name in COLORMAPS:
        out[f"colormap/{name}"] = cv2.applyColorMap(levels, getattr(cv2, f"COLORMAP_{name.upper()}"))[0]
    ok, png = cv2.imencode(".png", gray16())
    assert ok
    out["imread16/png"] = png.reshape(-1)
    out["imread16/bgr"] = cv2.imdecode(png, cv2.IMREAD_COLOR)
    return out


def write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **record())
