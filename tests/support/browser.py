"""What the browser tests share: the app served by uvicorn on a free loopback port and headless Chromium
(localdev/browser.py, which `make screenshot` uses too), an API Gateway stage in front of the app, the 3D canvas's
pixels."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from localdev.browser import CHROMIUM, CHROMIUM_ARGS, chromium, served

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "behind_a_stage", "canvas_pixels", "chromium", "served"]


def behind_a_stage(app, stage: str, *, root_path: bool = True):
    """ASGI wrapper: ``{stage}`` and ``{stage}/x`` reach the app as ``/`` and ``/x`` (what API Gateway does with a
    stage), with ``root_path`` set to the stage when ``root_path`` (what the app's StagePrefix then does); paths
    without the stage pass through unchanged."""

    async def asgi(scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == stage or path.startswith(stage + "/")):
            scope = {**scope, "path": path[len(stage) :] or "/", "raw_path": None}
            if root_path:
                scope["root_path"] = stage
        await app(scope, receive, send)

    return asgi


def canvas_pixels(page) -> np.ndarray:
    """The 3D view's canvas as RGB (its WebGL drawing buffer is preserved, so toDataURL reads what is shown)."""
    url = page.eval_on_selector("#cloud", "c => c.toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"), np.float32)
