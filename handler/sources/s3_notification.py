"""S3 event notifications (the bucket's own, direct or carried by SQS): each record → the per-object job.

The answer is the summary of every record, or ``RecordsFailed`` when any failed in a way another attempt may cure
(:mod:`handler.sources.settle`), so that Lambda's retries and on-failure destination apply; an upload that fails for
good is recorded under the output bucket's ``failures/`` instead. Outputs record what they were made from, so a
re-delivered event for an unchanged object writes nothing (``unchanged``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from handler import job
from handler.events import record_source
from handler.job import Outcome
from handler.logs import logger
from handler.sources.settle import settle

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventRecord

    from handler.estimator import DepthEstimator
    from handler.s3_store import S3Store

NAME = "s3"
LABEL = "S3 event notification"
matches = record_source("aws:s3")


def handle(event: dict, context: Any, *, estimator: DepthEstimator, store: S3Store) -> dict[str, Any]:
    """Process every record, then fail the invocation if any failed but not for good (Lambda retries it)."""
    return settle(outcomes(event, estimator=estimator, store=store))


def outcomes(event: dict, *, estimator: DepthEstimator, store: S3Store) -> list[Outcome]:
    """Every record of the notification through the job; a record that cannot be read fails alone, whatever it
    raises."""
    from aws_lambda_powertools.utilities.data_classes import S3Event  # imported by the containers that get S3 events

    done = []
    for record in S3Event(event).records:
        try:
            done.append(_record(record, estimator, store))
        except Exception as exc:
            logger.exception("malformed S3 record")
            done.append(Outcome("", "", "failed", f"malformed_record: {type(exc).__name__}: {exc}"))
    return done


def _record(record: S3EventRecord, estimator: DepthEstimator, store: S3Store) -> Outcome:
    """One record → the job (uploads only), with the key decoded and the record's ETag."""
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
    return job.run(bucket, key, estimator=estimator, store=store, etag=etag if isinstance(etag, str) else None)
