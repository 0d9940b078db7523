"""GET /: the upload page."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

_INDEX_HTML = Path(__file__).parents[1] / "static" / "index.html"

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> HTMLResponse:
    """The upload page (self-contained: no CDN, relative URLs so it works under an API Gateway stage)."""
    return HTMLResponse(_INDEX_HTML.read_text(encoding="utf-8"))
