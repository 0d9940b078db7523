"""Lambda events written by others, each through the real entry: handled, or refused with an error naming the source.

The fixtures are the Powertools for AWS Lambda (Python) test events and the AWS SAM CLI's sample events, committed
unchanged under tests/events/third_party/ (origins in its README.md). ``EXPECTED`` gives every one of them its
outcome: an HTTP answer (status, error code, and the response shape of the event's source), S3 records accounted
for (direct or via EventBridge), an SQS batch response, an S3 Batch Operations answer, or ``UnsupportedEvent`` naming
the detected source.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable

import pytest

from handler.errors import UnsupportedEvent
from handler.logs import SERVICE
from handler.sources import eventbridge_s3, http, s3_batch, s3_notification, sqs
from handler.sources.settle import RecordsFailed
from support import encode, list_keys, load_event, response_body, scene
from support.event_corpus import (
    ALB,
    ALB_MULTI,
    EXPECTED,
    MALFORMED_BASE64,
    REST,
    V2,
    BatchTasks,
    Http,
    Refused,
    S3Records,
    SqsBatch,
    fixture,
)

Logged = Callable[[], list[logging.LogRecord]]  # the function's error log records so far


@pytest.fixture
def errors_logged(caplog) -> Logged:
    """The function's error log records so far in this test."""
    caplog.set_level(logging.ERROR, logger=SERVICE)
    return lambda: [r for r in caplog.records if r.name == SERVICE and r.levelno >= logging.ERROR]


def assert_http(response: dict, expected: Http) -> None:
    assert set(response) == expected.shape, response
    assert response["statusCode"] == expected.status, response
    if expected.error is None:
        content_type = {k.lower(): v for k, v in response["headers"].items()}["content-type"]
        assert content_type.startswith("text/html")
        return
    body = json.loads(response_body(response))
    assert body["status"] == "error" and body["error"] == expected.error and body["message"]


def assert_s3_records(entry, lambda_context, event: dict, expected: S3Records) -> None:
    """Nothing written; every record skipped or failed, each with a reason (whatever refuses it)."""
    try:
        summary = entry.lambda_handler(event, lambda_context)
    except RecordsFailed as exc:
        summary = exc.summary
    assert summary["written"] == []
    settled = summary["skipped"] + summary["failed"]
    assert sorted((r["bucket"], r["key"]) for r in settled) == sorted(expected.records)
    for record in settled:
        assert len(record["reason"]) > 10 and "Traceback" not in record["reason"], record


def assert_sqs_batch(entry, lambda_context, event: dict, expected: SqsBatch, logged: Logged) -> None:
    result = entry.lambda_handler(event, lambda_context)
    reported = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    assert set(expected.failed) <= reported <= set(expected.failed) | set(expected.s3), result
    reasons = {r.message_id: r.reason for r in logged() if r.getMessage() == "SQS message failed"}
    assert set(reasons) == reported
    for message_id in expected.failed:
        assert "ends in the dead-letter queue" in reasons[message_id]
    for message in event["Records"]:
        if message["messageId"] in expected.s3:
            notification = json.loads(message["body"])
            assert_s3_records(entry, lambda_context, notification, expected.s3[message["messageId"]])


def assert_batch(entry, lambda_context, event: dict, expected: BatchTasks) -> None:
    answer = entry.lambda_handler(event, lambda_context)
    assert answer["invocationSchemaVersion"] == event["invocationSchemaVersion"]
    assert answer["invocationId"] == event["invocationId"] and answer["treatMissingKeysAs"] == "PermanentFailure"
    assert [r["taskId"] for r in answer["results"]] == [t["taskId"] for t in event["tasks"]]
    for result in answer["results"]:
        assert result["resultCode"] == expected.code and result["resultString"].startswith(expected.reason), result


def assert_refused(entry, lambda_context, event: dict, expected: Refused, logged: Logged) -> None:
    with pytest.raises(UnsupportedEvent) as refused:
        entry.lambda_handler(event, lambda_context)
    message = str(refused.value)
    assert refused.value.source == expected.source
    named = "event of no known source (" if expected.source == "unknown" else f"event source {expected.source} ("
    assert message.startswith(named), message
    assert "is not wired to this function; it handles: HTTP request" in message
    assert [(r.getMessage(), r.source) for r in logged()] == [("unsupported event source", expected.source)]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_through_the_entry(name, entry, lambda_context, errors_logged):
    event, expected = fixture(name), EXPECTED[name]
    if isinstance(expected, Http):
        assert_http(entry.lambda_handler(event, lambda_context), expected)
    elif isinstance(expected, S3Records):
        assert_s3_records(entry, lambda_context, event, expected)
    elif isinstance(expected, SqsBatch):
        assert_sqs_batch(entry, lambda_context, event, expected, errors_logged)
    elif isinstance(expected, BatchTasks):
        assert_batch(entry, lambda_context, event, expected)
    else:
        assert_refused(entry, lambda_context, event, expected, errors_logged)


