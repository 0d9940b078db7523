"""GET /docs (Swagger UI) and /redoc (ReDoc) with no internet: every script, style and icon comes from the app.

Checked through TestClient, through the real Lambda entry (Mangum) with API Gateway REST (stage prefix) and HTTP API
events, and in headless Chromium with every request to another host refused.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from handler.app import create_app
from handler.s3_store import S3Store
from support import ROOT, api_event, response_body
from support.browser import behind_a_stage, served

STATIC = Path(next(iter(importlib.util.find_spec("fastapi_standalone_docs").submodule_search_locations))) / "static"
# Every asset each page refers to: URL path under the page → (file in the package, content type, what it starts with)
PAGES = {
    "/docs": {
        "/docs/swagger-ui-bundle.js": ("swagger/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
        "/docs/swagger-ui.css": ("swagger/swagger-ui.css", "text/css; charset=utf-8"),
        "/docs/favicon.png": ("fastapi/favicon.png", "image/png"),
        "/openapi.json": (None, "application/json"),
    },
    "/redoc": {
        "/redoc/redoc.standalone.js": ("redoc/redoc.standalone.js", "text/javascript; charset=utf-8"),
        "/redoc/favicon.png": ("fastapi/favicon.png", "image/png"),
        "/openapi.json": (None, "application/json"),
    },
}
ASSETS = {path: what for assets in PAGES.values() for path, what in assets.items()}
_URL = re.compile(r"""(?:src|href|spec-url)="([^"]*)"|url: '([^']*)'""")


@pytest.fixture(scope="module")
def client(estimator, s3_endpoint) -> TestClient:
    return TestClient(create_app(estimator, S3Store()))


def referenced_urls(html: str) -> set[str]:
    """The URLs a docs page loads: scripts, styles, icon and the OpenAPI document."""
    return {a or b for a, b in _URL.findall(html)}


def check_page(html: str, page: str, root: str) -> set[str]:
    assert "http://" not in html and "https://" not in html, html  # no CDN, no Google Fonts, no remote icon
    urls = referenced_urls(html)
    assert urls == {root + path for path in PAGES[page]}, urls
    return urls


def check_asset(path: str, status: int, content_type: str, body: bytes) -> None:
    relative, expected_type = ASSETS[path]
    assert status == 200, path
    assert content_type == expected_type, (path, content_type)
    if relative is None:
        assert b'"/depth"' in body  # the OpenAPI document itself
    else:
        assert body == (STATIC / relative).read_bytes(), path  # byte for byte, text and binary alike


# ------------------------------------------------------------------------------------------------ TestClient


@pytest.mark.parametrize("page", sorted(PAGES))
def test_docs_pages_load_only_the_apps_own_files(client, page):
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    for url in check_page(response.text, page, ""):
        asset = client.get(url)
        check_asset(url, asset.status_code, asset.headers["content-type"], asset.content)


def test_assets_are_cacheable_and_the_bundles_are_the_real_ones(client):
    swagger = client.get("/docs/swagger-ui-bundle.js")
    assert swagger.headers["cache-control"] == "public, max-age=86400"
    assert b"SwaggerUIBundle" in swagger.content and len(swagger.content) > 500_000
    redoc = client.get("/redoc/redoc.standalone.js")
    assert b"Redoc" in redoc.content and len(redoc.content) > 500_000
    # ReDoc's bundle shows its logo from <page path>/logo-mini.svg, not from its CDN
    assert b"cdn.redoc.ly" not in redoc.content and b'window.location.pathname+"/logo-mini.svg"' in redoc.content
    logo = client.get("/redoc/logo-mini.svg")
    assert logo.status_code == 200 and logo.headers["content-type"] == "image/svg+xml"
    assert logo.content.lstrip().startswith(b"<svg")


