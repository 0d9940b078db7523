"""Peak memory of the real pipeline on one image, in a process of its own: the measurement behind the memory-derived
pixel caps (docs/hardening.md#memory), shared by ``scripts/memory_peaks.py`` and the tests.

The child imports the Lambda entry as a container does (the model loaded, the HTTP app built), runs one small image
through the whole pipeline (ONNX Runtime sizes its arenas on its first run), reads its resident set (the baseline:
the loaded, warm container), resets the peak
(``/proc/self/clear_refs``), then runs the image given: decode, depth, heatmap, 16-bit depth PNG, PFM and a point
cloud at the documented defaults (every rendering the S3 trigger or the API can make of it), and reports the peak.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

_PEAK_RESET = Path("/proc/self/clear_refs")
# The files measured: name → (Pillow format, save options), each decoding to its own mode (see :func:`sample`).
SAMPLES: dict[str, tuple[str, dict]] = {
    "jpeg_rgb": ("JPEG", {"quality": 90}),
    "jpeg_l": ("JPEG", {"quality": 90}),
    "png_rgb": ("PNG", {"compress_level": 6}),
    "png_rgba": ("PNG", {"compress_level": 6}),
    "png_i16": ("PNG", {"compress_level": 6}),
    "png_p": ("PNG", {"compress_level": 6}),
    "webp_rgb": ("WEBP", {"quality": 80}),
    "webp_rgba": ("WEBP", {"quality": 80}),
    "tiff_rgb": ("TIFF", {"compression": "tiff_adobe_deflate"}),
    "tiff_f": ("TIFF", {"compression": "tiff_adobe_deflate"}),
    "bmp_rgb": ("BMP", {}),
}


def sample(name: str, megapixels: float) -> bytes:
    """A 4:3 scene of about ``megapixels`` as the file :data:`SAMPLES` names: RGB, gray (``_l``), RGBA, 16-bit gray
    (``_i16``), palette (``_p``) or float32 gray (``_f``)."""
    from PIL import Image

    from localdev.images import scene

    width = int(math.sqrt(megapixels * 1e6 * 4 / 3))
    rgb = scene(width, int(megapixels * 1e6 / width), seed=3)
    fmt, options = SAMPLES[name]
    mode = name.rsplit("_", 1)[1]
    if mode == "i16":
        img = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    elif mode == "f":
        img = Image.fromarray(rgb[..., 1].astype(np.float32))
    elif mode == "p":
        img = Image.fromarray(rgb).quantize(256)
    elif mode == "rgba":  # an alpha that varies (an opaque one is dropped by the WebP encoder)
        img = Image.fromarray(np.dstack([rgb, 255 - rgb[..., 2]]))
    else:
        img = Image.fromarray(rgb).convert(mode.upper())
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _pipeline(estimator, data: bytes, cloud: str) -> dict[str, int]:
    """Every rendering of ``data``, as the S3 trigger and the API make them; returns their sizes."""
    from handler import geometry

    options = geometry.Options()
    result = estimator.estimate(data, max_points=options.max_points)
    files = {
        "heatmap": estimator.heatmap_png(result),
        "depth_png16": estimator.depth_png16(result),
        "pfm": estimator.depth_pfm(result),
        cloud: estimator.point_cloud(result, cloud, options)[0],
    }
    return {name: len(body) for name, body in files.items()}


def child(model_dir: str, image: str, cloud: str) -> dict[str, object]:
    """In this process: the container (the Lambda entry, its HTTP app built), warmed up; the peak reset, ``image``
    run. The figures in MB (``peak_mb`` is absolute)."""
    os.environ["MODEL_DIR"] = model_dir
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from handler import entry
    from handler.sources import http
    from localdev.images import encode, scene

    http.app(entry.estimator, entry.store)  # what the first HTTP event imports and builds
    _pipeline(entry.estimator, encode(scene(640, 480)), cloud)
    baseline = _status_kb("VmRSS")
    _PEAK_RESET.write_text("5")  # VmHWM := VmRSS now
    outcome: dict[str, object] = {}
    try:
        outcome["sizes"] = _pipeline(entry.estimator, Path(image).read_bytes(), cloud)  # the file's bytes count
    except Exception as exc:  # a refusal is a result too: the peak then says what refusing cost
        outcome["refused"] = f"{type(exc).__name__}: {exc}"
    return {**outcome, "baseline_mb": baseline / 1024, "peak_mb": _status_kb("VmHWM") / 1024}


def measure(model_dir: str | Path, image: str | Path, *, cloud: str = "ply", env: dict[str, str] | None = None) -> dict:
    """:func:`child` in a fresh interpreter (``env`` added to this one's environment)."""
    code = "import json, sys; from localdev.memory import child; print(json.dumps(child(*sys.argv[1:])))"
    done = subprocess.run(
        [sys.executable, "-c", code, str(model_dir), str(image), cloud],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])
