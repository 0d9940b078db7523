"""The HTTP API (FastAPI; Mangum adapts API Gateway v1/v2 and Function URL events to it).

Routes only adapt requests and responses; the work is the core's (``DepthEstimator``) and the S3 store's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from handler import outputs
from handler.config import LAMBDA_MAX_RESPONSE_BYTES, Colormap
from handler.core import DepthEstimator, DepthResult
from handler.errors import (
    BucketNotAllowed,
    DepthError,
    InvalidBase64,
    InvalidRequest,
    OutputNotConfigured,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from handler.logs import logger
from handler.s3io import S3Store

# Room left in the 6 MB Lambda response for JSON fields and headers around base64 payloads.
_RESPONSE_BUDGET = LAMBDA_MAX_RESPONSE_BYTES - 64 * 1024
_INDEX_HTML = Path(__file__).with_name("static") / "index.html"
_S3_URI = re.compile(r"^s3://(?P<bucket>[^/]+)/(?P<key>.+)$")
_DATA_URL = re.compile(r"^data:(?P<type>[^;,]*)(?P<params>(;[^;,]*)*),", re.IGNORECASE)


# ------------------------------------------------------------------------------------------------ schemas


class S3Ref(BaseModel):
    """An object in an allow-listed input bucket."""

    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$")
    key: str = Field(min_length=1, max_length=1024)

    @field_validator("key")
    @classmethod
    def _no_parent_segments(cls, key: str) -> str:
        if ".." in key.split("/"):
            raise ValueError("key must not contain '..' segments")
        return key


class DepthRequest(BaseModel):
    """JSON body of POST /depth: exactly one of ``image`` or ``s3``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"image": "<base64 JPEG>"}, {"s3": "s3://my-input-bucket/uploads/a.jpg"}]},
    )

    image: str | None = Field(None, description="base64 image bytes, or a data:image/...;base64, URL")
    s3: S3Ref | None = Field(None, description='{"bucket": ..., "key": ...} or "s3://bucket/key"')
    output: Literal["inline", "s3", "both"] | None = Field(
        None, description="where results go; default: both when an output bucket is configured, else inline"
    )
    include_depth: bool = Field(False, description="also return the depth as a 16-bit PNG")
    colormap: Colormap | None = Field(None, description="heatmap colours (default from configuration: inferno)")

    @field_validator("s3", mode="before")
    @classmethod
    def _parse_s3_uri(cls, value: object) -> object:
        if isinstance(value, str):
            match = _S3_URI.match(value)
            if not match:
                raise ValueError("must be s3://bucket/key or an object {bucket, key}")
            return match.groupdict()
        return value

    @model_validator(mode="after")
    def _exactly_one_source(self) -> DepthRequest:
        if (self.image is None) == (self.s3 is None):
            raise ValueError("give exactly one of 'image' (base64) or 's3' (object reference)")
        return self


class S3Location(BaseModel):
    bucket: str
    key: str
    url: str = Field(description="presigned GET URL")


class PredictResponse(BaseModel):
    """The MiDaS WebUI contract."""

    status: Literal["success"] = "success"
    depth_map_url: str = Field(description="presigned S3 URL of the heatmap PNG, or a data: URL when inline")
    inference_time: float = Field(description="seconds from image bytes to heatmap PNG")
    model_version: str
    width: int
    height: int
    s3: S3Location | None = None


class DepthResponse(BaseModel):
    status: Literal["success"] = "success"
    model_version: str
    width: int
    height: int
    inference_time: float = Field(description="seconds from image bytes to the last rendering")
    timings: dict[str, float] = Field(description="seconds per stage")
    colormap: str
    depth_map_url: str | None = Field(None, description="presigned S3 URL of the heatmap (when written to S3)")
    heatmap_png_base64: str | None = None
    depth_png16_base64: str | None = None
    heatmap_s3: S3Location | None = None
    depth_s3: S3Location | None = None


