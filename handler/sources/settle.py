"""Outcomes of S3 records → the answer of a direct S3 or EventBridge invocation: a summary, or ``RecordsFailed``.

Every record is processed first; failures that another attempt may cure are then reported together so that
Lambda's retries and on-failure destination apply to the invocation, while the summary still accounts for every
record. A permanent failure (the object itself is at fault) is already recorded by the job under the output
bucket's ``failures/`` and is not retried: it is listed in the summary with its record's key. Below every source: the
S3 notification and EventBridge sources answer with :func:`settle`, the SQS source judges each message with
:func:`failure`.
"""

from __future__ import annotations

from typing import Any

from handler.job import Outcome


class RecordsFailed(Exception):
    """Raised after all records ran when any failed: the invocation fails so Lambda retries it.

    ``summary`` accounts for every record of the event (written, skipped, failed), like a successful return.
    """

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    return {
        status: [
            {"bucket": o.bucket, "key": o.key, **({"reason": o.reason} if o.reason else {}), **o.outputs}
            for o in outcomes
            if o.status == status
        ]
        for status in ("written", "skipped", "failed")
    }


def settle(outcomes: list[Outcome]) -> dict[str, Any]:
    """The summary of ``outcomes``; raises ``RecordsFailed`` (carrying it) when any failed and may be retried."""
    done = summary(outcomes)
    retried = _retried(outcomes)
    if retried:
        failed = "; ".join(f"s3://{o.bucket}/{o.key} ({o.reason})" for o in retried)
        raise RecordsFailed(f"{len(retried)} of {len(outcomes)} records failed: {failed}", done)
    return done


def failure(outcomes: list[Outcome]) -> str | None:
    """Why a message carrying these records must be delivered again, or None when none failed but for good."""
    retried = _retried(outcomes)
    return f"{len(retried)} of {len(outcomes)} records failed" if retried else None


def _retried(outcomes: list[Outcome]) -> list[Outcome]:
    """The failures worth another delivery: all but the recorded permanent ones."""
    return [o for o in outcomes if o.status == "failed" and not o.permanent]