# ------------------------------------------------------------------------------------------------ HTTP


@pytest.mark.parametrize("name", MALFORMED_BASE64)
def test_body_flagged_base64_but_not_base64_answers_400(name, entry, lambda_context):
    event = fixture(name)
    assert event["isBase64Encoded"] is True and event["body"] == "Hello from Lambda!"
    response = entry.lambda_handler(event, lambda_context)
    assert response["statusCode"] == 400 and set(response) == REST
    assert {k.lower(): v for k, v in response["headers"].items()}["content-type"] == "application/json"
    assert json.loads(response_body(response)) == {
        "status": "error",
        "error": "invalid_base64",
        "message": "the request body is flagged isBase64Encoded but is not valid base64 (Incorrect padding)",
    }


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("sam-cli/apigateway-aws-proxy.json", REST),
        ("sam-cli/apigateway-http-api-proxy.json", V2),
        ("powertools/lambdaFunctionUrlIAMEvent.json", V2),
        ("sam-cli/alb-request.json", ALB),
        ("powertools/albMultiValueHeadersEvent.json", ALB_MULTI),
    ],
)
@pytest.mark.parametrize("body", ["Hello from Lambda!", "aGVsbG8=é"])  # bad padding; not ASCII
def test_malformed_base64_answers_400_in_each_sources_format(name, shape, body, entry, lambda_context):
    event = {**fixture(name), "body": body, "isBase64Encoded": True}
    response = entry.lambda_handler(event, lambda_context)
    assert set(response) == shape and response["statusCode"] == 400, response
    assert json.loads(response_body(response))["error"] == "invalid_base64"


@pytest.mark.parametrize("name", ["sam-cli/alb-request.json", "powertools/albMultiValueHeadersEvent.json"])
def test_health_through_an_alb(name, entry, lambda_context):
    event = {**fixture(name), "httpMethod": "GET", "path": "/health", "body": "", "isBase64Encoded": False}
    response = entry.lambda_handler(event, lambda_context)
    assert response["statusCode"] == 200, response
    assert json.loads(response_body(response))["model"] == "MiDaS_small"


# ------------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("event", "shape"),
    [
        ({"Error": "States.Timeout", "Cause": "x"}, "top-level keys: Error, Cause"),
        ({}, "top-level keys: none"),
        ("hello", "a JSON string"),
        ([1, 2], "a JSON array"),
        (None, "a JSON null"),
    ],
)
def test_an_event_of_no_known_source_is_refused_with_its_shape(event, shape, entry, lambda_context):
    with pytest.raises(UnsupportedEvent, match=f"^event of no known source \\({shape}\\) is not wired"):
        entry.lambda_handler(event, lambda_context)


# ------------------------------------------------------------------------------------------------ SQS messages


def test_each_sqs_message_fails_alone(entry, lambda_context, s3, input_bucket, output_bucket, errors_logged):
    """Malformed S3 notifications, and one whose parsing raises, fail their own message; the good one is written."""
    key = "uploads/event-fixtures/sqs-good.jpg"
    s3.put_object(Bucket=input_bucket, Key=key, Body=encode(scene(64, 48, seed=7)))
    record = load_event("s3-put.json")["Records"][0]
    record["s3"]["bucket"]["name"] = input_bucket
    record["s3"]["object"]["key"] = key
    bodies = {
        "good": {"Records": [record]},
        "event-name-not-a-string": {"Records": [{**copy.deepcopy(record), "eventName": 5}]},
        "records-not-a-list": {"Records": {"0": record}},
        "record-not-a-dict": {"Records": [copy.deepcopy(record), "not a record"]},
        "no-s3-section": {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]},
        "s3-test-event": {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": input_bucket},
    }
    template = fixture("sam-cli/sqs-receive-message.json")["Records"][0]
    messages = [{**template, "messageId": name, "body": json.dumps(body)} for name, body in bodies.items()]
    messages.append({**template, "messageId": "nested-too-deep", "body": "[" * 100_000 + "]" * 100_000})
    result = entry.lambda_handler({"Records": messages}, lambda_context)
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == [
        "event-name-not-a-string",
        "records-not-a-list",
        "record-not-a-dict",
        "no-s3-section",
        "nested-too-deep",
    ]
    assert [k for k in list_keys(s3, output_bucket) if "event-fixtures/sqs-good." in k]  # the good one was written
    reasons = {r.message_id: r.reason for r in errors_logged() if r.getMessage() == "SQS message failed"}
    assert reasons["records-not-a-list"].startswith("the body is not an S3 notification (its source: unknown)")
    assert reasons["record-not-a-dict"] == "1 of 2 records failed"
    assert reasons["nested-too-deep"].startswith("internal_error: RecursionError")


def test_the_entry_walks_every_source(entry):
    """tests/unit/test_event_recognition.py checks recognition over the same five sources the entry walks."""
    assert set(entry.SOURCES) == {http, s3_notification, sqs, eventbridge_s3, s3_batch}
