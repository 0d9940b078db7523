"""The S3 upload trigger: S3 event records (direct, or wrapped in SQS messages) → heatmaps in the output bucket.

Every record is processed; failures are collected, logged with bucket and key, and reported at the end so that
Lambda's retries / on-failure destination (direct S3 events) or the SQS redrive (``batchItemFailures``) apply.
Outputs are deterministic and keyed by the source key, so a re-delivered event overwrites the same objects.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from handler import events, geometry, outputs
from handler.config import Settings
from handler.core import DepthEstimator
from handler.errors import DepthError, InvalidRequest, OutputNotConfigured
from handler.imaging import IMAGE_EXTENSIONS
from handler.logs import logger
from handler.s3io import S3Store


class RecordsFailed(Exception):
    """Raised after all records ran when any failed: the invocation fails so Lambda retries it.

    ``summary`` accounts for every record of the event (written, skipped, failed), like a successful return.
    """

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass
class Outcome:
    bucket: str
    key: str
    status: str  # "written" | "skipped" | "failed"
    reason: str = ""
    outputs: dict[str, str] = field(default_factory=dict)


def _refusal(settings: Settings, bucket: str, key: str) -> str | None:
    """Why this function must not read ``bucket/key`` (not its input bucket, or outside the upload prefix)."""
    if bucket not in settings.allowed_input_buckets:
        return "bucket_not_allowed: not one of this function's input buckets (ALLOWED_INPUT_BUCKETS)"
    if not key.startswith(settings.upload_prefix):
        return f"key_not_allowed: outside the upload prefix {settings.upload_prefix} (UPLOAD_PREFIX)"
    return None


def process_record(record: Any, estimator: DepthEstimator, store: S3Store) -> Outcome:
    """One S3 record → heatmap (+ PFM, point cloud when enabled) under ``<output prefix><key>``."""
    settings = estimator.settings
    try:
        bucket = record.s3.bucket.name
        key = unquote_plus(record.s3.get_object.key)  # AWS and emulators encode spaces/unicode differently
        event_name = record.event_name
        if not all(isinstance(v, str) for v in (bucket, key, event_name)):
            raise TypeError("bucket name, key and eventName must be strings")
    except (KeyError, TypeError, AttributeError) as exc:  # a hand-made event: fail this record, not the batch
        logger.error("malformed S3 record", extra={"error": f"{type(exc).__name__}: {exc}"})
        return Outcome("", "", "failed", "malformed_record: no string s3.bucket.name, s3.object.key or eventName")
    if not event_name.startswith("ObjectCreated"):
        return Outcome(bucket, key, "skipped", "not an upload (eventName is not ObjectCreated:*)")
    if outputs.is_own_output(settings, bucket, key):
        return Outcome(bucket, key, "skipped", "one of this function's own outputs")
    refusal = _refusal(settings, bucket, key)
    if refusal:
        logger.error("record refused", extra={"bucket": bucket, "key": key, "reason": refusal})
        return Outcome(bucket, key, "failed", refusal)
    if posixpath.splitext(key)[1].lower() not in IMAGE_EXTENSIONS:
        return Outcome(bucket, key, "skipped", "not an image key (by extension)")
    try:
        if not settings.output_bucket:
            raise OutputNotConfigured("OUTPUT_BUCKET is not configured")
        if ".." in key.split("/"):
            raise InvalidRequest("key has '..' segments; refusing to derive an output key from it")
        obj = store.get(bucket, key, settings.max_image_bytes)
        points = settings.write_point_cloud != "none"
        options = geometry.Options()  # the documented defaults, as the CLI's and the API's
        result = estimator.estimate(obj.body, max_points=options.max_points if points else None)
        files = {"heatmap": estimator.heatmap_png(result)}
        if settings.write_raw_depth:
            files["pfm"] = estimator.depth_pfm(result)
        if points:
            files[settings.write_point_cloud] = estimator.point_cloud(result, settings.write_point_cloud, options)[0]
        meta = outputs.s3_metadata(
            source_bucket=bucket,
            source_key=key,
            source_etag=obj.etag,
            model_sha256=estimator.model.manifest.data["onnx_sha256"],
        )
        written = outputs.write_outputs(store, settings, outputs.upload_stem(key), files, meta)
    except DepthError as exc:
        logger.error("record failed", extra={"bucket": bucket, "key": key, "error": exc.code, "reason": exc.message})
        return Outcome(bucket, key, "failed", f"{exc.code}: {exc.message}")
    except Exception as exc:  # one broken record must not lose the others
        logger.exception("record failed", extra={"bucket": bucket, "key": key})
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
            "timings": {k: round(v, 4) for k, v in result.timings.items()},
        },
    )
    return Outcome(bucket, key, "written", outputs=written)


def _process_guarded(record: Any, estimator: DepthEstimator, store: S3Store) -> Outcome:
    """``process_record``, with anything it lets escape (a record of odd types) failing that record alone."""
    try:
        return process_record(record, estimator, store)
    except Exception as exc:
        logger.exception("malformed S3 record")
        return Outcome("", "", "failed", f"malformed_record: {type(exc).__name__}: {exc}")


def process_records(event: dict, estimator: DepthEstimator, store: S3Store) -> list[Outcome]:
    from aws_lambda_powertools.utilities.data_classes import S3Event  # ~40 ms: only containers that get S3 events

    outcomes = [_process_guarded(r, estimator, store) for r in S3Event(event).records]
    for o in outcomes:
        if o.status == "skipped":
            logger.info("record skipped", extra={"bucket": o.bucket, "key": o.key, "reason": o.reason})
    return outcomes


def _summary(outcomes: list[Outcome]) -> dict[str, Any]:
    return {
        status: [
            {"bucket": o.bucket, "key": o.key, **({"reason": o.reason} if o.reason else {}), **o.outputs}
            for o in outcomes
            if o.status == status
        ]
        for status in ("written", "skipped", "failed")
    }


def handle_s3_event(event: dict, estimator: DepthEstimator, store: S3Store) -> dict[str, Any]:
    """Process every record, then fail the invocation if any failed (so Lambda retries / dead-letters it)."""
    outcomes = process_records(event, estimator, store)
    summary = _summary(outcomes)
    if summary["failed"]:
        failed = "; ".join(f"s3://{f['bucket']}/{f['key']} ({f['reason']})" for f in summary["failed"])
        raise RecordsFailed(f"{len(summary['failed'])} of {len(outcomes)} records failed: {failed}", summary)
    return summary


def handle_sqs_event(event: dict, estimator: DepthEstimator, store: S3Store) -> dict[str, Any]:
    """SQS messages wrapping S3 notifications → partial batch response (``ReportBatchItemFailures``).

    Each message is settled on its own: whatever goes wrong with one (not JSON, not an S3 notification, a failed or
    malformed record, an unexpected exception) is logged with its reason and reports that message alone.
    """
    from aws_lambda_powertools.utilities.data_classes import SQSEvent

    failures = []
    for message in SQSEvent(event).records:
        try:
            reason = _message_failure(message.body, estimator, store)
        except Exception as exc:
            reason = f"internal_error: {type(exc).__name__}: {exc}"
            logger.exception("SQS message failed", extra={"message_id": message.message_id, "reason": reason})
        else:
            if reason:
                logger.error("SQS message failed", extra={"message_id": message.message_id, "reason": reason})
        if reason:
            failures.append({"itemIdentifier": message.message_id})
    return {"batchItemFailures": failures}


_PERMANENT = "it fails on every delivery and ends in the dead-letter queue"


def _message_failure(body: Any, estimator: DepthEstimator, store: S3Store) -> str | None:
    """Why one SQS message failed, or None when it is settled (processed, or S3's test event dropped).

    A message that is not JSON or not an S3 notification fails on every delivery: it is reported all the same, so the
    queue's redrive policy moves it to the dead-letter queue for inspection instead of deleting it.
    """
    try:
        notification = json.loads(body)
    except (TypeError, ValueError):
        return f"the body is not JSON; {_PERMANENT}"
    if isinstance(notification, dict) and notification.get("Event") == "s3:TestEvent":
        logger.info("S3 test event dropped", extra={"bucket": notification.get("Bucket")})
        return None
    kind = events.event_kind(notification)
    if kind != "s3":
        return f"the body is not an S3 notification (its source: {kind}); {_PERMANENT}"
    outcomes = process_records(notification, estimator, store)
    failed = [o for o in outcomes if o.status == "failed"]
    return f"{len(failed)} of {len(outcomes)} records failed" if failed else None
