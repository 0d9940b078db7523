"""SQS messages carrying S3 notifications or EventBridge S3 events (queue mode) → a partial batch response.

Each message is settled on its own (``ReportBatchItemFailures``): whatever goes wrong with one (not JSON, not an S3
notification, a failed or malformed record, an unexpected exception) is logged with its reason and reports that
message alone. The notifications go through the very adapters of their own sources. An upload that fails for good
(not an image, too large, not allowed) is recorded by the job under the output bucket's ``failures/`` and its message
settled: the record holds what the message held, so nothing is lost, and the message does not sit through
QueueMaxReceiveCount pointless receives to end in the dead-letter queue, which keeps that queue (and its alarm) for
faults that deserve an operator: S3 unavailable, messages that are no notification at all.

Powertools' ``BatchProcessor`` is not used: its import costs a first SQS event a quarter of a second or more (it loads
every parser model once pydantic is loaded), and it cannot report a message that has no ``messageId`` (Lambda then
retries the batch).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from handler.events import record_source, unsupported_source
from handler.logs import logger
from handler.sources import eventbridge_s3, http, s3_batch, s3_notification
from handler.sources.settle import failure

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse, PartialItemFailures
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from handler.estimator import DepthEstimator
    from handler.s3_store import S3Store

NAME = "sqs"
LABEL = "SQS messages carrying S3 notifications"
matches = record_source("aws:sqs")

# What a message may carry: a notification from the bucket itself, or an EventBridge S3 event (the rule's target).
CARRIED = (s3_notification, eventbridge_s3)
# The other sources the function handles, to name what a message carries instead (the refused ones: handler.events).
_OTHERS = (http, s3_batch)
_PERMANENT = "it fails on every delivery and ends in the dead-letter queue"


def handle(event: dict, context: Any, *, estimator: DepthEstimator, store: S3Store) -> PartialItemFailureResponse:
    from aws_lambda_powertools.utilities.data_classes import SQSEvent

    failures: list[PartialItemFailures] = []
    for message in SQSEvent(event).records:
        message_id = message.raw_event.get("messageId") if isinstance(message.raw_event, dict) else None
        if _failed(message, message_id, estimator=estimator, store=store):
            # a message without an id cannot be named: Lambda then retries the whole batch
            failures.append({"itemIdentifier": message_id or ""})
    return {"batchItemFailures": failures}


def _failed(message: SQSRecord, message_id: str | None, *, estimator: DepthEstimator, store: S3Store) -> bool:
    """Settle one message; True (logged with its reason) when it failed."""
    try:
        reason = _message_failure(message.body, estimator, store)
    except Exception as exc:
        reason = f"internal_error: {type(exc).__name__}: {exc}"
        logger.exception("SQS message failed", extra={"message_id": message_id, "reason": reason})
        return True
    if reason:
        logger.error("SQS message failed", extra={"message_id": message_id, "reason": reason})
    return reason is not None


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
        # Routine (S3 sends one when a notification is configured, e.g. at `make serve`'s start): not news at INFO.
        logger.debug("S3 test event skipped", extra={"bucket": notification.get("Bucket")})
        return None
    carried = next((source for source in CARRIED if source.matches(notification)), None)
    if carried is None:
        return f"the body is not an S3 notification (its source: {_source_name(notification)}); {_PERMANENT}"
    return failure(carried.outcomes(notification, estimator=estimator, store=store))


def _source_name(body: Any) -> str:
    """The name of the source whose event a message carries instead of a notification."""
    if matches(body):
        return NAME
    return next((source.NAME for source in _OTHERS if source.matches(body)), None) or unsupported_source(body)
