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
from dataclasses import dataclass, field

import pytest

from handler import events
from handler.errors import UnsupportedEvent
from handler.logs import SERVICE
from handler.sources import http, s3_notification, sqs
from handler.sources.settle import RecordsFailed
from support import EVENTS, encode, list_keys, load_event, response_body, scene

THIRD_PARTY = EVENTS / "third_party"
Logged = Callable[[], list[logging.LogRecord]]  # the function's error log records so far

# The keys of a response, per source: Mangum answers each in its own format.
REST = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}  # API Gateway REST API (v1)
V2 = {"statusCode", "headers", "body", "isBase64Encoded"}  # HTTP API (v2) and Function URL
ALB = {"statusCode", "headers", "body", "isBase64Encoded"}  # ALB without multi-value headers
ALB_MULTI = {"statusCode", "multiValueHeaders", "body", "isBase64Encoded"}  # ALB with multi-value headers on


@dataclass(frozen=True)
class Http:
    """Mangum → the app: ``status``, the JSON ``error`` code (None: a 200 HTML page), the response's keys."""

    shape: set[str]
    status: int
    error: str | None = "not_found"


@dataclass(frozen=True)
class S3Records:
    """A direct S3 event: nothing written; each (bucket, decoded key) skipped or failed with a reason."""

    records: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SqsBatch:
    """``failed``: messages reported in ``batchItemFailures`` (not S3 notifications); ``s3``: messages carrying an S3
    notification, whose records are checked as a direct event (they fail or are skipped, naming why)."""

    failed: tuple[str, ...] = ()
    s3: dict[str, S3Records] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchTasks:
    """An S3 Batch Operations job: the answer Batch Operations expects, every task with ``code`` and a reason that
    starts with ``reason``."""

    code: str
    reason: str


@dataclass(frozen=True)
class Refused:
    """``UnsupportedEvent`` naming the source ``handler.events`` detects."""

    source: str


ARTIFACTS = S3Records((("lambda-artifacts-deafc19498e3f2df", "b21b84d653bb07b05b1e6b33684dc11b"),))
SAM_S3 = S3Records((("example-bucket", "test/key"),))
EVENTBRIDGE = S3Records((("example-bucket", "IMG_m7fzo3.jpg"),))
MALFORMED_BASE64 = (  # REST API events whose body is flagged isBase64Encoded but is plain text
    "powertools/apiGatewayProxyEventAnotherPath.json",
    "powertools/apiGatewayProxyEventPathTrailingSlash.json",
    "powertools/apiGatewayProxyEvent_noVersionAuth.json",
)

