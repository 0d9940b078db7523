"""Reading request bodies within their limits, and showing what a caller sent in an error message safely."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request

from handler.errors import PayloadTooLarge

if TYPE_CHECKING:
    from handler.config import Settings

S3_HINT = '; for larger images upload to the input bucket and send {"s3": "s3://bucket/key"} to /depth'
# What a multipart upload may add to the image limit: boundaries and part headers.
MULTIPART_ENVELOPE = 64 * 1024


def shown(value: str, limit: int = 50) -> str:
    """A caller's value as an error message may show it: printable ASCII only, at most ``limit`` characters."""
    text = "".join(c if " " <= c <= "~" else "?" for c in value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def refuse_declared_length(request: Request, limit: int, what: str, stated_limit: int | None = None) -> None:
    """413 before reading anything when the Content-Length header already exceeds ``limit``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        stated = limit if stated_limit is None else stated_limit
        raise PayloadTooLarge(f"{what} is {declared} bytes; the limit is {stated} bytes{S3_HINT}")


def largest_body(settings: Settings) -> int:
    """The largest request body any route accepts: a multipart upload of the largest image, or the largest JSON."""
    return max(settings.max_image_bytes + MULTIPART_ENVELOPE, settings.max_json_bytes)


class StreamedBodyLimit:
    """ASGI middleware for a server that streams request bodies (``make serve``'s uvicorn): a body sent without
    Content-Length (chunked) is refused with 413 as soon as the bytes received pass :func:`largest_body`, before a
    route could spool it (a multipart form is parsed whole, to a temporary file). Not used under Lambda, whose event
    holds the whole body: the routes' own limits apply there as they always did."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or any(name == b"content-length" for name, _ in scope.get("headers", [])):
            await self.app(scope, receive, send)
            return
        received, answering = 0, False

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request" and not answering:
                received += len(message.get("body", b""))
                if received > self.limit:  # raised in the route that reads: answered by the app's error map
                    raise PayloadTooLarge(
                        f"request body exceeds {self.limit} bytes (refused after {received} bytes, sent without "
                        f"Content-Length){S3_HINT}"
                    )
            return message

        async def watched(message: dict) -> None:
            nonlocal answering
            answering = answering or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted, watched)


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` (Content-Length first, then streaming)."""
    refuse_declared_length(request, limit, what)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"{what} exceeds {limit} bytes{S3_HINT}")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
