"""The HTTP API (FastAPI; Mangum adapts API Gateway v1/v2, Function URL and ALB events to it: handler.sources.http).

``create_app`` assembles the routers of ``handler.routes`` (one per resource) around one estimator and one S3 store,
kept on ``app.state`` and handed to routes by the dependencies in ``handler.routes.deps``. Routes only adapt
requests and responses; the work is the estimator's (``DepthEstimator``) and the S3 store's.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from handler.errors import DepthError, ValidationFailed
from handler.estimator import DepthEstimator
from handler.headers import SecurityHeaders, api_headers
from handler.logs import logger
from handler.routes import depth, docs, health, pages, predict
from handler.routes.bodies import StreamedBodyLimit, largest_body
from handler.s3_store import S3Store
from handler.schemas import DepthRequest, ErrorResponse, GeometryRequest, S3Ref, add_request_schema

_ROUTERS = (pages.router, docs.router, health.router, predict.router, depth.router)


class StagePrefix:
    """ASGI middleware: behind a REST API stage (``/Prod/...``) tell the app its root path, so that the docs page
    and the OpenAPI ``servers`` point under the stage. Mangum passes the event as ``scope["aws.event"]``; HTTP API
    ``$default`` stages and Function URLs have no prefix and pass through unchanged."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        context = (scope.get("aws.event") or {}).get("requestContext") or {}
        stage, full_path = context.get("stage"), context.get("path")
        if scope["type"] == "http" and stage and stage != "$default" and str(full_path).startswith(f"/{stage}/"):
            scope = {**scope, "root_path": f"/{stage}"}
        await self.app(scope, receive, send)


MODEL_WARNING_HEADER = "x-model-warning"
_DEPTH_PATHS = ("/depth", "/predict")


class ModelWarning:
    """ASGI middleware: every answer of the depth routes carries ``warning`` (a model baked from test weights says
    so where a client looks, not only in /health)."""

    def __init__(self, app: Any, warning: str) -> None:
        self.app, self.header = app, (MODEL_WARNING_HEADER.encode(), warning.encode())

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].rstrip("/").endswith(_DEPTH_PATHS):
            await self.app(scope, receive, send)
            return

        async def send_with_warning(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, send_with_warning)


def create_app(estimator: DepthEstimator, store: S3Store, *, streamed_bodies: bool = False) -> FastAPI:
    """The FastAPI app around one estimator and one S3 store (the container's, or a test's); ``streamed_bodies``:
    served by a server that streams request bodies (uvicorn), whose chunked bodies are counted as they arrive."""
    app = FastAPI(
        title="MiDaS_small depth",
        version=estimator.model.version,
        description="Monocular relative depth (MiDaS v2.1 small) with Inferno heatmaps. "
        "Larger depth values are nearer; yellow = near.",
        docs_url=None,  # FastAPI's pages load their files from a CDN; handler.routes.docs serves them itself
        redoc_url=None,
        # The routers' routes themselves, not include_router: that keeps each router as one opaque entry of
        # app.routes (FastAPI >= 0.137), and what reads app.routes (the template's route check) needs every path
        # and method. The routes are shared by every app, so app.dependency_overrides does not reach them: the
        # estimator and store given here are the seam.
        routes=[route for router in _ROUTERS for route in router.routes],
    )
    app.state.estimator = estimator
    app.state.store = store
    app.state.started_at = time.time()
    _register_error_handlers(app)
    app.add_middleware(StagePrefix)
    if streamed_bodies:
        app.add_middleware(StreamedBodyLimit, limit=largest_body(estimator.settings))
    if estimator.model.manifest.test_weights:
        app.add_middleware(ModelWarning, warning=estimator.model.manifest.test_weights)
    app.add_middleware(SecurityHeaders)  # added last: the outermost, so that error responses get them too

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            add_request_schema(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def error_response(exc: DepthError, path: str) -> JSONResponse:
    """A refused request: logged, and answered with the error's status and JSON body (and the security headers,
    for the answers made before the app, see handler.sources.http)."""
    logger.info("request rejected", extra={"path": path, "error": exc.code, "reason": exc.message})
    return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=api_headers())


# A 422 lists this many errors at most (plus their count), and names only the fields the API declares: a body
# of many bad or unknown keys answers in a few hundred bytes, never with the caller's own strings.
MAX_VALIDATION_DETAILS = 5
_MAX_MESSAGE = 200
_DECLARED_NAMES = frozenset(
    {
        "body",
        "query",
        "path",
        "header",
        "cookie",
        *DepthRequest.model_fields,
        *S3Ref.model_fields,
        *GeometryRequest.model_fields,
    }
)


def _safe_loc(loc: Any) -> list[str | int]:
    return [p if isinstance(p, int) or p in _DECLARED_NAMES else "<field>" for p in (loc or ())]


def bounded_validation_error(errors: Any) -> ErrorResponse:
    """FastAPI's validation errors → a bounded 422 body: the first few, each location limited to declared names,
    no input values, messages cut short, and the total count."""
    errors = list(errors)
    detail = [
        {"loc": _safe_loc(e.get("loc")), "msg": str(e.get("msg", ""))[:_MAX_MESSAGE], "type": str(e.get("type", ""))}
        for e in errors[:MAX_VALIDATION_DETAILS]
    ]
    first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"] if p != "body")
    message = f"{where}: {first['msg']}" if where else first["msg"]
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' * (len(errors) > 2)})"
    return ErrorResponse(error=ValidationFailed.code, message=message, detail=detail)


def _register_error_handlers(app: FastAPI) -> None:
    """The one place errors become HTTP responses: a JSON body that names the problem, never a traceback."""

    @app.exception_handler(DepthError)
    async def _domain(request: Request, exc: DepthError) -> JSONResponse:
        return error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        body = bounded_validation_error(exc.errors())
        return JSONResponse(body.model_dump(), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        body = {"status": "error", "error": codes.get(exc.status_code, "http_error"), "message": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error", extra={"path": request.url.path})
        body = {"status": "error", "error": "internal_error", "message": "internal error; see the function's logs"}
        return JSONResponse(body, status_code=500, headers=api_headers())  # sent outside the middleware
