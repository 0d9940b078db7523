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

from support import ROOT, encode, scene
from support.browser import CHROMIUM, behind_a_stage, canvas_pixels, served

ARTIFACTS = ROOT / "artifacts"
STAGE = "/Prod"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt: chromium)")


@pytest.fixture(scope="module")
def base_url(estimator):
    """uvicorn serving the real app (the baked test model) on a free port of 127.0.0.1, in a background thread."""
    from handler.app import create_app
    from handler.s3_store import S3Store

    with served(behind_a_stage(create_app(estimator, S3Store()), STAGE, root_path=False)) as url:
        yield url


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


# ------------------------------------------------------------------------------------------------ the 3D tab


def frames(page) -> int:
    return int(page.get_attribute("#cloud", "data-frames") or 0)


def redrawn(page, before: int) -> None:
    page.wait_for_function(f"() => +document.getElementById('cloud').dataset.frames > {before}")


def test_3d_tab_renders_the_point_cloud_turns_on_drag_and_resets(page, base_url, tmp_path):
    photo = tmp_path / "garden.jpg"
    rgb = scene(640, 480, seed=3)
    photo.write_bytes(encode(rgb, "JPEG", quality=92))
    page.goto(base_url + "/")
    page.set_input_files("#file", str(photo))
    heatmap_loaded(page)
    assert page.is_hidden("#cloudFig") and page.is_hidden("#dlCloud") and page.is_hidden("#reset3d")

    scripts: list[str] = []
    page.on("response", lambda r: "/vendor/" in r.url and scripts.append(r.headers["content-type"]))
    with page.expect_response(lambda r: r.url == base_url + "/depth") as answer:
        page.click("#tab3d")
    request = json.loads(answer.value.request.post_data)
    assert request["point_cloud"] == "glb" and request["geometry"] == {"max_points": 120000}
    result = answer.value.json()
    assert result["point_cloud"]["stride"] == 2 and result["point_cloud"]["points"] == 320 * 240
    page.wait_for_function("() => document.getElementById('cloud').dataset.points")
    assert int(page.get_attribute("#cloud", "data-points")) == 320 * 240
    assert scripts == ["text/javascript; charset=utf-8"] * 3  # three.module, three.core, OrbitControls
    assert page.is_hidden("#heatmapFig") and page.is_visible("#cloudFig")
    assert page.get_attribute("#tab3d", "aria-selected") == "true"
    assert "76,800 points (one pixel in 2 × 2), focal length 554 px from default-fov" in page.inner_text("#cloudInfo")

    first = canvas_pixels(page)
    assert first.std() > 10, "the canvas is blank"
    # The first view is the photo's own camera: every point lands on its pixel, so the rendering is the photo.
    height, width = first.shape[:2]
    assert abs(width / height - 640 / 480) < 0.01
    expected = np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR), np.float32)
    correlation = np.corrcoef(first.mean(2).ravel(), expected.mean(2).ravel())[0, 1]
    assert correlation > 0.9, correlation

    # Drag: the cloud turns (OrbitControls), the rendering changes.
    box = page.locator("#cloud").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    before = frames(page)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 160, y + 50, steps=8)
    page.mouse.up()
    redrawn(page, before)
    turned = canvas_pixels(page)
    assert np.abs(turned - first).mean() > 5, "dragging did not turn the view"
    assert turned.std() > 10
    shoot(page, "webpage-3d.png")

    # Zoom with the wheel, then reset: back to the first view.
    before = frames(page)
    page.mouse.wheel(0, -400)
    redrawn(page, before)
    before = frames(page)
    page.click("#reset3d")
    redrawn(page, before)
    assert np.abs(canvas_pixels(page) - first).mean() < 1, "Reset view did not return to the photo's camera"

    # Download: the GLB the API returned, named after the photo.
    assert page.is_visible("#dlCloud") and page.get_attribute("#dlCloud", "download") == "garden-points.glb"
    fetched = page.eval_on_selector(
        "#dlCloud", "a => fetch(a.href).then(r => r.arrayBuffer()).then(b => [...new Uint8Array(b)])"
    )
    assert bytes(fetched) == base64.b64decode(result["point_cloud_base64"])

    # Back to the heatmap: no new request, the canvas hidden.
    page.click("#tabHeatmap")
    assert page.is_visible("#heatmapFig") and page.is_hidden("#cloudFig") and page.is_hidden("#dlCloud")


def test_vendored_three_modules_are_served_with_long_caching(base_url):
    import hashlib
    import re
    import urllib.request

    from handler.routes.pages import VENDOR_PATH

    folder = ROOT / "handler" / "static" / "vendor" / "three"
    digests = dict(re.findall(r"\| `([\w.]+)` \|[^|]*\| `([0-9a-f]{64})` \|", (folder / "README.md").read_text()))
    assert set(digests) == {"three.module.min.js", "three.core.min.js", "OrbitControls.js", "LICENSE"}
    for name, digest in digests.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    assert b"The MIT License" in (folder / "LICENSE").read_bytes()
    assert (
        f'"{VENDOR_PATH.rsplit(".", 1)[0].rsplit("-", 1)[1].split(".")[1]}"'.encode()
        in (folder / "three.core.min.js").read_bytes()
    ), "REVISION of the vendored build is not the version in the URL"
    for name in ("three.module.min.js", "three.core.min.js", "OrbitControls.js"):
        with urllib.request.urlopen(base_url + f"{VENDOR_PATH}/{name}") as response:
            assert response.read() == (folder / name).read_bytes()
            assert response.headers["content-type"] == "text/javascript; charset=utf-8"
            assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(base_url + f"{VENDOR_PATH}/README.md")
    assert missing.value.code == 404
    missing.value.close()
    # the page's policy lets it load its own modules, and nothing from elsewhere
    with urllib.request.urlopen(base_url + "/") as response:
        policy = response.headers["content-security-policy"]
    script_src = next(d for d in policy.split("; ") if d.startswith("script-src "))
    assert script_src.split()[1] == "'self'" and all(s.startswith("'sha256-") for s in script_src.split()[2:])
    assert "unsafe" not in policy and "http" not in policy


def test_3d_tab_under_a_stage_loads_its_modules_from_the_stage(page, base_url, tmp_path):
    """Under /Prod (no trailing slash) the page's module imports must go to /Prod/vendor/..., as its API calls do."""
    photo = tmp_path / "small.png"
    photo.write_bytes(encode(scene(200, 150, seed=8), "PNG"))
    modules: list[str] = []
    page.on("request", lambda r: "/vendor/" in r.url and modules.append(r.url.removeprefix(base_url)))
    page.goto(base_url + STAGE)
    page.set_input_files("#file", str(photo))
    heatmap_loaded(page)
    with page.expect_response(lambda r: r.url == f"{base_url}{STAGE}/depth") as answer:
        page.click("#tab3d")
    assert answer.value.json()["point_cloud"]["points"] == 200 * 150
    page.wait_for_function("() => document.getElementById('cloud').dataset.points === '30000'")
    assert sorted(modules) == [
        f"{STAGE}/vendor/three-0.179.1/{name}"
        for name in ("OrbitControls.js", "three.core.min.js", "three.module.min.js")
    ]
    assert canvas_pixels(page).std() > 10
