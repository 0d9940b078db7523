"""The MiDaS_small model contract shared by the bake (which records it) and the runtime (which checks it).

Dependency-free on purpose: the bake stage imports it without the runtime's libraries.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MODEL_NAME = "MiDaS_small"
MODEL_RELEASE = "isl-org/MiDaS v2.1 midas_v21_small_256"
OFFICIAL_CHECKPOINT_URL = "https://github.com/isl-org/MiDaS/releases/download/v2_1/midas_v21_small_256.pt"

ONNX_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
INPUT_NAME = "image"
OUTPUT_NAME = "depth"

# Upstream small_transform: Resize(256, 256, keep_aspect_ratio=True, ensure_multiple_of=32,
# resize_method="upper_bound", cv2.INTER_CUBIC) on the float image, then ImageNet normalisation.
NET_SIZE = 256
MULTIPLE_OF = 32
RESIZE_METHOD = "upper_bound"
INTERPOLATION = "cubic"
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def preprocessing() -> dict[str, object]:
    """The preprocessing constants as recorded in manifest.json."""
    return {
        "net_size": NET_SIZE,
        "multiple_of": MULTIPLE_OF,
        "resize_method": RESIZE_METHOD,
        "keep_aspect_ratio": True,
        "interpolation": INTERPOLATION,
        "scale": "1/255",
        "mean": list(MEAN),
        "std": list(STD),
        "channel_order": "RGB",
        "layout": "NCHW",
    }


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 4 MB chunks (the bake records it, the runtime checks it)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
