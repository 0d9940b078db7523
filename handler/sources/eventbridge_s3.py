"""S3 events delivered by EventBridge (the stack's upload rule; direct or carried by SQS) → the per-object job.

"Object Created" events go through the job; other detail types (deleted, restored, ...) are skipped. Settled as a
direct S3 event of one record (:mod:`handler.sources.settle`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from handler import job
from handler.events import eventbridge
from handler.job import Outcome
from handler.logs import logger
from handler.s3_outputs import has_parent_segments
from handler.sources.settle import settle

if TYPE_CHECKING:
    from handler.estimator import DepthEstimator
    from handler.s3_store import S3Store

NAME = "eventbridge-s3"
LABEL = "S3 notification via EventBridge"
matches = eventbridge(source="aws.s3")


def handle(event: dict, context: Any, *, estimator: DepthEstimator, store: S3Store) -> dict[str, Any]:
    """The event's object through the job; fails the invocation if it failed (so EventBridge retries it)."""
    return settle(outcomes(event, estimator=estimator, store=store))


def outcomes(event: dict, *, estimator: DepthEstimator, store: S3Store) -> list[Outcome]:
    """The object of an "Object Created" event through the job. The key is read as a notification's
    (``unquote_plus``, as Powertools' ``S3EventBridgeNotificationObject.key`` does); should that name no object
    while the key as sent does (a sender that does not encode, and a key with ``+`` or ``%``), the key as sent is
    used."""
    from aws_lambda_powertools.utilities.data_classes import S3EventBridgeNotificationEvent

    notification = S3EventBridgeNotificationEvent(event)
    try:
        detail = notification.detail
        bucket, sent, etag = detail.bucket.name, detail.object["key"], detail.object.get("etag")
        if not (isinstance(bucket, str) and isinstance(sent, str)):
            raise TypeError("bucket name and key must be strings")
    except (KeyError, TypeError, AttributeError) as exc:
        logger.error("malformed EventBridge S3 event", extra={"error": f"{type(exc).__name__}: {exc}"})
        return [Outcome("", "", "failed", "malformed_record: no string detail.bucket.name or detail.object.key")]
    if notification.detail_type != "Object Created":
        return [Outcome(bucket, sent, "skipped", f"not an upload (detail-type is {notification.detail_type!r})")]
    etag, decoded = etag if isinstance(etag, str) else None, detail.object.key
    if has_parent_segments(decoded) and not has_parent_segments(sent):
        # Only decoding made the "..": an encoding sender writes a literal "%" as "%25", so this one does not encode
        # and the key is the one sent (an object named uploads/%2e%2e/d.jpg, as an S3 notification reads it).
        decoded = sent
    return [job.run(bucket, decoded, estimator=estimator, store=store, etag=etag, also_as=sent)]
