"""What /predict and /depth share: the result schema, request-body limits, and estimate → render → place."""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Literal, NamedTuple

from fastapi import Request
from pydantic import BaseModel, Field

from handler import geometry, s3_outputs
from handler.config import LAMBDA_MAX_RESPONSE_BYTES
from handler.errors import PayloadTooLarge, TooManyPixels
from handler.estimator import DepthEstimator, DepthResult
from handler.logs import logger
from handler.s3_store import S3Store

# Room left in the 6 MB Lambda response for JSON fields and headers around base64 payloads.
_RESPONSE_BUDGET = LAMBDA_MAX_RESPONSE_BYTES - 64 * 1024
S3_HINT = '; for larger images upload to the input bucket and send {"s3": "s3://bucket/key"} to /depth'


# ------------------------------------------------------------------------------------------------ schemas


class S3Location(BaseModel):
    bucket: str
    key: str
    url: str = Field(description="presigned GET URL")


class PointCloudInfo(BaseModel):
    format: Literal["ply", "glb"]
    points: int
    stride: int = Field(description="every stride-th pixel in both directions")
    fx: float
    fy: float
    cx: float
    cy: float
    intrinsics: str = Field(description="where fx/fy came from: given, fov, exif-35mm, exif-focal-plane, default-fov")
    faces: int | None = Field(None, description="triangles, with geometry.mesh")


class PointCloudAsk(NamedTuple):
    """A request's point cloud: the format and how to make it."""

    format: str
    options: geometry.Options


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


# ------------------------------------------------------------------------------------------------ request bodies


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


def base64_size(*payloads: bytes) -> int:
    """Bytes the payloads take as base64 (padded)."""
    return sum(4 * ((len(p) + 2) // 3) for p in payloads)


def fits_response(*payloads: bytes) -> bool:
    return base64_size(*payloads) <= _RESPONSE_BUDGET


def check_response_budget(*payloads: bytes) -> None:
    size = base64_size(*payloads)
    if size > _RESPONSE_BUDGET:
        raise PayloadTooLarge(
            f"the result is {size} bytes as base64, over Lambda's 6 MB response limit; "
            'ask for output "s3" (POST /depth) or send a smaller image'
        )


# ------------------------------------------------------------------------------------------------ the work


def estimate_http(estimator: DepthEstimator, data: bytes, max_points: int | None = None) -> DepthResult:
    """The core's estimate under the HTTP path's pixel cap (lower than the S3 trigger's, which has more time)."""
    try:
        return estimator.estimate(data, max_pixels=estimator.settings.http_max_pixels, max_points=max_points)
    except TooManyPixels as exc:
        if estimator.settings.http_max_pixels < estimator.settings.max_image_pixels:
            raise TooManyPixels(
                f"{exc.message} on the HTTP API; upload larger images to the input bucket, whose trigger takes up "
                f"to {estimator.settings.max_image_pixels} pixels"
            ) from None
        raise


def heatmap_http(estimator: DepthEstimator, data: bytes, colormap: str) -> tuple[DepthResult, bytes]:
    """:func:`estimate_http` and the heatmap PNG, in one call (one hop to the thread pool for a raw image body)."""
    result = estimate_http(estimator, data)
    return result, estimator.heatmap_png(result, colormap)


def log_result(result: DepthResult, source: dict[str, str], size: int) -> dict[str, float]:
    """One structured log line per image; returns the rounded stage timings it logged."""
    timings = {k: round(v, 4) for k, v in result.timings.items()}
    logger.info(
        "depth estimated",
        extra={"source": source, "bytes": size, "width": result.width, "height": result.height, "timings": timings},
    )
    return timings


def _place(
    estimator: DepthEstimator,
    store: S3Store,
    result: DepthResult,
    data: bytes,
    source: dict[str, str],
    output: str,
    colormap: str,
    with_depth: bool,
    points: PointCloudAsk | None = None,
) -> dict[str, Any]:
    """Render and put the result where it was asked for; returns the fields of a DepthResponse.

    A point cloud goes inline when it fits in the response beside the renderings: output "inline" refuses one that
    does not (413), output "both" leaves it in S3 only."""
    settings = estimator.settings
    heatmap = estimator.heatmap_png(result, colormap)
    files = {"heatmap": heatmap}
    if with_depth:
        files["depth_png16"] = estimator.depth_png16(result)
    fields: dict[str, Any] = {}
    if points is not None:
        files[points.format], cloud = estimator.point_cloud(result, points.format, points.options)
        cam = cloud.intrinsics
        fields["point_cloud"] = PointCloudInfo(
            format=points.format,
            points=len(cloud),
            stride=cloud.stride,
            fx=round(cam.fx, 4),
            fy=round(cam.fy, 4),
            cx=cam.cx,
            cy=cam.cy,
            intrinsics=cam.source,
            faces=None if cloud.faces is None else len(cloud.faces),
        )
    if output in ("inline", "both"):
        renderings = [body for kind, body in files.items() if kind in ("heatmap", "depth_png16")]
        check_response_budget(*renderings)
        fields["heatmap_png_base64"] = base64.b64encode(heatmap).decode()
        if with_depth:
            fields["depth_png16_base64"] = base64.b64encode(files["depth_png16"]).decode()
        if points is not None:
            if fits_response(*renderings, files[points.format]):
                fields["point_cloud_base64"] = base64.b64encode(files[points.format]).decode()
            elif output == "inline":
                raise PayloadTooLarge(
                    f"the point cloud ({fields['point_cloud'].points} points) does not fit in Lambda's 6 MB response "
                    'beside the heatmap; ask for fewer ("geometry": {"max_points": ...}) or for output "s3"'
                )
    if output in ("s3", "both"):
        stem = f"api/{hashlib.sha256(data).hexdigest()[:32]}-{colormap}"
        if points is not None:  # other geometry, other points: a key of their own (the same options, the same key)
            stem += "-" + hashlib.sha256(repr(points.options).encode()).hexdigest()[:12]
        meta = s3_outputs.s3_metadata(**source, model_sha256=estimator.model.manifest.data["onnx_sha256"])
        keys = s3_outputs.write_outputs(store, settings, stem, files, meta)
        bucket = settings.output_bucket
        names = {"heatmap": "heatmap_s3", "depth_png16": "depth_s3", "ply": "point_cloud_s3", "glb": "point_cloud_s3"}
        for kind, key in keys.items():
            url = store.presign(bucket, key, settings.presigned_url_ttl)
            fields[names[kind]] = S3Location(bucket=bucket, key=key, url=url)
        fields["depth_map_url"] = fields["heatmap_s3"].url
    return fields


def estimate(
    estimator: DepthEstimator,
    store: S3Store,
    data: bytes,
    source: dict[str, str],
    output: str,
    colormap: str,
    with_depth: bool,
    points: PointCloudAsk | None = None,
) -> DepthResponse:
    """Image bytes → depth → renderings placed inline and/or in S3 (blocking: call it in the thread pool)."""
    result = estimate_http(estimator, data, points.options.max_points if points else None)
    fields = _place(estimator, store, result, data, source, output, colormap, with_depth, points)
    return DepthResponse(
        model_version=estimator.model.version,
        width=result.width,
        height=result.height,
        inference_time=round(result.total_seconds, 4),
        timings=log_result(result, source, len(data)),
        colormap=colormap,
        **fields,
    )
