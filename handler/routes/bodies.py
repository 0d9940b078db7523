"""Reading request bodies within their limits, and showing what a caller sent in an error message safely."""

from __future__ import annotations

from fastapi import Request

from handler.errors import PayloadTooLarge

S3_HINT = '; for larger images upload to the input bucket and send {"s3": "s3://bucket/key"} to /depth'


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