class ErrorResponse(BaseModel):
    status: Literal["error"] = "error"
    error: str = Field(description="stable machine-readable code")
    message: str
    detail: list[dict[str, Any]] | None = None


_ERRORS = {code: {"model": ErrorResponse} for code in (400, 403, 404, 413, 415, 422, 502, 503)}


# ------------------------------------------------------------------------------------------------ helpers


def decode_base64_image(text: str) -> bytes:
    """base64 (standard or URL-safe, padding optional) or a ``data:image/*;base64,`` URL → bytes."""
    text = text.strip()
    match = _DATA_URL.match(text)
    if match:
        media_type = match["type"].lower()
        if not media_type.startswith("image/"):
            raise UnsupportedMediaType(f"data: URL has type {media_type or 'text/plain'}; expected image/*")
        if ";base64" not in match["params"].lower():
            raise InvalidBase64("data: URL must be base64-encoded (data:image/...;base64,...)")
        text = text[match.end() :]
    text = "".join(text.split())
    if not text:
        raise InvalidBase64("'image' is empty")
    text += "=" * (-len(text) % 4)
    try:
        altchars = b"-_" if ("-" in text or "_" in text) else None
        return base64.b64decode(text, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidBase64("'image' is not valid base64") from None


def refuse_declared_length(request: Request, limit: int, what: str, stated_limit: int | None = None) -> None:
    """413 before reading anything when the Content-Length header already exceeds ``limit``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        stated = limit if stated_limit is None else stated_limit
        raise PayloadTooLarge(f"{what} is {declared} bytes; the limit is {stated} bytes{_S3_HINT}")


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` (Content-Length first, then streaming)."""
    refuse_declared_length(request, limit, what)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"{what} exceeds {limit} bytes{_S3_HINT}")
        chunks.append(chunk)
    return b"".join(chunks)


