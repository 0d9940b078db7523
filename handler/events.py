"""Which AWS service sent an event: one ordered table of event shapes, the first match names the source.

``event_kind(event)`` answers a short name ("http", "s3", "sqs", "sns", "s3-batch", "eventbridge-s3", ...; "unknown"
when nothing matches). The entry routes on it, and refuses what it has no route for with ``refusal``, whose message
names the source. A new source is one row here and one route in ``handler.entry``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from handler.errors import UnsupportedEvent

Shape = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Source:
    kind: str
    label: str
    matches: Shape


def _has(*keys: str) -> Shape:
    return lambda event: all(key in event for key in keys)


def _first_record(event: dict[str, Any]) -> dict[str, Any]:
    records = event.get("Records")
    first = records[0] if isinstance(records, list) and records else None
    return first if isinstance(first, dict) else {}


def _record_source(name: str) -> Shape:
    """``Records[0].eventSource`` (``EventSource`` for SNS) is ``name``: S3, SQS, SNS, DynamoDB, Kinesis, SES."""

    def matches(event: dict[str, Any]) -> bool:
        first = _first_record(event)
        return name in (first.get("eventSource"), first.get("EventSource"))

    return matches


def _first_record_has(key: str) -> Shape:
    return lambda event: key in _first_record(event)


def _is_authorizer(event: dict[str, Any]) -> bool:
    return event.get("type") in ("TOKEN", "REQUEST") and ("methodArn" in event or "routeArn" in event)


def _is_vpc_lattice(event: dict[str, Any]) -> bool:
    context = event.get("requestContext")
    return "raw_path" in event or (isinstance(context, dict) and "serviceNetworkArn" in context)  # versions 1 and 2


def _is_http(event: dict[str, Any]) -> bool:
    """The shapes Mangum adapts: ALB (``requestContext.elb``), REST API (``resource``), HTTP API / Function URL
    (``version``), each with a ``requestContext``. Authorizer and VPC Lattice events also look like this: the rows
    before this one take them."""
    return isinstance(event.get("requestContext"), dict) and (
        "elb" in event["requestContext"] or "resource" in event or "version" in event
    )


def _eventbridge(source: str | None = None, detail_type: str | None = None) -> Shape:
    def matches(event: dict[str, Any]) -> bool:
        if "detail-type" not in event or "source" not in event:
            return False
        return source in (None, event["source"]) and detail_type in (None, event["detail-type"])

    return matches


def _is_appsync(event: Any) -> bool:
    return isinstance(event, dict) and "arguments" in event and ("info" in event or "fieldName" in event)


SOURCES: tuple[Source, ...] = (
    Source("s3", "S3 event notification", _record_source("aws:s3")),
    Source("sqs", "SQS messages carrying S3 notifications", _record_source("aws:sqs")),
    Source("sns", "SNS notification", _record_source("aws:sns")),
    Source("dynamodb", "DynamoDB stream records", _record_source("aws:dynamodb")),
    Source("kinesis", "Kinesis stream records", _record_source("aws:kinesis")),
    Source("ses", "SES email receipt", _record_source("aws:ses")),
    Source("codecommit", "CodeCommit trigger", _first_record_has("codecommit")),
    Source("lambda-edge", "CloudFront Lambda@Edge request", _first_record_has("cf")),
    Source("apigw-authorizer", "API Gateway Lambda authorizer request", _is_authorizer),
    Source("vpc-lattice", "VPC Lattice request", _is_vpc_lattice),
    Source("http", "HTTP request (API Gateway REST or HTTP API, Function URL, ALB)", _is_http),
    Source("s3-batch", "S3 Batch Operations job", _has("invocationSchemaVersion", "tasks")),
    Source("s3-object-lambda", "S3 Object Lambda request", _has("getObjectContext")),
    Source("eventbridge-s3", "S3 notification via EventBridge", _eventbridge(source="aws.s3")),
    Source("schedule", "EventBridge scheduled event", _eventbridge("aws.events", "Scheduled Event")),
    Source("eventbridge", "EventBridge event", _eventbridge()),
    Source("cloudwatch-alarm", "CloudWatch alarm action", _has("alarmData")),
    Source("cloudwatch-logs", "CloudWatch Logs subscription", _has("awslogs")),
    Source("firehose", "Kinesis Data Firehose transformation", _has("invocationId", "records")),
    Source("kafka", "Kafka records", lambda e: e.get("eventSource") in ("aws:kafka", "aws:SelfManagedKafka")),
    Source("mq", "Amazon MQ messages", lambda e: e.get("eventSource") in ("aws:amq", "aws:rmq")),
    Source("cognito", "Cognito trigger", lambda e: "userPoolId" in e or "identityPoolId" in e),
    Source("cloudformation", "CloudFormation custom resource request", _has("RequestType", "ResponseURL")),
    Source("codepipeline", "CodePipeline job", _has("CodePipeline.job")),
    Source("codedeploy", "CodeDeploy lifecycle hook", _has("LifecycleEventHookExecutionId")),
    Source("config", "AWS Config rule evaluation", _has("configRuleArn")),
    Source("secretsmanager", "Secrets Manager rotation", _has("SecretId", "Step")),
    Source("connect", "Amazon Connect contact flow", lambda e: e.get("Name") == "ContactFlowEvent"),
    Source("appsync", "AppSync resolver", _is_appsync),
    Source("bedrock-agent", "Bedrock agent action", _has("agent", "actionGroup")),
    Source("lex", "Lex bot", lambda e: "sessionState" in e or "currentIntent" in e),
    Source("alexa", "Alexa skill request", _has("session", "request", "context")),
    Source("workmail", "WorkMail email flow", _has("summaryVersion", "envelope")),
    Source("sagemaker-ground-truth", "SageMaker Ground Truth labeling", _has("labelingJobArn")),
)
_LABELS = {source.kind: source.label for source in SOURCES}


def event_kind(event: Any) -> str:
    """The short name of the source that sent ``event`` (any JSON value Lambda can be invoked with)."""
    if isinstance(event, list):  # AppSync batches resolver invocations into a list; nothing else sends one
        return "appsync" if event and all(_is_appsync(item) for item in event) else "unknown"
    if not isinstance(event, dict):
        return "unknown"
    return next((source.kind for source in SOURCES if source.matches(event)), "unknown")


def _shape(event: Any) -> str:
    if isinstance(event, dict):
        keys = [str(key) for key in event][:8]
        return f"top-level keys: {', '.join(keys) or 'none'}{', ...' if len(event) > 8 else ''}"
    json_types = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}
    return f"a JSON {json_types.get(type(event), type(event).__name__)}"


def refusal(kind: str, event: Any, handled: Iterable[str]) -> UnsupportedEvent:
    """The error for an event of ``kind`` that no route takes; ``handled``: the kinds that have one."""
    known = kind in _LABELS
    what = f"event source {kind} ({_LABELS[kind]})" if known else f"event of no known source ({_shape(event)})"
    accepted = "; ".join(_LABELS[k] for k in handled)
    return UnsupportedEvent(f"{what} is not wired to this function; it handles: {accepted}", source=kind)
