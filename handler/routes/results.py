"""What /predict and /depth share: an image's depth under the HTTP path's limits, rendered and placed where the
request asked (inline as base64, in the output bucket, or both), answered as a ``DepthResponse``."""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from handler import geometry, pointcloud, s3_outputs
from handler.config import LAMBDA_MAX_RESPONSE_BYTES, Settings
from handler.errors import PayloadTooLarge, TooManyPixels
from handler.estimator import DepthEstimator, DepthResult
from handler.logs import logger
from handler.point_formats import FORMATS as POINT_CLOUD_FORMATS
from handler.s3_store import S3Store
from handler.schemas import DepthResponse, PointCloudInfo, S3Location

# Room left in the 6 MB Lambda response for JSON fields and headers around base64 payloads.
_RESPONSE_BUDGET = LAMBDA_MAX_RESPONSE_BYTES - 64 * 1024
# rendering → the DepthResponse field of its S3 location
_S3_FIELDS = {
    "heatmap": "heatmap_s3",
    "depth_png16": "depth_s3",
    **dict.fromkeys(POINT_CLOUD_FORMATS, "point_cloud_s3"),
}


class PointCloudAsk(NamedTuple):
    """A request's point cloud: the format and how to make it."""

    format: str
    options: geometry.Options


@dataclass(frozen=True)
class RenderRequest:
    """What one API request asks for, once validated: the image, where it came from, and what to make of it."""

    data: bytes
    source: dict[str, str]  # where the image came from: in the log line and the S3 outputs' metadata
    output: Literal["inline", "s3", "both"]
    colormap: str
    with_depth: bool = False  # also the 16-bit depth PNG
    points: PointCloudAsk | None = None


def base64_size(*payloads: bytes) -> int:
    """Bytes the payloads take as base64 (padded)."""
    return sum(_base64_length(len(p)) for p in payloads)


