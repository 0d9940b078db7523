"""GET /: the upload page."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from handler.headers import CSP, page_policy

_INDEX_HTML = (Path(__file__).parents[1] / "static" / "index.html").read_text(encoding="utf-8")
# The page shows the photo and its heatmap from blob: URLs and talks to this API only.
_INDEX_POLICY = page_policy(_INDEX_HTML, img_src="'self' blob: data:", connect_src="'self' blob:")

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> HTMLResponse:
    """The upload page (self-contained: no CDN, relative URLs so it works under an API Gateway stage)."""
    return HTMLResponse(_INDEX_HTML, headers={CSP: _INDEX_POLICY})
