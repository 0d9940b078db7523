"""The committed third-party event corpus (tests/events/third_party/) and what the function does with each event.

One table for both scopes: tests/unit/test_event_recognition.py checks which source recognises each event (or that
none does and the refusal names it); tests/functional/test_event_fixtures.py runs each through the Lambda entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from localdev.events import EVENTS, load_event

THIRD_PARTY = EVENTS / "third_party"

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
    """One event of the corpus, by its name in :data:`EXPECTED`."""
    return load_event(f"third_party/{name}")