def _base64_length(size: int) -> int:
    return 4 * ((size + 2) // 3)


def fits_response(*payloads: bytes) -> bool:
    return base64_size(*payloads) <= _RESPONSE_BUDGET


def check_response_budget(*payloads: bytes) -> None:
    size = base64_size(*payloads)
    if size > _RESPONSE_BUDGET:
        raise PayloadTooLarge(
            f"the result is {size} bytes as base64, over Lambda's 6 MB response limit; "
            'ask for output "s3" (POST /depth) or send a smaller image'
        )


def largest_inline_cloud(fmt: str, *, mesh: bool = False) -> int:
    """The largest budget (max_points) of ``fmt`` whose file fits in the response as base64 whatever the image, its
    header aside: its vertex records, and a mesh's triangles (fewer than two a point). Fewer fit beside the heatmap."""
    per_point = pointcloud.POINT_BYTES[fmt] + (2 * pointcloud.FACE_BYTES[fmt] if mesh else 0)
    return 3 * (_RESPONSE_BUDGET // 4) // per_point  # base64: 4 characters for every 3 bytes


def check_inline_cloud(ask: PointCloudAsk, width: int, height: int) -> None:
    """413 when a cloud of ``ask``, made of a ``width`` x ``height`` image and keeping every point of its grid
    (:attr:`geometry.Options.keeps_every_point`), cannot fit in the response as base64 whatever the heatmap takes:
    its points, and a mesh's two triangles a grid cell, are known from the image's size, so checked before the image
    is decoded (``before_decode``)."""
    fmt, options = ask.format, ask.options
    rows, cols = geometry.grid_shape(height, width, options.max_points)
    points, faces = rows * cols, geometry.grid_triangles(rows, cols) if options.mesh else 0
    size = points * pointcloud.POINT_BYTES[fmt] + faces * pointcloud.FACE_BYTES[fmt]
    if _base64_length(size) <= _RESPONSE_BUDGET:
        return
    largest = largest_inline_cloud(fmt, mesh=options.mesh)
    made, costs = f"{points} points", f"a {fmt.upper()} point takes {pointcloud.POINT_BYTES[fmt]} bytes"
    if options.mesh:
        made += f" and {faces} triangles"
        costs += f", a triangle {pointcloud.FACE_BYTES[fmt]} (fewer than two a point)"
    raise PayloadTooLarge(
        f"the point cloud ({made}: max_points {options.max_points} over this {width}x{height} image) cannot fit in "
        f"Lambda's 6 MB response: {costs}, a third more as base64, so a budget of at most {largest} fits, fewer "
        f'beside the heatmap; ask for "max_points" of at most {largest}, or for output "s3"'
    )


def _inline_cloud_check(request: RenderRequest) -> Callable[[int, int], None] | None:
    """:func:`check_inline_cloud` for a cloud asked for inline only whose number of points the image's size tells;
    None for any other request (output "both" leaves a cloud that does not fit in S3 only)."""
    ask = request.points
    if ask is None or request.output != "inline" or not ask.options.keeps_every_point:
        return None
    return functools.partial(check_inline_cloud, ask)


def http_depth(
    estimator: DepthEstimator,
    data: bytes,
    *,
    max_points: int | None = None,
    before_decode: Callable[[int, int], None] | None = None,
) -> DepthResult:
    """The estimator's depth under the HTTP path's pixel cap (lower than the S3 trigger's, which has more time)."""
    try:
        return estimator.estimate(
            data, max_pixels=estimator.settings.http_max_pixels, max_points=max_points, before_decode=before_decode
        )
    except TooManyPixels as exc:
        if exc.pixels is None:  # a side over the limit, which no path takes
            raise
        trigger_cap = estimator.settings.trigger_pixel_cap(exc.mode, exc.image_format)
        instead = (
            f"; upload it to the input bucket instead, whose trigger takes such an image up to {trigger_cap} pixels"
            if exc.pixels <= trigger_cap  # the trigger takes it, with the upload function's memory
            else ""
        )
        raise TooManyPixels(f"{exc.message} on the HTTP API{instead}") from None


def http_heatmap(estimator: DepthEstimator, data: bytes, colormap: str) -> tuple[DepthResult, bytes]:
    """:func:`http_depth` and the heatmap PNG, in one call (one hop to the thread pool for a raw image body)."""
    result = http_depth(estimator, data)
    return result, estimator.heatmap_png(result, colormap)


def log_result(result: DepthResult, source: dict[str, str], size: int) -> dict[str, float]:
    """One structured log line per image; returns the rounded stage timings it logged."""
    timings = {k: round(v, 4) for k, v in result.timings.items()}
    logger.info(
        "depth estimated",
        extra={"source": source, "bytes": size, "width": result.width, "height": result.height, "timings": timings},
    )
    return timings


def respond(estimator: DepthEstimator, store: S3Store, request: RenderRequest) -> DepthResponse:
    """Image bytes → depth → renderings placed inline and/or in S3 (blocking: call it in the thread pool)."""
    result = http_depth(
        estimator,
        request.data,
        max_points=request.points.options.max_points if request.points else None,
        before_decode=_inline_cloud_check(request),
    )
    fields = _place(estimator, store, result=result, request=request)
    return DepthResponse(
        model_version=estimator.model.version,
        width=result.width,
        height=result.height,
        inference_time=round(result.total_seconds, 4),
        timings=log_result(result, request.source, len(request.data)),
        colormap=request.colormap,
        **fields,
    )


_HINT = 'ask for fewer points ("geometry": {"max_points": ...}), no mesh, or send a smaller image'


def check_result_bytes(settings: Settings, files: dict[str, bytes]) -> None:
    """413 when one request's renderings exceed MAX_RESULT_BYTES in all: checked before anything is returned or
    written. (Its other bound, MAX_REQUEST_FACES, refuses a mesh when its triangles are counted: :func:`_render`.)"""
    size = sum(len(body) for body in files.values())
    if size > settings.max_result_bytes:
        raise PayloadTooLarge(
            f"the results are {size} bytes; one request may make at most {settings.max_result_bytes} bytes "
            f"(MAX_RESULT_BYTES); {_HINT}"
        )


def _place(estimator: DepthEstimator, store: S3Store, *, result: DepthResult, request: RenderRequest) -> dict[str, Any]:
    """Render and put the result where it was asked for; returns the fields of a DepthResponse."""
    files, fields = _render(estimator, result, request)
    check_result_bytes(estimator.settings, files)
    if request.output in ("inline", "both"):
        fields |= _inline(files, request, fields.get("point_cloud"))
    if request.output in ("s3", "both"):
        fields |= _stored(estimator, store, files=files, request=request)
    return fields


def _render(
    estimator: DepthEstimator, result: DepthResult, request: RenderRequest
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The renderings asked for (rendering → bytes), and the response's description of the point cloud. The point
    cloud comes first: a mesh over MAX_REQUEST_FACES is refused when its triangles are counted, before any
    rendering is built or encoded."""
    files: dict[str, bytes] = {}
    fields: dict[str, Any] = {}
    if request.points is not None:
        files[request.points.format], fields["point_cloud"] = _point_cloud(estimator, result, request.points)
    files["heatmap"] = estimator.heatmap_png(result, request.colormap)
    if request.with_depth:
        files["depth_png16"] = estimator.depth_png16(result)
    return files, fields


def _point_cloud(estimator: DepthEstimator, result: DepthResult, ask: PointCloudAsk) -> tuple[bytes, PointCloudInfo]:
    bound = estimator.settings.max_request_faces
    try:
        body, cloud = estimator.point_cloud(result, ask.format, ask.options, max_faces=bound)
    except geometry.TooManyFaces as exc:
        raise PayloadTooLarge(
            f"the mesh has {exc.count} triangles; one request may make at most {bound} (MAX_REQUEST_FACES); {_HINT}"
        ) from None
    cam = cloud.intrinsics
    info = PointCloudInfo(
        format=ask.format,
        points=len(cloud),
        stride=cloud.stride,
        fx=round(cam.fx, 4),
        fy=round(cam.fy, 4),
        cx=cam.cx,
        cy=cam.cy,
        intrinsics=cam.source,
        faces=None if cloud.faces is None else len(cloud.faces),
    )
    return body, info


def _inline(files: dict[str, bytes], request: RenderRequest, cloud: PointCloudInfo | None) -> dict[str, Any]:
    """The renderings as base64. A point cloud goes inline when it fits in the response beside them: output
    "inline" refuses one that does not (413), output "both" leaves it in S3 only."""
    renderings = [body for rendering, body in files.items() if rendering in ("heatmap", "depth_png16")]
    check_response_budget(*renderings)
    fields = {"heatmap_png_base64": base64.b64encode(files["heatmap"]).decode()}
    if request.with_depth:
        fields["depth_png16_base64"] = base64.b64encode(files["depth_png16"]).decode()
    if request.points is None or cloud is None:
        return fields
    if fits_response(*renderings, files[request.points.format]):
        fields["point_cloud_base64"] = base64.b64encode(files[request.points.format]).decode()
    elif request.output == "inline":
        raise PayloadTooLarge(
            f"the point cloud ({cloud.points} points) does not fit in Lambda's 6 MB response "
            'beside the heatmap; ask for fewer ("geometry": {"max_points": ...}) or for output "s3"'
        )
    return fields


def _stored(
    estimator: DepthEstimator, store: S3Store, *, files: dict[str, bytes], request: RenderRequest
) -> dict[str, Any]:
    """The renderings written to the output bucket, as presigned locations. The key is the image's digest and the
    colormap, and the point-cloud options' digest (the same options, the same key)."""
    settings = estimator.settings
    stem = f"api/{hashlib.sha256(request.data).hexdigest()[:32]}-{request.colormap}"
    if request.points is not None:  # other geometry, other points: a key of their own
        stem += "-" + hashlib.sha256(repr(request.points.options).encode()).hexdigest()[:12]
    meta = s3_outputs.s3_metadata(**request.source, model_sha256=estimator.model.manifest.data["onnx_sha256"])
    keys = s3_outputs.write_outputs(store, settings, stem, files=files, metadata=meta)
    bucket = settings.output_bucket
    fields: dict[str, Any] = {}
    for rendering, key in keys.items():
        url = store.presign(bucket, key, settings.presigned_url_ttl)
        fields[_S3_FIELDS[rendering]] = S3Location(bucket=bucket, key=key, url=url)
    fields["depth_map_url"] = fields["heatmap_s3"].url
    return fields
