"""HTTP events (API Gateway REST and HTTP APIs, Function URLs, ALB) → the FastAPI app (``handler.app``) via Mangum.

The web stack (FastAPI, Starlette, Mangum) is imported and the app built on the first HTTP event, not at import: a
container that only ever sees S3 events never pays for it. Never with an ASGI lifespan: Mangum would run it on every
invocation, and the model is loaded once per container at import (``handler.container``).

Mangum decodes the request body before the app sees the request, so a body flagged ``isBase64Encoded`` that is not
base64 would escape as an exception (a bare 502 at the gateway). It is answered here instead: 400
``invalid_base64`` in the app's error format, shaped by Mangum's own handler for the event's source and version.
The body is decoded once, here, and handed to Mangum's HTTP cycle as it is (Mangum's own ``__call__`` would decode
it a second time).

Mangum indexes the event as AWS writes it: a header whose value is null, a ``requestContext.http`` that is not an
object, a missing ``path``... raise inside it (``AttributeError``, ``KeyError``, ``TypeError``), another bare 502.
Such an event, and one whose scope the app could not serve (a method or path that is not a string), is answered
400 ``invalid_request`` in the API's JSON error format instead, in the response shape every HTTP source accepts.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from handler.events import is_authorizer, is_vpc_lattice
from handler.logs import logger

if TYPE_CHECKING:
    from fastapi import FastAPI
    from mangum import Mangum

    from handler.estimator import DepthEstimator
    from handler.s3_store import S3Store

NAME = "http"
LABEL = "HTTP request (API Gateway REST or HTTP API, Function URL, ALB)"


def matches(event: Any) -> bool:
    """The shapes Mangum adapts: ALB (``requestContext.elb``), REST API (``resource``), HTTP API / Function URL
    (``version``), each with a ``requestContext``; not the authorizer and VPC Lattice requests that look like them
    (refused by name: ``handler.events``)."""
    if not isinstance(event, dict) or not isinstance(event.get("requestContext"), dict):
        return False
    if is_authorizer(event) or is_vpc_lattice(event):
        return False
    return "elb" in event["requestContext"] or "resource" in event or "version" in event


def authenticated_by(event: dict[str, Any]) -> str | None:
    """How AWS authenticated the caller of an HTTP event: ``"iam"`` (SigV4: an HTTP API route with IAM
    authorization, or a function URL with AuthType AWS_IAM) or ``"jwt"`` (an HTTP API JWT authorizer); None for an
    anonymous request. Only payload 2.0 (HTTP API, function URL) carries these, and only AWS writes them: the
    ``requestContext`` is the gateway's, never the caller's, and nothing in the headers or body is read."""
    context = event.get("requestContext")
    authorizer = context.get("authorizer") if isinstance(context, dict) else None
    if event.get("version") != "2.0" or not isinstance(authorizer, dict):
        return None
    return next((kind for kind in ("iam", "jwt") if isinstance(authorizer.get(kind), dict) and authorizer[kind]), None)


@lru_cache(maxsize=1)
def app(estimator: DepthEstimator, store: S3Store) -> FastAPI:
    """The FastAPI app around the container's estimator and store, made once, on first use."""
    from handler.app import create_app

    return create_app(estimator, store)


@lru_cache(maxsize=1)
def _adapter(estimator: DepthEstimator, store: S3Store) -> Mangum:
    from mangum import Mangum

    return Mangum(app(estimator, store), lifespan="off")


# What Mangum raises on an event whose fields are missing or of the wrong type.
_MALFORMED = (AttributeError, KeyError, TypeError, IndexError, ValueError)


def handle(event: dict, context: Any, *, estimator: DepthEstimator, store: S3Store) -> dict[str, Any]:
    """The app's answer to one HTTP event, in the response format of the event's source and version."""
    from mangum.protocols import HTTPCycle

    from handler.app import error_response
    from handler.errors import InvalidBase64

    adapter = _adapter(estimator, store)
    try:
        handler = adapter.infer(event, context)
        scope = _checked(handler.scope)
        if not isinstance(event.get("body"), str | None):
            raise TypeError("body is not a string")
    except _MALFORMED as exc:
        return _malformed(event, exc)
    try:
        body = handler.body  # Mangum's decoding of the body, as the request would get it
    except ValueError as exc:  # binascii.Error, or a str that is not ASCII
        error = InvalidBase64(f"the request body is flagged isBase64Encoded but is not valid base64 ({exc})")
        response = error_response(error, scope["path"])
        return handler({"status": response.status_code, "headers": response.raw_headers, "body": response.body})
    answer = HTTPCycle(scope, body)(adapter.app)
    try:
        return handler(answer)  # shaped from the event's fields (multi-value headers, ...)
    except _MALFORMED as exc:
        return _malformed(event, exc)


def _checked(scope: dict[str, Any]) -> dict[str, Any]:
    """Mangum's ASGI scope, if the app can serve it: the types the ASGI spec gives each field."""
    if not (isinstance(scope["method"], str) and isinstance(scope["path"], str) and scope["path"].startswith("/")):
        raise TypeError("the method and path must be strings, the path absolute")
    if not isinstance(scope["query_string"], bytes):
        raise TypeError("the query string must be a string")
    if not all(_is_header(pair) for pair in scope["headers"]):
        raise TypeError("every header must be a name and a string value")
    client = scope.get("client")
    if client is not None and not (len(client) == 2 and isinstance(client[0], str | None)):
        raise TypeError("the source IP must be a string")
    return scope


def _is_header(pair: Any) -> bool:
    return len(pair) == 2 and all(isinstance(part, bytes) for part in pair)


def _malformed(event: dict, exc: Exception) -> dict[str, Any]:
    """400 ``invalid_request`` for an event Mangum cannot read, in the response shape Mangum gives its source: REST
    APIs' with multi-value headers too, ALB's with them alone when the target group has them on."""
    from handler.app import error_response
    from handler.errors import InvalidRequest

    logger.warning("malformed HTTP event", extra={"error": f"{type(exc).__name__}: {exc}"})
    error = InvalidRequest(
        "malformed HTTP event: a field is missing or has the wrong type "
        f"({type(exc).__name__}); send the event as API Gateway, a Function URL or ALB writes it"
    )
    response = error_response(error, "")
    headers = {name.decode(): value.decode() for name, value in response.raw_headers}
    multi = {name: [value] for name, value in headers.items()}
    context = event.get("requestContext")
    if isinstance(context, dict) and "elb" in context and "multiValueHeaders" in event:
        shaped = {"multiValueHeaders": multi}
    elif "resource" in event:
        shaped = {"headers": headers, "multiValueHeaders": multi}
    else:
        shaped = {"headers": headers}
    return {"statusCode": response.status_code, **shaped, "body": response.body.decode(), "isBase64Encoded": False}
