"""The upload page (GET /) in a real browser: headless Chromium driven by Playwright against uvicorn on 127.0.0.1.

The app is served twice by one server: at ``/`` (as ``make serve`` does) and at ``/Prod`` with the prefix stripped
before the app sees it, which is what API Gateway does with a stage; the page must find the API from either.
Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.browser import CHROMIUM, chromium, served
from tests.conftest import ROOT, encode, scene

ARTIFACTS = ROOT / "artifacts"
STAGE = "/Prod"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt: chromium)")


def with_stage(app, stage: str):
    """ASGI wrapper: ``{stage}/...`` reaches the app as ``/...`` (API Gateway strips the stage the same way)."""

    async def asgi(scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == stage or path.startswith(stage + "/")):
            scope = {**scope, "path": path[len(stage) :] or "/", "raw_path": None}
        await app(scope, receive, send)

    return asgi


@pytest.fixture(scope="module")
def base_url(estimator):
    """uvicorn serving the real app (the baked test model) on a free port of 127.0.0.1, in a background thread."""
    from handler.http import create_app
    from handler.s3io import S3Store

    with served(with_stage(create_app(estimator, S3Store()), STAGE)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 760}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: "Content Security Policy" in m.text and errors.append(m.text))  # blocked by CSP
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def heatmap_loaded(page) -> dict[str, int]:
    page.wait_for_function(
        "() => { const i = document.getElementById('heatmap'); return i.complete && i.naturalWidth }"
    )
    return page.eval_on_selector("#heatmap", "i => ({width: i.naturalWidth, height: i.naturalHeight})")


def test_upload_shows_photo_and_heatmap_with_depth_on_hover(page, base_url, tmp_path):
    photo = tmp_path / "street.jpg"
    photo.write_bytes(encode(scene(640, 480, seed=3), "JPEG", quality=90))
    page.goto(base_url + "/")
    with page.expect_response(lambda r: r.url == base_url + "/depth") as answer:
        page.set_input_files("#file", str(photo))
    assert answer.value.status == 200
    result = answer.value.json()

    assert heatmap_loaded(page) == {"width": 640, "height": 480}
    page.wait_for_function("() => document.getElementById('photo').naturalWidth === 640")
    photo_box, heatmap_box = page.locator("#photo").bounding_box(), page.locator("#heatmap").bounding_box()
    assert heatmap_box["x"] >= photo_box["x"] + photo_box["width"], "photo and heatmap are not side by side"
    assert abs(heatmap_box["y"] - photo_box["y"]) < 1 and abs(heatmap_box["height"] - photo_box["height"]) < 1
    info = page.inner_text("#info")
    assert "640 × 480 px" in info and f"inference {result['inference_time']:.2f} s" in info
    assert page.is_hidden("#busy") and page.is_hidden("#error")

    # Downloads: the exact bytes the API returned, as blob: URLs with file names.
    for link, field, name in [
        ("#dlHeatmap", "heatmap_png_base64", "street-depth-inferno.png"),
        ("#dlDepth", "depth_png16_base64", "street-depth16.png"),
    ]:
        assert page.get_attribute(link, "href").startswith("blob:")
        assert page.get_attribute(link, "download") == name
        fetched = page.eval_on_selector(
            link, "a => fetch(a.href).then(r => r.arrayBuffer()).then(b => [...new Uint8Array(b)])"
        )
        assert bytes(fetched) == base64.b64decode(result[field])

    # The page's own 16-bit PNG decoder reads every sample exactly as PIL does.
    expected = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["depth_png16_base64"]))), dtype=np.uint16)
    assert expected.shape == (480, 640) and expected.max() >= 65534  # float32 min-max: 65535 or 65534, as upstream
    page.wait_for_function("() => depth !== null")
    decoded = np.array(page.evaluate("Array.from(depth.data)"), dtype=np.uint16).reshape(480, 640)
    np.testing.assert_array_equal(decoded, expected)

    # Hover: the value under the cursor, at the image pixel under the cursor.
    for px, py in [(100, 60), (500, 400)]:
        page.mouse.move(
            heatmap_box["x"] + (px + 0.5) * heatmap_box["width"] / 640,
            heatmap_box["y"] + (py + 0.5) * heatmap_box["height"] / 480,
        )
        readout = page.locator("#readout")
        readout.wait_for(state="visible")
        assert (int(readout.get_attribute("data-x")), int(readout.get_attribute("data-y"))) == (px, py)
        value = float(readout.get_attribute("data-value"))
        assert value == pytest.approx(expected[py, px] / 65535, abs=1e-12)
        assert readout.inner_text() == f"depth {value:.3f} at x {px}, y {py}"
    shoot(page, "webpage.png")


def test_not_an_image_shows_the_servers_message_under_a_stage(page, base_url, tmp_path):
    """Served at /Prod (no trailing slash, like an API Gateway stage URL): relative URLs still reach the API."""
    fake = tmp_path / "notes.jpg"
    fake.write_bytes(b"these are notes, not a photo\n" * 40)
    with page.expect_response(lambda r: r.url == f"{base_url}{STAGE}/health") as health:
        page.goto(base_url + STAGE)
    assert health.value.ok
    page.wait_for_function("() => document.getElementById('model').textContent.startsWith('Model ')")
    assert page.get_attribute("#healthLink", "href") == f"{STAGE}/health"

    # Dropped onto the drop zone this time (the first test uses the file chooser).
    notes = page.evaluate_handle(
        "text => { const d = new DataTransfer(); d.items.add(new File([text], 'notes.jpg', {type: 'image/jpeg'}));"
        " return d; }",
        fake.read_text(),
    )
    with page.expect_response(lambda r: r.url == f"{base_url}{STAGE}/depth") as answer:
        page.dispatch_event("#drop", "drop", {"dataTransfer": notes})
    assert answer.value.status == 400
    body = answer.value.json()
    assert body["error"] == "invalid_image"

    error = page.locator("#error")
    error.wait_for(state="visible")
    assert error.inner_text().startswith(f"{body['message']} (HTTP 400, invalid_image)")
    assert "not an image" in body["message"]
    assert page.is_hidden("#result") and page.is_hidden("#busy")
    shoot(page, "webpage-error.png")


def test_too_large_file_is_refused_before_upload_and_downscaled_in_the_browser(page, base_url, tmp_path):
    big = tmp_path / "scan.png"
    Image.fromarray(scene(2000, 1400, seed=5)).save(big, format="PNG", compress_level=0)
    size = big.stat().st_size
    assert size > 7.5 * 1024 * 1024
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.url.endswith("/depth") else None)
    page.goto(base_url + "/")

    page.set_input_files("#file", str(big))
    notice = page.locator("#notice")
    notice.wait_for(state="visible")
    text = page.inner_text("#noticeText")
    assert f"the file is {size / 1024 / 1024:.1f} MB, over the 7.5 MB upload limit" in text
    assert page.is_visible("#shrink") and page.is_hidden("#asIs"), "a file over the limit must not be sent as is"
    assert sent == [], "nothing may be uploaded before the user chooses"
    shoot(page, "webpage-too-large.png")

    with page.expect_response(lambda r: r.url == base_url + "/depth") as answer:
        page.click("#shrink")
    assert answer.value.status == 200
    request = json.loads(answer.value.request.post_data)
    assert len(base64.b64decode(request["image"])) < size / 4
    result = answer.value.json()
    width, height = result["width"], result["height"]
    assert width * height <= 2_000_000 and abs(width / height - 2000 / 1400) < 0.01
    assert heatmap_loaded(page) == {"width": width, "height": height}
    info = page.inner_text("#info")
    assert f"{width} × {height} px" in info and "downscaled in the browser from" in info
    assert page.get_attribute("#dlDepth", "download") == "scan-depth16.png"


def test_response_too_large_offers_downscale_and_retry(page, base_url, tmp_path):
    """A 413 from the function (its result would not fit Lambda's 6 MB response) is explained and can be retried."""
    photo = tmp_path / "wide.jpg"
    photo.write_bytes(encode(scene(1800, 1300, seed=7), "JPEG", quality=85))
    refusal = {
        "status": "error",
        "error": "payload_too_large",
        "message": "the result is 6500000 bytes as base64, over Lambda's 6 MB response limit",
    }
    calls: list[int] = []

    def first_refused(route):
        calls.append(len(json.loads(route.request.post_data)["image"]))
        if len(calls) == 1:
            route.fulfill(status=413, json=refusal)
        else:
            route.continue_()

    page.route("**/depth", first_refused)
    page.goto(base_url + "/")
    page.set_input_files("#file", str(photo))
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert error.inner_text().startswith(f"{refusal['message']} (HTTP 413, payload_too_large)")

    with page.expect_response(lambda r: r.url == base_url + "/depth") as answer:
        error.get_by_role("button", name="Downscale to 2 MP and retry").click()
    result = answer.value.json()
    assert len(calls) == 2 and result["width"] * result["height"] <= 2_000_000
    assert heatmap_loaded(page) == {"width": result["width"], "height": result["height"]}
    assert page.is_hidden("#error")
