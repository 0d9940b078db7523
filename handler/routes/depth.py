"""POST /depth: a JSON body (base64 image or S3 reference) → JSON results; a raw ``image/*`` body → the PNG."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from handler.config import Colormap, Settings
from handler.errors import (
    AuthenticationRequired,
    InvalidBase64,
    InvalidRequest,
    OutputNotConfigured,
    UnsupportedMediaType,
    ValidationFailed,
)
from handler.estimator import DepthEstimator
from handler.routes.bodies import media_type, read_body, shown
from handler.routes.deps import Authentication, Estimator, Store, run_blocking
from handler.routes.results import (
    PointCloudAsk,
    RenderRequest,
    check_response_budget,
    http_heatmap,
    log_result,
    respond,
)
from handler.s3_store import S3Store
from handler.schemas import ERRORS, DepthRequest, DepthResponse, GeometryRequest, S3Ref

_DATA_URL = re.compile(r"^data:(?P<type>[^;,]*)(?P<params>(;[^;,]*)*),", re.IGNORECASE)

router = APIRouter()


def refuse_unknown_keys(value: dict[str, Any], model: type[BaseModel], where: str) -> None:
    """422 for keys ``model`` does not have, counted but never echoed, before any per-field validation: a body
    of many unknown keys costs one pass over them and a short reply."""
    unknown = sum(1 for name in value if name not in model.model_fields)
    if unknown:
        allowed = ", ".join(model.model_fields)
        raise ValidationFailed(f"{where} has {unknown} unknown field{'s' * (unknown > 1)}; allowed: {allowed}")


def parse_depth_request(body: bytes) -> DepthRequest:
    """The JSON body → DepthRequest: 400 if it is not JSON, 422 for unknown keys (see ``refuse_unknown_keys``)
    and for invalid values (FastAPI's validation errors, bounded by the app's handler)."""
    try:
        value = from_json(body)
    except ValueError:
        raise InvalidRequest("body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValidationFailed("body must be a JSON object with 'image' (base64) or 's3' (object reference)")
    refuse_unknown_keys(value, DepthRequest, "body")
    for name, model in (("s3", S3Ref), ("geometry", GeometryRequest)):
        if isinstance(value.get(name), dict):
            refuse_unknown_keys(value[name], model, name)
    try:
        return DepthRequest.model_validate(value)
    except ValidationError as exc:
        raise RequestValidationError(
            exc.errors(include_url=False, include_input=False, include_context=False)
        ) from None


def decode_base64_image(text: str) -> bytes:
    """base64 (standard or URL-safe, padding optional) or a ``data:image/*;base64,`` URL → bytes."""
    text = text.strip()
    match = _DATA_URL.match(text)
    if match:
        media = match["type"].lower()
        if not media.startswith("image/"):
            raise UnsupportedMediaType(f"data: URL has type {shown(media or 'text/plain')}; expected image/*")
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


# ------------------------------------------------------------------------------------------------ route


@router.post(
    "/depth",
    response_model=DepthResponse,
    response_model_exclude_none=True,
    responses={**ERRORS, 200: {"content": {"image/png": {}}, "description": "JSON, or the PNG for image bodies"}},
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
async def depth(
    request: Request,
    estimator: Estimator,
    store: Store,
    authentication: Authentication,
    colormap: Colormap | None = None,
) -> Any:
    """JSON (base64 image or S3 reference) → JSON results; a raw ``image/*`` body → the heatmap PNG itself. An S3
    reference needs an authenticated caller (IAM or JWT; docs/api.md#authentication)."""
    media = media_type(request)
    if media.startswith("image/"):
        return await _heatmap_of_body(request, estimator, colormap)
    if media != "application/json":
        given = shown(media) if media else "a body without Content-Type"
        raise UnsupportedMediaType(f"POST /depth accepts application/json or image/*, not {given}")
    asked = await _render_request(
        request, estimator=estimator, store=store, colormap=colormap, authentication=authentication
    )
    return await run_blocking(request, respond, estimator, store, asked)


async def _heatmap_of_body(request: Request, estimator: DepthEstimator, colormap: str | None) -> Response:
    """A raw image body → the heatmap PNG, with the model, timing and size in headers."""
    settings = estimator.settings
    data = await read_body(request, settings.max_image_bytes, "image")
    cmap = colormap or settings.default_colormap
    result, png = await run_blocking(request, http_heatmap, estimator, data, cmap)
    log_result(result, {"source": "raw body"}, len(data))
    check_response_budget(png)
    return Response(
        png,
        media_type="image/png",
        headers={
            "X-Model-Version": estimator.model.version,
            "X-Inference-Time": f"{result.total_seconds:.4f}",
            "X-Image-Width": str(result.width),
            "X-Image-Height": str(result.height),
        },
    )


async def _render_request(
    request: Request, *, estimator: DepthEstimator, store: S3Store, colormap: str | None, authentication: str | None
) -> RenderRequest:
    """The JSON body → what to render and where: the image (decoded, or read from an allowed S3 object)."""
    settings = estimator.settings
    req = parse_depth_request(await read_body(request, settings.max_json_bytes, "JSON body"))
    output = req.output or ("both" if settings.output_bucket else "inline")
    if output != "inline" and not settings.output_bucket:
        raise OutputNotConfigured(f"output '{output}' needs an output bucket; this deployment has none")
    points = None  # before the image: a refused budget costs no read and no decode
    if req.point_cloud is not None:
        options = (req.geometry or GeometryRequest()).options(output == "inline", settings.max_request_points)
        points = PointCloudAsk(req.point_cloud, options)
    data, source = await _image(request, req, settings=settings, store=store, authentication=authentication)
    cmap = req.colormap or colormap or settings.default_colormap
    return RenderRequest(data, source, output, cmap, with_depth=req.include_depth, points=points)


async def _image(
    request: Request, req: DepthRequest, *, settings: Settings, store: S3Store, authentication: str | None
) -> tuple[bytes, dict[str, str]]:
    """The request's image bytes and where they came from (base64, or an S3 object the read rule allows an
    authenticated caller)."""
    if req.s3 is None:
        return decode_base64_image(req.image or ""), {"source": "base64"}
    if authentication is None:  # before the read rule too: an anonymous caller learns nothing about the buckets
        raise AuthenticationRequired(
            "an S3 reference needs an authenticated request (IAM or JWT, see docs/api.md#authentication); "
            "anonymous callers send the image itself (base64, or a raw image/* body)"
        )
    refused = settings.may_read(req.s3.bucket, req.s3.key, by_api=True)
    if refused is not None:
        raise refused
    obj = await run_blocking(request, store.get, req.s3.bucket, req.s3.key, settings.max_image_bytes)
    return obj.body, {"source_bucket": obj.bucket, "source_key": obj.key, "source_etag": obj.etag}
