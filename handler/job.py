"""One object of an input bucket → its outputs: the per-object path that every S3-driven source shares (S3 event
records, SQS-wrapped notifications, EventBridge "Object Created" events, S3 Batch Operations tasks).

Checks first (the function's own outputs, the input bucket and upload prefix, the extension), then idempotency: an
object whose heatmap already records the same source ETag, model sha256 and recipe (colormap, renderings) is
``unchanged``. That costs one HEAD of the heatmap when the caller knows the source's ETag (S3 and EventBridge events
carry it), and otherwise one conditional GET of the source, which S3 answers 304 without a body when it is unchanged
and with the body (which is needed anyway) when it is not.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass, field

from handler import geometry, metrics, s3_outputs
from handler.errors import DepthError, InvalidRequest, OutputNotConfigured, S3BadGateway, S3Unavailable
from handler.estimator import DepthEstimator
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
    outputs: dict[str, str] = field(default_factory=dict)
    retryable: bool = False  # a failure that may succeed as it is on a later attempt

    @property
    def kind(self) -> str:
        """The status, with the skips of unchanged objects told apart: written, unchanged, skipped or failed."""
        return "unchanged" if self.reason == UNCHANGED else self.status


def refusal(estimator: DepthEstimator, bucket: str, key: str) -> str | None:
    """Why this function must not read ``bucket/key`` (not its input bucket, or outside the upload prefix)."""
    settings = estimator.settings
    if bucket not in settings.allowed_input_buckets:
        return "bucket_not_allowed: not one of this function's input buckets (ALLOWED_INPUT_BUCKETS)"
    if not key.startswith(settings.upload_prefix):
        return f"key_not_allowed: outside the upload prefix {settings.upload_prefix} (UPLOAD_PREFIX)"
    return None


def process_object(
    bucket: str, key: str, estimator: DepthEstimator, store: S3Store, *, etag: str | None = None
) -> Outcome:
    """``bucket/key`` → heatmap (+ PFM when enabled) under ``<output prefix><key>``, unless it is unchanged.

    ``etag``: the source's ETag when the event gives it (saves the GET of an unchanged object). Never raises: every
    failure is an Outcome with its reason, logged, and counted in the metrics.
    """
    seconds: dict[str, float] = {}
    megapixels: list[float] = []
    started = time.perf_counter()
    outcome = _process(bucket, key, estimator, store, etag, seconds, megapixels)
    if outcome.status == "failed":
        logger.error("object failed", extra={"bucket": bucket, "key": key, "reason": outcome.reason})
    elif outcome.status == "skipped":
        logger.info("object skipped", extra={"bucket": bucket, "key": key, "reason": outcome.reason})
    if outcome.status == "written":  # stage latencies of written images only (an unchanged one has a 304's)
        seconds["total"] = time.perf_counter() - started
        metrics.image(outcome.kind, megapixels=megapixels[0], seconds=seconds)
    else:
        metrics.image(outcome.kind)
    return outcome


def _process(
    bucket: str,
    key: str,
    estimator: DepthEstimator,
    store: S3Store,
    etag: str | None,
    seconds: dict[str, float],
    megapixels: list[float],
) -> Outcome:
    settings = estimator.settings
    if s3_outputs.is_own_output(settings, bucket, key):
        return Outcome(bucket, key, "skipped", "one of this function's own outputs")
    refused = refusal(estimator, bucket, key)
    if refused:
        return Outcome(bucket, key, "failed", refused)
    if posixpath.splitext(key)[1].lower() not in IMAGE_EXTENSIONS:
        return Outcome(bucket, key, "skipped", "not an image key (by extension)")
    try:
        if not settings.output_bucket:
            raise OutputNotConfigured("OUTPUT_BUCKET is not configured")
        if ".." in key.split("/"):
            raise InvalidRequest("key has '..' segments; refusing to derive an output key from it")
        stem = s3_outputs.upload_stem(key)
        points = settings.write_point_cloud != "none"
        renderings = (
            "heatmap",
            *(("pfm",) if settings.write_raw_depth else ()),
            *((settings.write_point_cloud,) if points else ()),
        )
        made_by = s3_outputs.s3_metadata(
            model_sha256=estimator.model.manifest.data["onnx_sha256"], recipe=s3_outputs.recipe(settings, renderings)
        )
        recorded = s3_outputs.recorded_source_etag(store, settings, stem, made_by)
        if recorded and recorded == etag:
            return Outcome(bucket, key, "skipped", UNCHANGED)
        tick = time.perf_counter()
        obj = store.get(bucket, key, settings.max_image_bytes, unless_etag=recorded)
        seconds["s3_get"] = time.perf_counter() - tick
        if obj is None:
            return Outcome(bucket, key, "skipped", UNCHANGED)
        options = geometry.Options()  # the documented defaults, as the CLI's and the API's
        result = estimator.estimate(obj.body, max_points=options.max_points if points else None)
        megapixels.append(result.width * result.height / 1e6)
        files = {"heatmap": estimator.heatmap_png(result)}
        if settings.write_raw_depth:
            files["pfm"] = estimator.depth_pfm(result)
        if points:
            files[settings.write_point_cloud] = estimator.point_cloud(result, settings.write_point_cloud, options)[0]
        seconds.update(result.timings)
        meta = s3_outputs.s3_metadata(source_bucket=bucket, source_key=key, source_etag=obj.etag) | made_by
        tick = time.perf_counter()
        written = s3_outputs.write_outputs(store, settings, stem, files, meta)
        seconds["s3_put"] = time.perf_counter() - tick
    except DepthError as exc:
        return Outcome(bucket, key, "failed", f"{exc.code}: {exc.message}", retryable=isinstance(exc, RETRYABLE))
    except Exception as exc:  # one broken object must not lose the others
        logger.exception("object failed unexpectedly", extra={"bucket": bucket, "key": key})
        return Outcome(bucket, key, "failed", f"internal_error: {type(exc).__name__}")
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
    return Outcome(bucket, key, "written", outputs=written)
