"""One object of an input bucket → its outputs: the per-object job that every S3-driven source shares (S3 event
records, SQS-wrapped notifications, EventBridge "Object Created" events, S3 Batch Operations tasks).

Checks first (the function's own outputs, the read rule ``Settings.may_read``, the extension), then idempotency:
an object whose heatmap already records the same source ETag, model sha256 and recipe (colormap, renderings) is
``unchanged``. That costs one HEAD of the heatmap when the caller knows the source's ETag (S3 and EventBridge events
carry it), and otherwise one conditional GET of the source, which S3 answers 304 without a body when it is unchanged
and with the body (which is needed anyway) when it is not.

A failure of the object itself (not an image, too large, not allowed, gone) fails the same way on every attempt: it
is recorded once under the output bucket's ``failures/`` (:func:`handler.s3_outputs.write_failure`) and counted as
``refused``, and the sources do not have it retried. Any other failure (S3 throttled or unreachable, a fault of
ours) is left for the sender's retries.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass, field

from handler import geometry, metrics, s3_outputs
from handler.config import Settings
from handler.errors import (
    BucketNotAllowed,
    DepthError,
    ImageTooLarge,
    InvalidImage,
    InvalidRequest,
    KeyNotAllowed,
    OutputNotConfigured,
    PayloadTooLarge,
    S3BadGateway,
    S3ObjectNotFound,
    S3Unavailable,
    TooComplex,
    TooManyPixels,
    UnsupportedMediaType,
)
from handler.estimator import DepthEstimator, DepthResult
from handler.imaging import IMAGE_EXTENSIONS
from handler.logs import logger
from handler.s3_store import S3Store

UNCHANGED = "unchanged: the outputs were made from this very object by this model"
# Errors worth retrying as they are: S3 throttled, timed out, was unreachable or answered with a server error.
RETRYABLE = (S3Unavailable, S3BadGateway)
# Errors of the object itself: its bytes, its size, its key, or its absence. Another attempt fails the same way.
PERMANENT = (
    InvalidImage,
    UnsupportedMediaType,
    PayloadTooLarge,
    TooManyPixels,
    ImageTooLarge,
    TooComplex,
    BucketNotAllowed,
    KeyNotAllowed,
    InvalidRequest,
    S3ObjectNotFound,
)


@dataclass
class Outcome:
    bucket: str
    key: str
    status: str  # "written" | "skipped" | "failed"
    reason: str = ""
    error: str = ""  # a failure's error code (the start of its reason)
    outputs: dict[str, str] = field(default_factory=dict)  # rendering → key, of a written object
    retryable: bool = False  # a failure that may succeed as it is on a later attempt
    # a failure of the object itself, recorded (outputs["failure"]: the record's key): retrying it is pointless
    permanent: bool = False
    seconds: dict[str, float] = field(default_factory=dict)  # the stages of a written object
    megapixels: float | None = None  # the size of a written object's image

    @property
    def counted_as(self) -> str:
        """The status, with the skips of unchanged objects told apart: written, unchanged, skipped or failed."""
        if self.permanent:
            return "refused"
        return "unchanged" if self.reason == UNCHANGED else self.status


def run(
    bucket: str,
    key: str,
    *,
    estimator: DepthEstimator,
    store: S3Store,
    etag: str | None = None,
    also_as: str | None = None,
) -> Outcome:
    """``bucket/key`` → heatmap (+ PFM, point cloud when enabled) under ``<output prefix><key>``, unless unchanged.

    ``etag``: the source's ETag when the event gives it (saves the GET of an unchanged object). ``also_as``: the key
    as the sender wrote it, tried when ``key`` (decoded) names no object: a sender that does not encode, and a key
    with ``+`` or ``%``. Never raises: every failure is an Outcome with its reason, logged, and counted in the
    metrics; a permanent one is recorded (:func:`handler.s3_outputs.write_failure`).
    """
    started = time.perf_counter()
    outcome = _attempt(bucket, key, estimator=estimator, store=store, etag=etag)
    if also_as and also_as != key and outcome.error == S3ObjectNotFound.code:
        outcome = _attempt(bucket, also_as, estimator=estimator, store=store, etag=etag)
    if outcome.permanent:
        outcome = _record_failure(outcome, settings=estimator.settings, store=store, etag=etag)
    elapsed = time.perf_counter() - started
    if outcome.permanent:
        extra = {"bucket": bucket, "key": outcome.key, "reason": outcome.reason, "record": outcome.outputs["failure"]}
        logger.error("object refused for good: recorded, not retried", extra=extra)
    elif outcome.status == "failed":
        logger.error("object failed", extra={"bucket": bucket, "key": key, "reason": outcome.reason})
    elif outcome.status == "skipped":
        logger.info("object skipped", extra={"bucket": bucket, "key": key, "reason": outcome.reason})
    if outcome.status == "written":  # stage latencies of written images only (an unchanged one has a 304's)
        metrics.image(outcome.counted_as, megapixels=outcome.megapixels, seconds={**outcome.seconds, "total": elapsed})
    else:
        metrics.image(outcome.counted_as)
    return outcome


def _attempt(bucket: str, key: str, *, estimator: DepthEstimator, store: S3Store, etag: str | None) -> Outcome:
    outcome = _turned_away(estimator.settings, bucket, key)
    try:
        return outcome or _make_outputs(bucket, key, estimator=estimator, store=store, etag=etag)
    except DepthError as exc:
        return _failed(bucket, key, exc)
    except Exception as exc:  # one broken object must not lose the others
        logger.exception("object failed unexpectedly", extra={"bucket": bucket, "key": key})
        return Outcome(bucket, key, "failed", f"internal_error: {type(exc).__name__}")


def _turned_away(settings: Settings, bucket: str, key: str) -> Outcome | None:
    """The outcome of an object the job does not read (its own output, not allowed, not an image), else None."""
    if s3_outputs.is_own_output(settings, bucket, key):
        return Outcome(bucket, key, "skipped", "one of this function's own outputs")
    refused = settings.may_read(bucket, key)
    if refused is not None:
        return _failed(bucket, key, refused)
    if posixpath.splitext(key)[1].lower() not in IMAGE_EXTENSIONS:
        return Outcome(bucket, key, "skipped", "not an image key (by extension)")
    return None


def _failed(bucket: str, key: str, error: DepthError) -> Outcome:
    reason = f"{error.code}: {error.message}"
    retryable, permanent = isinstance(error, RETRYABLE), isinstance(error, PERMANENT)
    return Outcome(bucket, key, "failed", reason, error=error.code, retryable=retryable, permanent=permanent)


def _record_failure(outcome: Outcome, *, settings: Settings, store: S3Store, etag: str | None) -> Outcome:
    """The permanent failure, its record written; a failure left to retries when it cannot be recorded (nothing may
    be dropped unrecorded)."""
    if not settings.output_bucket:
        outcome.permanent = False
        return outcome
    try:
        where = {"bucket": outcome.bucket, "key": outcome.key, "etag": etag}
        marker = s3_outputs.write_failure(store, settings, **where, error=outcome.error, reason=outcome.reason)
    except DepthError as exc:
        reason = f"{outcome.reason}; not recorded ({exc.code}: {exc.message})"
        return Outcome(
            outcome.bucket, outcome.key, "failed", reason, error=outcome.error, retryable=isinstance(exc, RETRYABLE)
        )
    outcome.outputs["failure"] = marker
    return outcome


def _make_outputs(bucket: str, key: str, *, estimator: DepthEstimator, store: S3Store, etag: str | None) -> Outcome:
    settings = estimator.settings
    if not settings.output_bucket:
        raise OutputNotConfigured("OUTPUT_BUCKET is not configured")
    if s3_outputs.has_parent_segments(key):
        raise InvalidRequest("key has '..' segments; refusing to derive an output key from it")
    made_by = s3_outputs.s3_metadata(
        model_sha256=estimator.model.manifest.data["onnx_sha256"],
        recipe=s3_outputs.recipe(settings, s3_outputs.upload_renderings(settings)),
    )
    recorded = s3_outputs.recorded_source_etag(store, settings, key, made_by)
    if recorded and recorded == etag:
        return Outcome(bucket, key, "skipped", UNCHANGED)
    tick = time.perf_counter()
    obj = store.get(bucket, key, settings.max_image_bytes, unless_etag=recorded)
    got = time.perf_counter() - tick
    if obj is None:
        return Outcome(bucket, key, "skipped", UNCHANGED)
    result, files = _render(estimator, obj.body)
    meta = s3_outputs.s3_metadata(source_bucket=bucket, source_key=key, source_etag=obj.etag) | made_by
    tick = time.perf_counter()
    written = s3_outputs.write_outputs(store, settings, key, files=files, metadata=meta)
    seconds = {"s3_get": got, **result.timings, "s3_put": time.perf_counter() - tick}
    logger.info(
        "heatmap written",
        extra={
            "bucket": bucket,
            "key": key,
            "bytes": len(obj.body),
            "width": result.width,
            "height": result.height,
            "outputs": written,
            "timings": {k: round(v, 4) for k, v in seconds.items()},
        },
    )
    megapixels = result.width * result.height / 1e6
    return Outcome(bucket, key, "written", outputs=written, seconds=seconds, megapixels=megapixels)


def _render(estimator: DepthEstimator, data: bytes) -> tuple[DepthResult, dict[str, bytes]]:
    """The image's depth and the renderings the trigger writes of it (``s3_outputs.upload_renderings``)."""
    settings = estimator.settings
    cloud = settings.write_point_cloud if settings.write_point_cloud != "none" else None
    options = geometry.Options()  # the documented defaults, as the CLI's and the API's
    result = estimator.estimate(data, max_points=options.max_points if cloud else None)
    files = {"heatmap": estimator.heatmap_png(result)}
    if settings.write_raw_depth:
        files["pfm"] = estimator.depth_pfm(result)
    if cloud:
        files[cloud] = estimator.point_cloud(result, cloud, options)[0]
    return result, files