_S3_HINT = '; for larger images upload to the input bucket and send {"s3": "s3://bucket/key"} to /depth'


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _check_response_budget(*payloads: bytes) -> None:
    size = sum(4 * ((len(p) + 2) // 3) for p in payloads)
    if size > _RESPONSE_BUDGET:
        raise PayloadTooLarge(
            f"the result is {size} bytes as base64, over Lambda's 6 MB response limit; "
            'ask for output "s3" (POST /depth) or send a smaller image'
        )


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


# ------------------------------------------------------------------------------------------------ the app


def create_app(estimator: DepthEstimator, store: S3Store) -> FastAPI:
    """The FastAPI app around one estimator and one S3 store (the container's, or a test's)."""
    settings = estimator.settings
    model = estimator.model
    started_at = time.time()
    app = FastAPI(
        title="MiDaS_small depth",
        version=model.version,
        description="Monocular relative depth (MiDaS v2.1 small) with Inferno heatmaps. "
        "Larger depth values are nearer; yellow = near.",
    )
    _register_error_handlers(app)
    app.add_middleware(StagePrefix)

    def place(result: DepthResult, data: bytes, source: dict[str, str], output: str, colormap: str, with_depth: bool):
        """Render and put the result where it was asked for; returns the fields of a DepthResponse."""
        heatmap = estimator.heatmap_png(result, colormap)
        files = {"heatmap": heatmap}
        if with_depth:
            files["depth_png16"] = estimator.depth_png16(result)
        fields: dict[str, Any] = {}
        if output in ("inline", "both"):
            _check_response_budget(*files.values())
            fields["heatmap_png_base64"] = base64.b64encode(heatmap).decode()
            if with_depth:
                fields["depth_png16_base64"] = base64.b64encode(files["depth_png16"]).decode()
        if output in ("s3", "both"):
            stem = f"api/{hashlib.sha256(data).hexdigest()[:32]}-{colormap}"
            meta = outputs.s3_metadata(**source, model_sha256=model.manifest.data["onnx_sha256"])
            keys = outputs.write_outputs(store, settings, stem, files, meta)
            bucket = settings.output_bucket
            for kind, key in keys.items():
                url = store.presign(bucket, key, settings.presigned_url_ttl)
                fields["heatmap_s3" if kind == "heatmap" else "depth_s3"] = S3Location(bucket=bucket, key=key, url=url)
            fields["depth_map_url"] = fields["heatmap_s3"].url
        return fields

    def log_result(result: DepthResult, source: dict[str, str], size: int) -> dict[str, float]:
        """One structured log line per image; returns the rounded stage timings it logged."""
        timings = {k: round(v, 4) for k, v in result.timings.items()}
        logger.info(
            "depth estimated",
            extra={"source": source, "bytes": size, "width": result.width, "height": result.height, "timings": timings},
        )
        return timings

    def run(data: bytes, source: dict[str, str], output: str, colormap: str, with_depth: bool) -> DepthResponse:
        result = estimator.estimate(data)
        fields = place(result, data, source, output, colormap, with_depth)
        return DepthResponse(
            model_version=model.version,
            width=result.width,
            height=result.height,
            inference_time=round(result.total_seconds, 4),
            timings=log_result(result, source, len(data)),
            colormap=colormap,
            **fields,
        )

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        """The upload page (self-contained: no CDN, relative URLs so it works under an API Gateway stage)."""
        return HTMLResponse(_INDEX_HTML.read_text(encoding="utf-8"))

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, Any]:
        """Model identity and checksums, whether this container is warm, versions."""
        import platform  # imported here: importlib.metadata alone costs ~40 ms of cold start
        from importlib.metadata import version

        manifest = model.manifest.data
        return {
            "status": "ok",
            "model": manifest["model"],
            "model_version": model.version,
            "checkpoint_sha256": manifest["checkpoint_sha256"],
            "onnx_sha256": manifest["onnx_sha256"],
            "opset": manifest.get("opset"),
            "warm": model.runs > 0,
            "images_processed": model.runs,
            "model_load_seconds": round(model.load_seconds, 3),
            "uptime_seconds": round(time.time() - started_at, 1),
            "threads": model.threads,
            "output_bucket_configured": settings.output_bucket is not None,
            "limits": {
                "max_image_bytes": settings.max_image_bytes,
                "max_image_pixels": settings.max_image_pixels,
                "max_json_bytes": settings.max_json_bytes,
                "max_response_bytes": LAMBDA_MAX_RESPONSE_BYTES,
            },
            "versions": {
                "python": platform.python_version(),
                **{name: version(name) for name in ("onnxruntime", "numpy", "fastapi", "mangum")},
                "baked_with": manifest.get("versions", {}),
            },
        }

    @app.post(
        "/predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,
        responses=_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["image"],
                            "properties": {"image": {"type": "string", "format": "binary"}},
                        }
                    }
                },
            }
        },
    )
    async def predict(request: Request) -> PredictResponse:
        """Multipart upload (field ``image``) → heatmap URL, the MiDaS WebUI contract."""
        if _media_type(request) != "multipart/form-data":
            raise UnsupportedMediaType("POST /predict expects multipart/form-data with a file field 'image'")
        # the multipart envelope (boundaries, part headers) gets 64 KB on top of the image limit
        refuse_declared_length(request, settings.max_image_bytes + 64 * 1024, "upload", settings.max_image_bytes)
        try:
            form = await request.form(max_files=1, max_fields=16)
        except StarletteHTTPException as exc:
            raise InvalidRequest(f"malformed multipart body: {exc.detail}") from None
        try:
            upload = form.get("image")
            if upload is None:
                raise ValidationFailed("multipart field 'image' is required")
            if not isinstance(upload, UploadFile):
                raise ValidationFailed("multipart field 'image' must be a file upload, not a text field")
            data = await upload.read(settings.max_image_bytes + 1)
        finally:
            await form.close()
        output = "s3" if settings.output_bucket else "inline"
        colormap = settings.default_colormap
        source = {"source": "upload", "filename": upload.filename or ""}
        res = await run_in_threadpool(run, data, source, output, colormap, False)
        return PredictResponse(
            depth_map_url=res.depth_map_url or f"data:image/png;base64,{res.heatmap_png_base64}",
            inference_time=res.inference_time,
            model_version=res.model_version,
            width=res.width,
            height=res.height,
            s3=res.heatmap_s3,
        )

    @app.post(
        "/depth",
        response_model=DepthResponse,
        response_model_exclude_none=True,
        responses={**_ERRORS, 200: {"content": {"image/png": {}}, "description": "JSON, or the PNG for image bodies"}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/DepthRequest"}},
                    "image/*": {"schema": {"type": "string", "format": "binary"}},
                },
            }
        },
    )
    async def depth(request: Request, colormap: Colormap | None = None) -> Any:
        """JSON (base64 image or S3 reference) → JSON results; a raw ``image/*`` body → the heatmap PNG itself."""
        media_type = _media_type(request)
        if media_type.startswith("image/"):
            data = await read_body(request, settings.max_image_bytes, "image")
            cmap = colormap or settings.default_colormap
            result = await run_in_threadpool(estimator.estimate, data)
            png = await run_in_threadpool(estimator.heatmap_png, result, cmap)
            log_result(result, {"source": "raw body"}, len(data))
            _check_response_budget(png)
            return Response(
                png,
                media_type="image/png",
                headers={
                    "X-Model-Version": model.version,
                    "X-Inference-Time": f"{result.total_seconds:.4f}",
                    "X-Image-Width": str(result.width),
                    "X-Image-Height": str(result.height),
                },
            )
        if media_type != "application/json":
            raise UnsupportedMediaType(
                f"POST /depth accepts application/json or image/*, not {media_type or 'a body without Content-Type'}"
            )
        body = await read_body(request, settings.max_json_bytes, "JSON body")
        try:
            req = DepthRequest.model_validate_json(body)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False, include_context=False)
            if any(e["type"] == "json_invalid" for e in errors):
                raise InvalidRequest("body is not valid JSON") from None
            raise RequestValidationError(errors) from None
        output = req.output or ("both" if settings.output_bucket else "inline")
        if output != "inline" and not settings.output_bucket:
            raise OutputNotConfigured(f"output '{output}' needs an output bucket; this deployment has none")
        if req.s3 is not None:
            if req.s3.bucket not in settings.allowed_input_buckets:
                raise BucketNotAllowed(f"bucket {req.s3.bucket} is not in this function's allowed input buckets")
            obj = await run_in_threadpool(store.get, req.s3.bucket, req.s3.key, settings.max_image_bytes)
            data, source = obj.body, {"source_bucket": obj.bucket, "source_key": obj.key, "source_etag": obj.etag}
        else:
            data, source = decode_base64_image(req.image or ""), {"source": "base64"}
        cmap = req.colormap or colormap or settings.default_colormap
        return await run_in_threadpool(run, data, source, output, cmap, req.include_depth)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            request_schema = DepthRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(request_schema.pop("$defs", {}))
            components["DepthRequest"] = request_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _register_error_handlers(app: FastAPI) -> None:
    """The one place errors become HTTP responses: a JSON body that names the problem, never a traceback."""

    @app.exception_handler(DepthError)
    async def _domain(request: Request, exc: DepthError) -> JSONResponse:
        logger.info("request rejected", extra={"path": request.url.path, "error": exc.code, "reason": exc.message})
        return JSONResponse(exc.to_body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        message = f"{where}: {first['msg']}" if where else first["msg"]
        body = ErrorResponse(error=ValidationFailed.code, message=message, detail=detail)
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
        return JSONResponse(body, status_code=500)
