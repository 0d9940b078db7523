"""One object of an input bucket → its outputs: the per-object job that every S3-driven source shares (S3 event
records, SQS-wrapped notifications, EventBridge "Object Created" events, S3 Batch Operations tasks).

Checks first (the function's own outputs, the read rule ``Settings.may_read``, the extension), then idempotency:
an object whose heatmap already records the same source ETag, model sha256 and recipe (colormap, renderings) is
``unchanged``. That costs one HEAD of the heatmap when the caller knows the source's ETag (S3 and EventBridge events
carry it), and otherwise one conditional GET of the source, which S3 answers 304 without a body when it is unchanged
and with the body (which is needed anyway) when it is not.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass, field

from handler import geometry, metrics, s3_outputs
from handler.config import Settings
from handler.errors import DepthError, InvalidRequest, OutputNotConfigured, S3BadGateway, S3Unavailable
from handler.estimator import DepthEstimator, DepthResult
from handler.imaging import IMAGE_EXTENSIONS
from handler.logs import logger
from handler.s3_store import S3Store

UNCHANGED = "unchanged: the outputs were made from this very object by this model"
# Errors worth retrying as they are: S3 throttled, timed out, was unreachable or answered with a server error.
RETRYABLE = (S3Unavailable, S3BadGateway)


@dataclass
class Outcome:
    bucket: str
    key: str
    status: str  # "written" | "skipped" | "failed"
    reason: str = ""
    outputs: dict[str, str] = field(default_factory=dict)  # rendering → key, of a written object
    retryable: bool = False  # a failure that may succeed as it is on a later attempt
    seconds: dict[str, float] = field(default_factory=dict)  # the stages of a written object
    megapixels: float | None = None  # the size of a written object's image

    @property
    def counted_as(self) -> str:
        """The status, with the skips of unchanged objects told apart: written, unchanged, skipped or failed."""
        return "unchanged" if self.reason == UNCHANGED else self.status


def run(bucket: str, key: str, *, estimator: DepthEstimator, store: S3Store, etag: str | None = None) -> Outcome:
    """``bucket/key`` → heatmap (+ PFM, point cloud when enabled) under ``<output prefix><key>``, unless unchanged.

    ``etag``: the source's ETag when the event gives it (saves the GET of an unchanged object). Never raises: every
    failure is an Outcome with its reason, logged, and counted in the metrics.
    """
    started = time.perf_counter()
    outcome = _turned_away(estimator.settings, bucket, key)
    try:
        outcome = outcome or _make_outputs(bucket, key, estimator=estimator, store=store, etag=etag)
    except DepthError as exc:
        outcome = Outcome(bucket, key, "failed", f"{exc.code}: {exc.message}", retryable=isinstance(exc, RETRYABLE))
    except Exception as exc:  # one broken object must not lose the others
        logger.exception("object failed unexpectedly", extra={"bucket": bucket, "key": key})
        outcome = Outcome(bucket, key, "failed", f"internal_error: {type(exc).__name__}")
    elapsed = time.perf_counter() - started
    if outcome.status == "failed":
        logger.error("object failed", extra={"bucket": bucket, "key": key, "reason": outcome.reason})
    elif outcome.status == "skipped":
        logger.info("object skipped", extra={"bucket": bucket, "key": key, "reason": outcome.reason})
    if outcome.status == "written":  # stage latencies of written images only (an unchanged one has a 304's)
        metrics.image(outcome.counted_as, megapixels=outcome.megapixels, seconds={**outcome.seconds, "total": elapsed})
    else:
        metrics.image(outcome.counted_as)
    return outcome


def _turned_away(settings: Settings, bucket: str, key: str) -> Outcome | None:
    """The outcome of an object the job does not read (its own output, not allowed, not an image), else None."""
    if s3_outputs.is_own_output(settings, bucket, key):
        return Outcome(bucket, key, "skipped", "one of this function's own outputs")
    refused = settings.may_read(bucket, key)
    if refused is not None:
        return Outcome(bucket, key, "failed", f"{refused.code}: {refused.message}")
    if posixpath.splitext(key)[1].lower() not in IMAGE_EXTENSIONS:
        return Outcome(bucket, key, "skipped", "not an image key (by extension)")
    return None


def _make_outputs(bucket: str, key: str, *, estimator: DepthEstimator, store: S3Store, etag: str | None) -> Outcome:
    settings = estimator.settings
    if not settings.output_bucket:
        raise OutputNotConfigured("OUTPUT_BUCKET is not configured")
    if ".." in key.split("/"):
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
