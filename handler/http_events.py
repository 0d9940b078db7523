"""HTTP events (API Gateway REST and HTTP APIs, Function URLs, ALB) → the FastAPI app, through Mangum.

Mangum decodes the request body before the app sees the request, so a body flagged ``isBase64Encoded`` that is not
base64 would escape as an exception (a bare 502 at the gateway). It is answered here instead: 400
``invalid_base64`` in the app's error format, shaped by Mangum's own handler for the event's source and version.
The body is decoded once, here, and handed to Mangum's HTTP cycle as it is (Mangum's own ``__call__`` would
decode it a second time). Never with an ASGI lifespan: Mangum would run it on every invocation, and the model is
loaded once per container at import (``handler.container``).
"""

from __future__ import annotations

from typing import Any

from mangum import Mangum
from mangum.protocols import HTTPCycle

from handler.app import error_response
from handler.errors import InvalidBase64


class HttpEvents(Mangum):
    def __init__(self, app: Any, **options: Any) -> None:
        super().__init__(app, **{**options, "lifespan": "off"})

    def __call__(self, event: dict, context: Any) -> dict[str, Any]:
        handler = self.infer(event, context)
        try:
            body = handler.body  # Mangum's decoding of the body, as the request would get it
        except ValueError as exc:  # binascii.Error, or a str that is not ASCII
            error = InvalidBase64(f"the request body is flagged isBase64Encoded but is not valid base64 ({exc})")
            response = error_response(error, handler.scope["path"])
            return handler({"status": response.status_code, "headers": response.raw_headers, "body": response.body})
        return handler(HTTPCycle(handler.scope, body)(self.app))