@pytest.mark.parametrize(
    "path",
    ["/docs/nope.js", "/redoc/swagger-ui.css", "/docs/..%2F..%2F__init__.py", "/docs/..%2Fredoc%2Flogo-mini.svg"],
)
def test_only_the_listed_assets_are_served(client, path):
    response = client.get(path)
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_swagger_oauth2_redirect_page_is_still_served(client):
    response = client.get("/docs/oauth2-redirect")
    assert response.status_code == 200 and "oauth2" in response.text


def test_docs_routes_are_not_in_the_openapi_document(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {"/health", "/predict", "/depth"}


# ------------------------------------------------------------------------------------------------ Lambda entry


@pytest.mark.parametrize(("kind", "root"), [("v2", ""), ("v1", "/prod")])
@pytest.mark.parametrize("page", sorted(PAGES))
def test_docs_through_the_lambda_entry(entry, lambda_context, kind, root, page):
    """HTTP API ($default stage) and REST API (stage prefix in requestContext.path) events, as API Gateway sends."""
    response = entry.lambda_handler(api_event(kind, "GET", page), lambda_context)
    assert response["statusCode"] == 200
    for url in check_page(response_body(response).decode(), page, root):
        path = url[len(root) :]  # API Gateway strips the stage from the path it passes on
        asset = entry.lambda_handler(api_event(kind, "GET", path), lambda_context)
        headers = {k.lower(): v for k, v in asset["headers"].items()}
        check_asset(path, asset["statusCode"], headers["content-type"], response_body(asset))


# ------------------------------------------------------------------------------------------------ a real browser

STAGE = "/Prod"


@pytest.fixture(scope="module")
def base_url(estimator, s3_endpoint):
    with served(behind_a_stage(create_app(estimator, S3Store()), STAGE)) as url:
        yield url


@pytest.fixture
def offline_page(browser):
    """A page whose requests to any host but 127.0.0.1 are refused (and recorded), as on a machine offline."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.elsewhere, page.errors, page.failed = [], [], []

    def route(request_route):
        if urlsplit(request_route.request.url).hostname == "127.0.0.1":
            request_route.continue_()
        else:
            page.elsewhere.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("console", lambda m: "Content Security Policy" in m.text and page.errors.append(m.text))
    page.on("response", lambda r: r.status >= 400 and page.failed.append(f"{r.status} {r.url}"))
    yield page
    context.close()


def shoot(page, name: str) -> None:
    (ROOT / "artifacts").mkdir(exist_ok=True)
    page.screenshot(path=str(ROOT / "artifacts" / name), full_page=False)


@pytest.mark.parametrize("stage", ["", STAGE], ids=["root", "stage"])
def test_swagger_ui_renders_offline(offline_page, base_url, stage):
    page = offline_page
    page.goto(f"{base_url}{stage}/docs")
    page.locator(".opblock-summary-path", has_text="/depth").wait_for()
    assert page.locator(".opblock-summary-path").all_inner_texts() == ["/health", "/predict", "/depth"]
    assert page.locator(".info .title").inner_text().startswith("MiDaS_small depth")
    page.locator(".opblock-summary-path", has_text="/depth").click()  # the schemas render from /openapi.json
    page.locator(".opblock-body").first.wait_for()
    shoot(page, f"docs-swagger{stage.replace('/', '-').lower()}.png")
    assert (page.elsewhere, page.errors, page.failed) == ([], [], [])


@pytest.mark.parametrize("stage", ["", STAGE], ids=["root", "stage"])
def test_redoc_renders_offline(offline_page, base_url, stage):
    page = offline_page
    page.goto(f"{base_url}{stage}/redoc")
    page.get_by_role("heading", name="MiDaS_small depth", exact=False).first.wait_for()
    page.locator("[data-section-id='operation/depth_depth_post']").first.wait_for()
    logo = page.locator("img[alt='redocly logo']")
    logo.wait_for()
    assert logo.evaluate("i => i.complete && i.naturalWidth") > 0  # drawn from /redoc/logo-mini.svg
    shoot(page, f"docs-redoc{stage.replace('/', '-').lower()}.png")
    assert (page.elsewhere, page.errors, page.failed) == ([], [], [])
