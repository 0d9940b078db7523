"""S3 Batch Operations ("Invoke AWS Lambda function" jobs, schema 1.0 and 2.0) → one result per task.

Each task names one object (1.0: ``s3BucketArn`` and a URL-encoded ``s3Key``; 2.0: ``s3Bucket`` and ``s3Key``, with
the job's ``userArguments``), which goes through the per-object job like an upload. The answer is what Batch
Operations expects: ``invocationSchemaVersion``, ``treatMissingKeysAs``, ``invocationId`` and, per task,
``Succeeded`` (written, unchanged, or skipped: not an image), ``TemporaryFailure`` (S3 throttled, timed out or was
unreachable: Batch Operations retries it) or ``PermanentFailure`` (not an image after all, too large, missing, not
allowed), each with a short ``resultString`` that the job's completion report lists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from handler import job
from handler.job import Outcome

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.s3_batch_operation_event import (
        RESULT_CODE_TYPE,
        S3BatchOperationResponseRecord,
        S3BatchOperationTask,
    )

    from handler.estimator import DepthEstimator
    from handler.s3_store import S3Store

NAME = "s3-batch"
LABEL = "S3 Batch Operations job"
# Batch Operations truncates a resultString in the completion report; keep it to one short line.
MAX_RESULT_STRING = 300


def matches(event: Any) -> bool:
    return isinstance(event, dict) and "invocationSchemaVersion" in event and "tasks" in event


def handle(event: dict, context: Any, *, estimator: DepthEstimator, store: S3Store) -> dict[str, Any]:
    """Every task through the job, answered in Powertools' ``S3BatchOperationResponse`` shape."""
    from aws_lambda_powertools.utilities.data_classes import S3BatchOperationEvent, S3BatchOperationResponse

    if not isinstance(event.get("tasks"), list) or not isinstance(event.get("invocationId"), str):
        raise ValueError("malformed S3 Batch Operations event: 'tasks' must be a list and 'invocationId' a string")
    batch = S3BatchOperationEvent(event)
    response = S3BatchOperationResponse(batch.invocation_schema_version, batch.invocation_id, "PermanentFailure")
    for task in batch.tasks:
        response.add_result(_result(task, estimator, store))
    # Powertools' asdict() answers one task only; Batch Operations' own invocations carry one, our tests many.
    return {
        "invocationSchemaVersion": response.invocation_schema_version,
        "treatMissingKeysAs": response.treat_missing_keys_as,
        "invocationId": response.invocation_id,
        "results": [result.asdict() for result in response.results],
    }


def _result(task: S3BatchOperationTask, estimator: DepthEstimator, store: S3Store) -> S3BatchOperationResponseRecord:
    try:
        bucket, key = task.s3_bucket, task.s3_key  # s3_key: URL-decoded (the manifest's encoding)
        if not (isinstance(bucket, str) and bucket and isinstance(key, str)):
            raise TypeError("no bucket or key")
    except (KeyError, TypeError, AttributeError, IndexError):
        return _answer(task, "PermanentFailure", "malformed_task: no s3Bucket/s3BucketArn or s3Key")
    outcome = job.run(bucket, key, estimator=estimator, store=store)
    return _answer(task, _code(outcome), _result_string(outcome))


def _code(outcome: Outcome) -> RESULT_CODE_TYPE:
    if outcome.status != "failed":
        return "Succeeded"
    return "TemporaryFailure" if outcome.retryable else "PermanentFailure"


def _result_string(outcome: Outcome) -> str:
    text = "written: " + ", ".join(outcome.outputs.values()) if outcome.status == "written" else outcome.reason
    return text if len(text) <= MAX_RESULT_STRING else text[: MAX_RESULT_STRING - 3] + "..."


def _answer(task: S3BatchOperationTask, code: RESULT_CODE_TYPE, text: str) -> S3BatchOperationResponseRecord:
    from aws_lambda_powertools.utilities.data_classes import S3BatchOperationResponseRecord

    task_id = task.get("taskId") if isinstance(task.raw_event, dict) else None
    return S3BatchOperationResponseRecord(task_id=str(task_id), result_code=code, result_string=text)
