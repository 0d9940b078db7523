"""Outcomes of S3 records → the answer of a direct S3 or EventBridge invocation: a summary, or ``RecordsFailed``.

Every record is processed first; failures are then reported together so that Lambda's retries and on-failure
destination apply to the invocation, while the summary still accounts for every record. Below every source: the
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
    """The summary of ``outcomes``; raises ``RecordsFailed`` (carrying it) when any failed."""
    done = summary(outcomes)
    if done["failed"]:
        failed = "; ".join(f"s3://{f['bucket']}/{f['key']} ({f['reason']})" for f in done["failed"])
        raise RecordsFailed(f"{len(done['failed'])} of {len(outcomes)} records failed: {failed}", done)
    return done


def failure(outcomes: list[Outcome]) -> str | None:
    """Why a message carrying these records failed, or None when none did."""
    failed = [o for o in outcomes if o.status == "failed"]
    return f"{len(failed)} of {len(outcomes)} records failed" if failed else None
