"""The S3 upload trigger: S3 event records and EventBridge S3 events (direct, or wrapped in SQS messages) → heatmaps
in the output bucket, each object through ``handler.job.process_object``.

Every record is processed; failures are collected, logged with bucket and key, and reported at the end so that
Lambda's retries / on-failure destination (direct S3 events) or the SQS redrive (``batchItemFailures``) apply.
Outputs are keyed by the source key and record what they were made from, so a re-delivered event for an unchanged
object writes nothing (``unchanged``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from handler import events
from handler.estimator import DepthEstimator
from handler.job import Outcome, process_object
from handler.logs import logger
from handler.s3_store import S3Store


class RecordsFailed(Exception):
    """Raised after all records ran when any failed: the invocation fails so Lambda retries it.

    ``summary`` accounts for every record of the event (written, skipped, failed), like a successful return.
    """

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


def process_record(record: Any, estimator: DepthEstimator, store: S3Store) -> Outcome:
    """One S3 record → ``process_object`` (uploads only), with the key decoded and the record's ETag."""
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
    etag = record.s3.get_object.raw_event.get("eTag")  # absent in some hand-made events
    return process_object(bucket, key, estimator, store, etag=etag if isinstance(etag, str) else None)


def process_eventbridge(event: dict, estimator: DepthEstimator, store: S3Store) -> list[Outcome]:
    """An S3 event delivered by EventBridge (``detail-type`` "Object Created") → ``process_object``; other detail
    types (deleted, restored, ...) are skipped. The key is read as a notification's (``unquote_plus``, as Powertools'
    ``S3EventBridgeNotificationObject.key`` does); should that name no object while the key as sent does (a sender
    that does not encode, and a key with ``+`` or ``%``), the key as sent is used."""
    detail = event.get("detail")
    try:
        bucket, key, etag = detail["bucket"]["name"], detail["object"]["key"], detail["object"].get("etag")
        if not (isinstance(bucket, str) and isinstance(key, str)):
            raise TypeError("bucket name and key must be strings")
    except (KeyError, TypeError, AttributeError) as exc:
        logger.error("malformed EventBridge S3 event", extra={"error": f"{type(exc).__name__}: {exc}"})
        return [Outcome("", "", "failed", "malformed_record: no string detail.bucket.name or detail.object.key")]
    if event.get("detail-type") != "Object Created":
        return [Outcome(bucket, key, "skipped", f"not an upload (detail-type is {event.get('detail-type')!r})")]
    etag, decoded = etag if isinstance(etag, str) else None, unquote_plus(key)
    outcome = process_object(bucket, decoded, estimator, store, etag=etag)
    if decoded != key and outcome.reason.startswith("s3_object_not_found"):
        outcome = process_object(bucket, key, estimator, store, etag=etag)
    return [outcome]


def _process_guarded(record: Any, estimator: DepthEstimator, store: S3Store) -> Outcome:
    """``process_record``, with anything it lets escape (a record of odd types) failing that record alone."""
    try:
        return process_record(record, estimator, store)
    except Exception as exc:
        logger.exception("malformed S3 record")
        return Outcome("", "", "failed", f"malformed_record: {type(exc).__name__}: {exc}")


def process_records(event: dict, estimator: DepthEstimator, store: S3Store) -> list[Outcome]:
    from aws_lambda_powertools.utilities.data_classes import S3Event  # ~40 ms: only containers that get S3 events

    return [_process_guarded(r, estimator, store) for r in S3Event(event).records]


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
    return _settle(process_records(event, estimator, store))


def handle_eventbridge_event(event: dict, estimator: DepthEstimator, store: S3Store) -> dict[str, Any]:
    """An EventBridge S3 event, settled as a direct S3 event of one record."""
    return _settle(process_eventbridge(event, estimator, store))


def _settle(outcomes: list[Outcome]) -> dict[str, Any]:
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
        message_id = message.raw_event.get("messageId") if isinstance(message.raw_event, dict) else None
        try:
            reason = _message_failure(message.body, estimator, store)
        except Exception as exc:
            reason = f"internal_error: {type(exc).__name__}: {exc}"
            logger.exception("SQS message failed", extra={"message_id": message_id, "reason": reason})
        else:
            if reason:
                logger.error("SQS message failed", extra={"message_id": message_id, "reason": reason})
        if reason:  # a message without an id cannot be named: Lambda then retries the whole batch
            failures.append({"itemIdentifier": message_id or ""})
    return {"batchItemFailures": failures}


# What an SQS message may carry: a notification from the bucket itself, or an EventBridge S3 event (the rule's target).
_NOTIFICATIONS = {"s3": process_records, "eventbridge-s3": process_eventbridge}
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
    if kind not in _NOTIFICATIONS:
        return f"the body is not an S3 notification (its source: {kind}); {_PERMANENT}"
    outcomes = _NOTIFICATIONS[kind](notification, estimator, store)
    failed = [o for o in outcomes if o.status == "failed"]
    return f"{len(failed)} of {len(outcomes)} records failed" if failed else None
