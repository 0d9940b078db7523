"""The web page in headless Chromium: the 3D tab's first view shows the photo's own colours with three.js's default
colour management (the GLB's COLOR_0 is linear, as glTF defines it), and the header names test weights."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from handler.app import create_app
from handler.s3_store import S3Store
from support import ROOT, encode, scene
from support.browser import CHROMIUM, canvas_pixels, served

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt: chromium)")

# The rendered cloud's mean colour within this many levels (of 255) of the photo's, per channel. Linear colours read
# as sRGB (or sRGB colours encoded again) come out 50-65 levels lighter in the mid-tones.
TOLERANCE = 12


@pytest.fixture(scope="module")
def page(estimator, browser):
    with served(create_app(estimator, S3Store())) as url:
        context = browser.new_context(viewport={"width": 1200, "height": 760}, device_scale_factor=1)
        page = context.new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url + "/")
        yield page
        context.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def test_the_page_keeps_three_js_default_colour_management():
    html = (ROOT / "handler" / "static" / "index.html").read_text()
    assert "outputColorSpace" not in html and "LinearSRGBColorSpace" not in html


def test_the_header_names_test_weights(page):
    page.wait_for_selector("#testWeights", state="visible")
    assert page.inner_text("#testWeights") == "test weights: the depth is meaningless"


def test_the_3d_tabs_first_view_has_the_photos_colours(page, tmp_path):
    rgb = scene(640, 480, seed=3)
    photo = tmp_path / "garden.png"
    photo.write_bytes(encode(rgb, "PNG"))
    page.set_input_files("#file", str(photo))
    page.wait_for_function(
        "() => { const i = document.getElementById('heatmap'); return i.complete && i.naturalWidth }"
    )
    page.click("#tab3d")
    page.wait_for_function("() => document.getElementById('cloud').dataset.points")
    shown = canvas_pixels(page)
    height, width = shown.shape[:2]
    expected = np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR), np.float32)
    # the middle of the view: the cloud's border may show the background between the outermost points
    inner = (slice(height // 10, -height // 10), slice(width // 10, -width // 10))
    difference = shown[inner].mean((0, 1)) - expected[inner].mean((0, 1))
    assert np.abs(difference).max() <= TOLERANCE, f"rendered minus photo, mean per channel: {difference}"
