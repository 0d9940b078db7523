"""POST /depth: a JSON body (base64 image or S3 reference) → JSON results; a raw ``image/*`` body → the PNG."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import from_json

from handler import geometry
from handler.config import Colormap, Settings
from handler.errors import (
    BucketNotAllowed,
    InvalidBase64,
    InvalidRequest,
    KeyNotAllowed,
    OutputNotConfigured,
    UnsupportedMediaType,
    ValidationFailed,
)
from handler.routes.common import (
    ERRORS,
    DepthResponse,
    PointCloudAsk,
    check_response_budget,
    estimate,
    heatmap_http,
    log_result,
    media_type,
    read_body,
    shown,
)
from handler.routes.deps import Estimator, Store, run_blocking

# Point budgets of the API: the default when the cloud comes back inline only keeps it, as base64, beside a
# heatmap within Lambda's 6 MB response (200 000 points: 3 MB PLY, 3.2 MB GLB); more always goes to S3.
INLINE_MAX_POINTS = 200_000
MAX_POINTS = 2_000_000
_S3_URI = re.compile(r"^s3://(?P<bucket>[^/]+)/(?P<key>.+)$")
_DATA_URL = re.compile(r"^data:(?P<type>[^;,]*)(?P<params>(;[^;,]*)*),", re.IGNORECASE)

router = APIRouter()


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


class GeometryRequest(BaseModel):
    """How the point cloud is made (docs/point-clouds.md); every field optional, defaults as documented."""

    model_config = ConfigDict(extra="forbid")

    max_points: int | None = Field(
        None,
        ge=1,
        le=MAX_POINTS,
        description=f"point budget, by an even pixel stride (default {geometry.DEFAULT_MAX_POINTS}, "
        f"{INLINE_MAX_POINTS} when the cloud is returned inline only)",
    )
    near: float = Field(geometry.DEFAULT_NEAR, ge=1e-6, le=1e6, description="depth of the nearest pixel (scene units)")
    far: float = Field(geometry.DEFAULT_FAR, ge=1e-6, le=1e6, description="depth of the farthest pixel (scene units)")
    scale: float | None = Field(
        None, ge=-1e6, le=1e6, description="instead of near/far: depth = 1 / (scale * prediction + shift)"
    )
    shift: float = Field(0.0, ge=-1e6, le=1e6, description="see scale")
    fov: float | None = Field(None, gt=0, lt=180, description="horizontal field of view in degrees")
    fx: float | None = Field(None, ge=1e-3, le=1e7, description="focal length in pixels (x)")
    fy: float | None = Field(None, ge=1e-3, le=1e7, description="focal length in pixels (y; default fx)")
    cx: float | None = Field(None, ge=-1e7, le=1e7, description="principal point x (default: image centre)")
    cy: float | None = Field(None, ge=-1e7, le=1e7, description="principal point y (default: image centre)")
    edge_threshold: float | None = Field(
        None, gt=0, le=10, description="drop points whose depth jumps to a neighbour's by more than this fraction"
    )
    mesh: bool = Field(False, description="a coloured triangle mesh over the same points instead of points alone")

    @model_validator(mode="after")
    def _near_before_far(self) -> GeometryRequest:
        if self.near >= self.far:
            raise ValueError("near must be less than far")
        return self

    def options(self, inline_only: bool) -> geometry.Options:
        default = INLINE_MAX_POINTS if inline_only else geometry.DEFAULT_MAX_POINTS
        fields = self.model_dump(exclude={"max_points"})
        return geometry.Options(max_points=self.max_points or default, **fields)


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
    point_cloud: Literal["ply", "glb"] | None = Field(
        None, description="also return the coloured point cloud as binary PLY or glTF binary (docs/point-clouds.md)"
    )
    geometry: GeometryRequest | None = Field(None, description="how the point cloud is made (with point_cloud)")

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
        if self.geometry is not None and self.point_cloud is None:
            raise ValueError("'geometry' needs 'point_cloud' (\"ply\" or \"glb\")")
        return self


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
    if isinstance(value.get("s3"), dict):
        refuse_unknown_keys(value["s3"], S3Ref, "s3")
    if isinstance(value.get("geometry"), dict):
        refuse_unknown_keys(value["geometry"], GeometryRequest, "geometry")
    try:
        return DepthRequest.model_validate(value)
    except ValidationError as exc:
        raise RequestValidationError(
            exc.errors(include_url=False, include_input=False, include_context=False)
        ) from None


def check_readable(settings: Settings, ref: S3Ref) -> None:
    """403 unless ``ref`` is in an input bucket and under an allowed key prefix: decided before any S3 call, so
    the answer says nothing about what the bucket holds. The role's GetObject is scoped the same way."""
    if ref.bucket not in settings.allowed_input_buckets:
        raise BucketNotAllowed("the bucket is not one of this function's input buckets (ALLOWED_INPUT_BUCKETS)")
    if not ref.key.startswith(settings.input_prefixes):
        allowed = ", ".join(settings.input_prefixes)
        raise KeyNotAllowed(f"the key is outside the prefixes this function may read ({allowed})")


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


def add_request_schema(schema: dict[str, Any]) -> None:
    """Put DepthRequest (and its parts) into an OpenAPI document: /depth reads its body itself, so FastAPI
    cannot see the model, and the route's ``requestBody`` refers to it by name."""
    request_schema = DepthRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(request_schema.pop("$defs", {}))
    components["DepthRequest"] = request_schema


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
async def depth(request: Request, estimator: Estimator, store: Store, colormap: Colormap | None = None) -> Any:
    """JSON (base64 image or S3 reference) → JSON results; a raw ``image/*`` body → the heatmap PNG itself."""
    settings = estimator.settings
    kind = media_type(request)
    if kind.startswith("image/"):
        data = await read_body(request, settings.max_image_bytes, "image")
        cmap = colormap or settings.default_colormap
        result, png = await run_blocking(request, heatmap_http, estimator, data, cmap)
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
    if kind != "application/json":
        given = shown(kind) if kind else "a body without Content-Type"
        raise UnsupportedMediaType(f"POST /depth accepts application/json or image/*, not {given}")
    body = await read_body(request, settings.max_json_bytes, "JSON body")
    req = parse_depth_request(body)
    output = req.output or ("both" if settings.output_bucket else "inline")
    if output != "inline" and not settings.output_bucket:
        raise OutputNotConfigured(f"output '{output}' needs an output bucket; this deployment has none")
    if req.s3 is not None:
        check_readable(settings, req.s3)
        obj = await run_blocking(request, store.get, req.s3.bucket, req.s3.key, settings.max_image_bytes)
        data, source = obj.body, {"source_bucket": obj.bucket, "source_key": obj.key, "source_etag": obj.etag}
    else:
        data, source = decode_base64_image(req.image or ""), {"source": "base64"}
    cmap = req.colormap or colormap or settings.default_colormap
    points = None
    if req.point_cloud is not None:
        points = PointCloudAsk(req.point_cloud, (req.geometry or GeometryRequest()).options(output == "inline"))
    with_depth = req.include_depth
    return await run_blocking(request, estimate, estimator, store, data, source, output, cmap, with_depth, points)