EXPECTED = {
    # Powertools for AWS Lambda (Python): tests/events/
    "powertools/activeMQEvent.json": Refused("mq"),
    "powertools/albEvent.json": Http(ALB, 404),
    "powertools/albEventPathTrailingSlash.json": Http(ALB, 404),
    "powertools/albMultiValueHeadersEvent.json": Http(ALB_MULTI, 404),
    "powertools/albMultiValueQueryStringEvent.json": Http(ALB_MULTI, 404),
    "powertools/apiGatewayAuthorizerRequestEvent.json": Refused("apigw-authorizer"),
    "powertools/apiGatewayAuthorizerTokenEvent.json": Refused("apigw-authorizer"),
    "powertools/apiGatewayAuthorizerV2Event.json": Refused("apigw-authorizer"),
    "powertools/apiGatewayProxyEvent.json": Http(REST, 404),
    "powertools/apiGatewayProxyEventAnotherPath.json": Http(REST, 400, "invalid_base64"),
    "powertools/apiGatewayProxyEventNoOrigin.json": Http(REST, 404),
    "powertools/apiGatewayProxyEventPathTrailingSlash.json": Http(REST, 400, "invalid_base64"),
    "powertools/apiGatewayProxyEventPrincipalId.json": Http(REST, 404),
    "powertools/apiGatewayProxyEvent_noVersionAuth.json": Http(REST, 400, "invalid_base64"),
    "powertools/apiGatewayProxyOtherEvent.json": Http(REST, 404),
    "powertools/apiGatewayProxyV2Event.json": Http(V2, 404),
    "powertools/apiGatewayProxyV2EventPathTrailingSlash.json": Http(V2, 404),
    "powertools/apiGatewayProxyV2Event_GET.json": Http(V2, 404),
    "powertools/apiGatewayProxyV2IamEvent.json": Http(V2, 404),
    "powertools/apiGatewayProxyV2LambdaAuthorizerEvent.json": Http(V2, 404),
    "powertools/apiGatewayProxyV2OtherGetEvent.json": Http(V2, 404),
    "powertools/apiGatewayProxyV2SchemaMiddlwareInvalidEvent.json": Http(V2, 404),
    "powertools/apiGatewayProxyV2SchemaMiddlwareValidEvent.json": Http(V2, 404),
    "powertools/apigatewayeSchemaMiddlwareInvalidEvent.json": Http(REST, 404),
    "powertools/apigatewayeSchemaMiddlwareValidEvent.json": Http(REST, 404),
    "powertools/appSyncBatchEvent.json": Refused("appsync"),
    "powertools/appSyncResolverEvent.json": Refused("appsync"),
    "powertools/awsConfigRuleScheduled.json": Refused("config"),
    "powertools/bedrockAgentEvent.json": Refused("bedrock-agent"),
    "powertools/cloudWatchAlarmEventSingleMetric.json": Refused("cloudwatch-alarm"),
    "powertools/cloudWatchDashboardEvent.json": Refused("unknown"),
    "powertools/cloudWatchLogEvent.json": Refused("cloudwatch-logs"),
    "powertools/cloudWatchLogEventWithPolicyLevel.json": Refused("cloudwatch-logs"),
    "powertools/cloudformationCustomResourceCreate.json": Refused("cloudformation"),
    "powertools/codeDeployLifecycleHookEvent.json": Refused("codedeploy"),
    "powertools/codePipelineEvent.json": Refused("codepipeline"),
    "powertools/cognitoCustomMessageEvent.json": Refused("cognito"),
    "powertools/cognitoPostConfirmationEvent.json": Refused("cognito"),
    "powertools/cognitoPreSignUpEvent.json": Refused("cognito"),
    "powertools/connectContactFlowEventMin.json": Refused("connect"),
    "powertools/dynamoStreamEvent.json": Refused("dynamodb"),
    "powertools/eventBridgeEvent.json": Refused("eventbridge"),
    "powertools/kafkaEventMsk.json": Refused("kafka"),
    "powertools/kafkaEventSelfManaged.json": Refused("kafka"),
    "powertools/kinesisFirehoseKinesisEvent.json": Refused("firehose"),
    "powertools/kinesisFirehosePutEvent.json": Refused("firehose"),
    "powertools/kinesisFirehoseSQSEvent.json": Refused("firehose"),
    "powertools/kinesisStreamCloudWatchLogsEvent.json": Refused("kinesis"),
    "powertools/kinesisStreamEvent.json": Refused("kinesis"),
    "powertools/kinesisStreamEventOneRecord.json": Refused("kinesis"),
    "powertools/lambdaFunctionUrlEvent.json": Http(V2, 200, None),  # GET /: the web page
    "powertools/lambdaFunctionUrlEventPathTrailingSlash.json": Http(V2, 404),
    "powertools/lambdaFunctionUrlEventWithHeaders.json": Http(V2, 200, None),
    "powertools/lambdaFunctionUrlIAMEvent.json": Http(V2, 404),
    "powertools/rabbitMQEvent.json": Refused("mq"),
    "powertools/s3BatchOperationEventSchemaV1.json": BatchTasks("PermanentFailure", "bucket_not_allowed"),
    "powertools/s3BatchOperationEventSchemaV2.json": BatchTasks("PermanentFailure", "bucket_not_allowed"),
    "powertools/s3Event.json": ARTIFACTS,
    "powertools/s3EventBridgeNotificationObjectCreatedEvent.json": EVENTBRIDGE,
    "powertools/s3EventBridgeNotificationObjectDeletedEvent.json": EVENTBRIDGE,
    "powertools/s3EventBridgeNotificationObjectExpiredEvent.json": EVENTBRIDGE,
    "powertools/s3EventBridgeNotificationObjectRestoreCompletedEvent.json": EVENTBRIDGE,
    "powertools/s3EventDecodedKey.json": S3Records((("sourcebucket", "Happy Face.jpg"),)),
    "powertools/s3EventDeleteObject.json": ARTIFACTS,
    "powertools/s3EventGlacier.json": ARTIFACTS,
    "powertools/s3ObjectEventIAMUser.json": Refused("s3-object-lambda"),
    "powertools/s3ObjectEventTempCredentials.json": Refused("s3-object-lambda"),
    "powertools/s3SqsEvent.json": SqsBatch(
        s3={"ca3e7a89-c358-40e5-8aa0-5da01403c267": S3Records((("xxx", "test.pdf"),))}
    ),
    "powertools/secretsManagerEvent.json": Refused("secretsmanager"),
    "powertools/sesEvent.json": Refused("ses"),
    "powertools/snsEvent.json": Refused("sns"),
    "powertools/snsSqsEvent.json": SqsBatch(("79406a00-bf15-46ca-978c-22c3613fcb30",)),  # an SNS envelope
    "powertools/snsSqsFifoEvent.json": SqsBatch(("69bc4bbd-ed69-4325-a434-85c3b428ceab",)),
    "powertools/sqsDlqTriggerEvent.json": SqsBatch(("db37cc61-1bb0-4e77-b6f3-7cf87f44a72a",)),  # "hello world"
    "powertools/sqsEvent.json": SqsBatch(
        ("059f36b4-87a3-44ab-83d2-661975830a7d", "2e1424d4-f796-459a-8184-9c92662be6da")
    ),
    "powertools/vpcLatticeEvent.json": Refused("vpc-lattice"),
    "powertools/vpcLatticeEventPathTrailingSlash.json": Refused("vpc-lattice"),
    "powertools/vpcLatticeEventV2PathTrailingSlash.json": Refused("vpc-lattice"),
    "powertools/vpcLatticeV2Event.json": Refused("vpc-lattice"),
    "powertools/vpcLatticeV2EventWithHeaders.json": Refused("vpc-lattice"),
    # AWS SAM CLI: sam local generate-event <service> <event>
    "sam-cli/alb-request.json": Http(ALB, 404),
    "sam-cli/alexa-skills-kit-start-session.json": Refused("alexa"),
    "sam-cli/apigateway-authorizer.json": Refused("apigw-authorizer"),
    "sam-cli/apigateway-aws-proxy.json": Http(REST, 404),
    "sam-cli/apigateway-http-api-proxy.json": Http(V2, 404),
    "sam-cli/apigateway-request-authorizer.json": Refused("apigw-authorizer"),
    "sam-cli/appsync-resolver.json": Refused("appsync"),
    "sam-cli/batch-submit-job.json": Refused("unknown"),
    "sam-cli/cloudformation-create-request.json": Refused("cloudformation"),
    "sam-cli/cloudfront-simple-remote-call.json": Refused("lambda-edge"),
    "sam-cli/cloudwatch-logs.json": Refused("cloudwatch-logs"),
    "sam-cli/cloudwatch-scheduled-event.json": Refused("schedule"),
    "sam-cli/codecommit-repository.json": Refused("codecommit"),
    "sam-cli/codepipeline-job.json": Refused("codepipeline"),
    "sam-cli/cognito-sync-trigger.json": Refused("cognito"),
    "sam-cli/config-periodic-rule.json": Refused("config"),
    "sam-cli/connect-contact-flow-event.json": Refused("connect"),
    "sam-cli/dynamodb-update.json": Refused("dynamodb"),
    "sam-cli/kinesis-cloudwatch-logs-processor.json": Refused("firehose"),
    "sam-cli/kinesis-get-records.json": Refused("kinesis"),
    "sam-cli/kinesis-kinesis-firehose.json": Refused("firehose"),
    "sam-cli/kinesis-streams-as-source.json": Refused("firehose"),
    "sam-cli/lex-v2-book-car.json": Refused("lex"),
    "sam-cli/rekognition-s3-request.json": SAM_S3,
    "sam-cli/s3-batch-invocation.json": BatchTasks("PermanentFailure", "bucket_not_allowed"),
    "sam-cli/s3-delete.json": SAM_S3,
    "sam-cli/s3-put.json": SAM_S3,
    "sam-cli/sagemaker-ground-truth-pre-human.json": Refused("sagemaker-ground-truth"),
    "sam-cli/ses-email-receiving.json": Refused("ses"),
    "sam-cli/sns-notification.json": Refused("sns"),
    "sam-cli/sqs-receive-message.json": SqsBatch(("19dd0b57-b21e-4ac1-bd88-01bbb068cb78",)),  # "Hello from SQS!"
    "sam-cli/stepfunctions-error.json": Refused("unknown"),
    "sam-cli/workmail-email.json": Refused("workmail"),
}


def fixture(name: str) -> dict:
    return load_event(f"third_party/{name}")


def test_every_committed_fixture_has_an_expected_outcome():
    committed = {str(p.relative_to(THIRD_PARTY)) for p in THIRD_PARTY.rglob("*.json")}
    assert committed == set(EXPECTED)


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


def test_the_refusal_lists_what_the_function_handles():
    sns = {"Records": [{"EventSource": "aws:sns"}]}
    message = str(events.refusal(sns, handled=[http, s3_notification, sqs]))
    assert message == (
        "event source sns (SNS notification) is not wired to this function; it handles: HTTP request (API Gateway "
        "REST or HTTP API, Function URL, ALB); S3 event notification; SQS messages carrying S3 notifications"
    )


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
