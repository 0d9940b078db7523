"""Security headers on every response (ASGI middleware), and the content security policy of the HTML pages.

JSON and images get the strictest policy (nothing may load, nothing may frame them); an HTML page sets its own
``Content-Security-Policy`` (see :func:`page_policy`) and the middleware leaves it alone.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

CSP = "content-security-policy"
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_ALWAYS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def page_policy(html: str, **sources: str) -> str:
    """The policy of an HTML page: its inline ``<script>``/``<style>`` blocks allowed by their sha256 (added to
    ``script_src``/``style_src`` when given; a ``style_src`` with 'unsafe-inline' takes no hashes, which would
    cancel it), other directives from ``sources`` (``img_src="'self' blob:"``); everything else refused."""
    hashes: dict[str, list[str]] = {"script-src": [], "style-src": []}
    for tag, body in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes[f"{tag}-src"].append(f"'sha256-{digest}'")
    directives = {"default-src": "'none'", **{name.replace("_", "-"): value for name, value in sources.items()}}
    for name, found in hashes.items():
        given = directives.get(name, "")
        if "'unsafe-inline'" not in given:
            given = " ".join([given, *found]).strip()
        directives[name] = given or "'none'"
    directives.update({"base-uri": "'none'", "form-action": "'none'", "frame-ancestors": "'none'"})
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def api_headers() -> dict[str, str]:
    """Every header the middleware adds, for a response made outside it (the app's 500 handler)."""
    return {**_ALWAYS, CSP: API_POLICY}


class SecurityHeaders:
    """ASGI middleware: adds ``_ALWAYS`` to every response and ``API_POLICY`` where the route set no policy."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.decode("latin-1").lower() for name, _ in headers}
                extra = {**_ALWAYS, **({} if CSP in present else {CSP: API_POLICY})}
                headers += [(k.encode(), v.encode()) for k, v in extra.items() if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
