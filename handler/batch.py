"""S3 Batch Operations ("Invoke AWS Lambda function" jobs, schema 1.0 and 2.0) → one result per task.

Each task names one object (1.0: ``s3BucketArn`` and a URL-encoded ``s3Key``; 2.0: ``s3Bucket`` and ``s3Key``, with
the job's ``userArguments``), which goes through ``handler.job.process_object`` like an upload. The answer is
what Batch Operations expects: ``invocationSchemaVersion``, ``treatMissingKeysAs``, ``invocationId`` and, per task,
``Succeeded`` (written, unchanged, or skipped: not an image), ``TemporaryFailure`` (S3 throttled, timed out or was
unreachable: Batch Operations retries it) or ``PermanentFailure`` (not an image after all, too large, missing, not
allowed), each with a short ``resultString`` that the job's completion report lists.
"""

from __future__ import annotations

from typing import Any

from handler.estimator import DepthEstimator
from handler.job import Outcome, process_object
from handler.s3_store import S3Store

# Batch Operations truncates a resultString in the completion report; keep it to one short line.
MAX_RESULT_STRING = 300


def handle_batch_event(event: dict, estimator: DepthEstimator, store: S3Store) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.data_classes import S3BatchOperationEvent

    if not isinstance(event.get("tasks"), list) or not isinstance(event.get("invocationId"), str):
        raise ValueError("malformed S3 Batch Operations event: 'tasks' must be a list and 'invocationId' a string")
    batch = S3BatchOperationEvent(event)
    results = [_result(task, estimator, store) for task in batch.tasks]
    return {
        "invocationSchemaVersion": batch.invocation_schema_version,
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": batch.invocation_id,
        "results": results,
    }


def _result(task: Any, estimator: DepthEstimator, store: S3Store) -> dict[str, str]:
    try:
        bucket, key = task.s3_bucket, task.s3_key  # s3_key: URL-decoded (the manifest's encoding)
        if not (isinstance(bucket, str) and bucket and isinstance(key, str)):
            raise TypeError("no bucket or key")
    except (KeyError, TypeError, AttributeError, IndexError):
        return _answer(task, "PermanentFailure", "malformed_task: no s3Bucket/s3BucketArn or s3Key")
    outcome = process_object(bucket, key, estimator, store)
    return _answer(task, _code(outcome), _result_string(outcome))


def _code(outcome: Outcome) -> str:
    if outcome.status != "failed":
        return "Succeeded"
    return "TemporaryFailure" if outcome.retryable else "PermanentFailure"


def _result_string(outcome: Outcome) -> str:
    text = "written: " + ", ".join(outcome.outputs.values()) if outcome.status == "written" else outcome.reason
    return text if len(text) <= MAX_RESULT_STRING else text[: MAX_RESULT_STRING - 3] + "..."


def _answer(task: Any, code: str, text: str) -> dict[str, str]:
    task_id = task.get("taskId") if isinstance(task.raw_event, dict) else None
    return {"taskId": str(task_id), "resultCode": code, "resultString": text}
