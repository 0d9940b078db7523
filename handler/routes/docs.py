"""GET /docs (Swagger UI) and /redoc (ReDoc) with their scripts, styles and icons served by the app itself.

FastAPI's own pages load them from a CDN, so they stay blank without internet access (air-gapped networks, a
laptop offline, a VPC without egress). The files come from the ``fastapi-standalone-docs`` package, pinned in
requirements.txt: swagger-ui-dist's bundle and CSS, ReDoc's standalone bundle (its logo patched to a local URL).
Asset URLs start with the request's root path, so the pages work under an API Gateway REST stage (``/Prod/docs``).
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from handler.headers import CSP, page_policy

SWAGGER_URL = "/docs"
REDOC_URL = "/redoc"
_PACKAGE = "fastapi_standalone_docs"
_JS, _CSS, _PNG, _SVG = "text/javascript", "text/css", "image/png", "image/svg+xml"
# name in the URL → (file under the package's static/, media type); nothing else is served
SWAGGER_ASSETS = {
    "swagger-ui-bundle.js": ("swagger/swagger-ui-bundle.js", _JS),
    "swagger-ui.css": ("swagger/swagger-ui.css", _CSS),
    "favicon.png": ("fastapi/favicon.png", _PNG),
}
REDOC_ASSETS = {
    "redoc.standalone.js": ("redoc/redoc.standalone.js", _JS),
    "logo-mini.svg": ("redoc/logo-mini.svg", _SVG),  # the bundle asks for <page path>/logo-mini.svg
    "favicon.png": ("fastapi/favicon.png", _PNG),
}
# The file names carry no version, so browsers keep them for a day rather than for good.
_CACHE_CONTROL = "public, max-age=86400"


def static_dir() -> Path:
    """The package's static/ folder, found without importing it (its module patches FastAPI when used)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{_PACKAGE} is not installed (pip install -r requirements.txt): /docs needs its files")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


_STATIC = static_dir()  # at import: a missing package fails the cold start, not the first visit to /docs

router = APIRouter(include_in_schema=False)


@cache  # a handful of fixed files, ~3 MB in all
def _read(relative: str) -> bytes:
    return (_STATIC / relative).read_bytes()


def _asset(assets: dict[str, tuple[str, str]], name: str) -> Response:
    if name not in assets:
        raise StarletteHTTPException(404)
    relative, media_type = assets[name]
    return Response(_read(relative), media_type=media_type, headers={"Cache-Control": _CACHE_CONTROL})


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    """Swagger UI and ReDoc load their bundles from the app, run one inline script (allowed by its hash), inject
    styles at run time (so 'unsafe-inline' styles) and ReDoc runs a blob: worker."""
    policy = page_policy(
        page.body.decode(),
        script_src="'self'",
        style_src="'self' 'unsafe-inline'",
        img_src="'self' data:",
        font_src="'self' data:",
        connect_src="'self'",
        worker_src="blob:",
    )
    page.headers[CSP] = policy
    return page


def _root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


@router.api_route(SWAGGER_URL, methods=["GET", "HEAD"])
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI for this API, every file from the app itself."""
    root, app = _root(request), request.app
    page = get_swagger_ui_html(
        openapi_url=root + app.openapi_url,
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{root}{SWAGGER_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{SWAGGER_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{SWAGGER_URL}/favicon.png",
        oauth2_redirect_url=f"{root}{SWAGGER_URL}/oauth2-redirect",
    )
    return _with_policy(page)


@router.api_route(f"{SWAGGER_URL}/oauth2-redirect", methods=["GET", "HEAD"])
def swagger_ui_oauth2_redirect() -> HTMLResponse:
    """Swagger UI's OAuth2 return page (declared before the assets: it would match ``{asset}``)."""
    return _with_policy(get_swagger_ui_oauth2_redirect_html())


@router.api_route(SWAGGER_URL + "/{asset}", methods=["GET", "HEAD"])
def swagger_ui_asset(asset: str) -> Response:
    """One of Swagger UI's files (SWAGGER_ASSETS)."""
    return _asset(SWAGGER_ASSETS, asset)


@router.api_route(REDOC_URL, methods=["GET", "HEAD"])
def redoc(request: Request) -> HTMLResponse:
    """ReDoc for this API, every file from the app itself (no Google Fonts)."""
    root, app = _root(request), request.app
    page = get_redoc_html(
        openapi_url=root + app.openapi_url,
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{root}{REDOC_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{REDOC_URL}/favicon.png",
        with_google_fonts=False,
    )
    return _with_policy(page)


@router.api_route(REDOC_URL + "/{asset}", methods=["GET", "HEAD"])
def redoc_asset(asset: str) -> Response:
    """One of ReDoc's files (REDOC_ASSETS)."""
    return _asset(REDOC_ASSETS, asset)
