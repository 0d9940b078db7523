"""The HTTP API's schemas, in one place: the request bodies the routes validate and the responses they answer with.

``handler.app`` reads the declared field names from here (they bound what a 422 may echo) and puts the request
schema of ``POST /depth``, whose body the route parses itself, into the OpenAPI document.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from handler import geometry
from handler.config import MAX_POINTS_CEILING, Colormap
from handler.errors import ValidationFailed
from handler.point_formats import FORMATS as POINT_CLOUD_FORMATS
from handler.s3_outputs import has_parent_segments

# Point budgets of the API: the default when the cloud comes back inline only keeps it, as base64, beside the
# heatmap of the largest photo the HTTP API takes, within Lambda's 6 MB response (GLB: 20 bytes a point, base64 adds a
# third; docs/performance.md#inline-point-clouds has the measured sizes); the web page's 3D tab asks for the same.
# More always goes to S3.
INLINE_MAX_POINTS = 120_000
_S3_URI = re.compile(r"^s3://(?P<bucket>[^/]+)/(?P<key>.+)$")
# The point-cloud formats as handler.pointcloud names them: the enum OpenAPI lists, the values a 422 names.
PointCloudFormat = Literal[tuple(POINT_CLOUD_FORMATS)]
_FORMAT_NAMES = " or ".join(f'"{fmt}"' for fmt in POINT_CLOUD_FORMATS)


# ------------------------------------------------------------------------------------------------ requests


class S3Ref(BaseModel):
    """An object in an allow-listed input bucket."""

    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$")
    key: str = Field(min_length=1, max_length=1024)

    @field_validator("key")
    @classmethod
    def _no_parent_segments(cls, key: str) -> str:
        if has_parent_segments(key):
            raise ValueError("key must not contain '..' segments")
        return key


class GeometryRequest(BaseModel):
    """How the point cloud is made (docs/point-clouds.md); every field optional, defaults as documented."""

    model_config = ConfigDict(extra="forbid")

    max_points: int | None = Field(
        None,
        ge=1,
        le=MAX_POINTS_CEILING,
        description=f"point budget, by an even pixel stride (default {geometry.DEFAULT_MAX_POINTS}, "
        f"{INLINE_MAX_POINTS} when the cloud is returned inline only; at most the deployment's "
        "MAX_REQUEST_POINTS, see /health)",
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

    def options(self, inline_only: bool, max_points: int) -> geometry.Options:
        """The geometry options; ``max_points`` is the deployment's bound (MAX_REQUEST_POINTS): a budget over it
        is refused (422), the defaults are lowered to it."""
        if self.max_points is not None and self.max_points > max_points:
            raise ValidationFailed(
                f"geometry.max_points is {self.max_points}; one request may ask for at most {max_points} points "
                "(MAX_REQUEST_POINTS)"
            )
        default = min(INLINE_MAX_POINTS if inline_only else geometry.DEFAULT_MAX_POINTS, max_points)
        fields = self.model_dump(exclude={"max_points"})
        return geometry.Options(max_points=self.max_points or default, **fields)


def _depth_request_schema(schema: dict[str, Any]) -> None:
    """What the model's validators enforce, said in its JSON schema: exactly one of ``image`` / ``s3`` (one branch
    of ``oneOf`` each, so giving both or neither matches none or two), and ``s3`` also as an ``s3://`` URI."""
    schema["oneOf"] = [
        {"required": ["image"], "properties": {"image": {"type": "string"}}},
        {"required": ["s3"], "properties": {"s3": {"not": {"type": "null"}}}},
    ]
    schema["properties"]["s3"]["anyOf"].insert(1, {"type": "string", "pattern": "^s3://[^/]+/.+$"})  # as _S3_URI
    schema["examples"] = [{"image": "<base64 JPEG>"}, {"s3": "s3://my-input-bucket/uploads/a.jpg"}]


class DepthRequest(BaseModel):
    """JSON body of POST /depth: exactly one of ``image`` or ``s3``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=lambda schema, _: _depth_request_schema(schema),
    )

    image: str | None = Field(None, description="base64 image bytes, or a data:image/...;base64, URL")
    s3: S3Ref | None = Field(None, description='{"bucket": ..., "key": ...} or "s3://bucket/key"')
    output: Literal["inline", "s3", "both"] | None = Field(
        None, description="where results go; default: both when an output bucket is configured, else inline"
    )
    include_depth: bool = Field(False, description="also return the depth as a 16-bit PNG")
    colormap: Colormap | None = Field(None, description="heatmap colours (default from configuration: inferno)")
    point_cloud: PointCloudFormat | None = Field(
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
    def _exactly_one_source(self) -> DepthRequest:  # said in the schema too: _depth_request_schema
        if (self.image is None) == (self.s3 is None):
            raise ValueError("give exactly one of 'image' (base64) or 's3' (object reference)")
        if self.geometry is not None and self.point_cloud is None:
            raise ValueError(f"'geometry' needs 'point_cloud' ({_FORMAT_NAMES})")
        return self


def add_request_schema(schema: dict[str, Any]) -> None:
    """Put DepthRequest (and its parts) into an OpenAPI document: /depth reads its body itself, so FastAPI
    cannot see the model, and the route's ``requestBody`` refers to it by name."""
    request_schema = DepthRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(request_schema.pop("$defs", {}))
    components["DepthRequest"] = request_schema


# ------------------------------------------------------------------------------------------------ responses


class S3Location(BaseModel):
    bucket: str
    key: str
    url: str = Field(description="presigned GET URL")


class PointCloudInfo(BaseModel):
    format: PointCloudFormat
    points: int
    stride: int = Field(description="every stride-th pixel in both directions")
    fx: float
    fy: float
    cx: float
    cy: float
    intrinsics: str = Field(description="where fx/fy came from: given, fov, exif-35mm, exif-focal-plane, default-fov")
    faces: int | None = Field(None, description="triangles, with geometry.mesh")


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
    point_cloud: PointCloudInfo | None = Field(None, description="what the point cloud holds (when asked for)")
    point_cloud_base64: str | None = Field(
        None, description="the PLY or GLB file (inline, when it fits in the response beside the renderings)"
    )
    point_cloud_s3: S3Location | None = None


class ErrorResponse(BaseModel):
    status: Literal["error"] = "error"
    error: str = Field(description="stable machine-readable code")
    message: str
    detail: list[dict[str, Any]] | None = None


ERRORS = {code: {"model": ErrorResponse} for code in (400, 403, 404, 413, 415, 422, 502, 503)}


class PredictResponse(BaseModel):
    """The MiDaS WebUI contract."""

    status: Literal["success"] = "success"
    depth_map_url: str = Field(description="presigned S3 URL of the heatmap PNG, or a data: URL when inline")
    inference_time: float = Field(description="seconds from image bytes to heatmap PNG")
    model_version: str
    width: int
    height: int
    s3: S3Location | None = None
