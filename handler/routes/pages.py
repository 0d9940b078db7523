"""GET /: the upload page, and the three.js modules its 3D view loads (handler/static/vendor/three/README.md)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from handler.headers import CSP, page_policy

_STATIC = Path(__file__).parents[1] / "static"
_INDEX_HTML = (_STATIC / "index.html").read_text(encoding="utf-8")
# The page shows the photo and its heatmap from blob: URLs, talks to this API only, and loads the three.js modules
# of its 3D view from this app ('self'); its own inline script is allowed by its hash.
_INDEX_POLICY = page_policy(_INDEX_HTML, script_src="'self'", img_src="'self' blob: data:", connect_src="'self' blob:")

THREE_VERSION = "0.179.1"
VENDOR_PATH = f"/vendor/three-{THREE_VERSION}"
# The files served under VENDOR_PATH (nothing else): the version is in the URL, so browsers may keep them for good.
_VENDOR = {
    name: (_STATIC / "vendor" / "three" / name).read_bytes()
    for name in (
        "three.module.min.js",
        "three.core.min.js",
        "OrbitControls.js",
    )
}
_VENDOR_CACHE = "public, max-age=31536000, immutable"

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> HTMLResponse:
    """The upload page (self-contained: no CDN, relative URLs so it works under an API Gateway stage)."""
    return HTMLResponse(_INDEX_HTML, headers={CSP: _INDEX_POLICY})


@router.get(VENDOR_PATH + "/{asset}")
def vendor(asset: str) -> Response:
    """A vendored three.js module (JavaScript modules need a JavaScript media type to run)."""
    if asset not in _VENDOR:
        raise StarletteHTTPException(404)
    return Response(
        _VENDOR[asset], media_type="text/javascript; charset=utf-8", headers={"Cache-Control": _VENDOR_CACHE}
    )
