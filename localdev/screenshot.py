"""`make screenshot`: retake the documents' screenshots of the web page (docs/screenshot.png, the heatmap tab with
the depth under the cursor; docs/screenshot-3d.png, the 3D tab after a drag) with a real photograph.

The photograph is scikit-image's sample ``coffee`` (skimage.data, BSD licence), uploaded through the page as a person
would, in headless Chromium (localdev/browser.py) against the real app (handler.app) serving ``--model-dir``. The
screenshots are quantised to 256 colours and optimised, which keeps each well under 300 KB. With the test model
(weights from scripts/make_test_checkpoint.py) the page announces test weights and the depth is meaningless: the
captions in README.md and docs/ say so.

    python scripts/screenshot.py [--model-dir layer/model] [--out docs]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = "coffee"  # skimage.data's name
VIEWPORT = {"width": 1200, "height": 760}
SHOTS = {"heatmap": "screenshot.png", "3d": "screenshot-3d.png"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "layer" / "model", help="baked model (layer/model)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder of the screenshots (docs/)")
    return parser.parse_args(argv)


def optimised_png(png: bytes) -> bytes:
    """The screenshot as a 256-colour palette PNG (dithered), optimised: a fraction of the RGB file's bytes."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as shot:
        palette = shot.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    palette.save(out, format="PNG", optimize=True)
    return out.getvalue()


def photo_file(folder: Path) -> Path:
    """scikit-image's sample photograph as a JPEG file to upload."""
    from PIL import Image
    from skimage import data

    path = folder / f"{PHOTO}.jpg"
    Image.fromarray(getattr(data, PHOTO)()).save(path, quality=92)
    return path


def app_of(model_dir: Path):
    """The real app around an estimator of ``model_dir`` (inline answers only: no bucket is used)."""
    from handler.app import create_app
    from handler.config import Settings
    from handler.estimator import DepthEstimator
    from handler.model import DepthModel
    from handler.s3_store import S3Store

    settings = Settings(model_dir=str(model_dir), output_bucket="unused", allowed_input_buckets="unused")
    return create_app(DepthEstimator(settings, DepthModel.load(model_dir)), S3Store())


def take(url: str, photo: Path) -> dict[str, bytes]:
    """Upload ``photo`` on the page at ``url``; the heatmap tab with a depth read-out, then the 3D tab turned."""
    from localdev.browser import chromium

    shots = {}
    with chromium() as browser:
        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(url + "/")
        page.set_input_files("#file", str(photo))
        page.wait_for_function(
            "() => { const i = document.getElementById('heatmap'); return i.complete && i.naturalWidth }"
        )
        page.wait_for_function("() => depth !== null")
        box = page.locator("#heatmap").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.55)
        page.locator("#readout").wait_for(state="visible")
        shots["heatmap"] = page.screenshot(full_page=True)
        page.click("#tab3d")
        page.wait_for_function("() => document.getElementById('cloud').dataset.points")
        box = page.locator("#cloud").bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        frames = int(page.get_attribute("#cloud", "data-frames") or 0)
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 120, y + 40, steps=8)
        page.mouse.up()
        page.wait_for_function(f"() => +document.getElementById('cloud').dataset.frames > {frames}")
        shots["3d"] = page.screenshot(full_page=True)
        context.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.model_dir / "manifest.json").is_file():
        print(f"error: no baked model in {args.model_dir}: run 'make bake' (or pass --model-dir)", file=sys.stderr)
        return 2
    from localdev.browser import CHROMIUM, served

    if not CHROMIUM.exists():
        print(f"error: no Chromium at {CHROMIUM} (apt: chromium)", file=sys.stderr)
        return 2
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with tempfile.TemporaryDirectory() as folder, served(app_of(args.model_dir)) as url:
        shots = take(url, photo_file(Path(folder)))
    args.out.mkdir(parents=True, exist_ok=True)
    for kind, png in shots.items():
        path = args.out / SHOTS[kind]
        path.write_bytes(optimised_png(png))
        print(f"{path} ({path.stat().st_size // 1024} KB)")
    return 0
