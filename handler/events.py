"""The shapes of AWS events, and the one table of the sources this function refuses, by name.

The sources it handles (``handler.sources``) recognise their own events with the shape helpers below; the entry
refuses any other event with :func:`refusal`, whose message names the source from :data:`UNSUPPORTED` (the first
row that matches; "unknown" when none does) and lists the sources the function handles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from handler.errors import UnsupportedEvent

if TYPE_CHECKING:
    from handler.sources import Source

Shape = Callable[[dict[str, Any]], bool]
UNKNOWN = "unknown"


def first_record(event: Any) -> dict[str, Any]:
    """``Records[0]`` of an event, or {} when it has none (or it is not an object)."""
    records = event.get("Records") if isinstance(event, dict) else None
    first = records[0] if isinstance(records, list) and records else None
    return first if isinstance(first, dict) else {}


def record_source(name: str) -> Shape:
    """``Records[0].eventSource`` (``EventSource`` for SNS) is ``name``: S3, SQS, SNS, DynamoDB, Kinesis, SES."""

    def matches(event: Any) -> bool:
        first = first_record(event)
        return name in (first.get("eventSource"), first.get("EventSource"))

    return matches


def eventbridge(source: str | None = None, detail_type: str | None = None) -> Shape:
    """An EventBridge event (``detail-type`` and ``source``), from ``source`` and of ``detail_type`` when given."""

    def matches(event: Any) -> bool:
        if not isinstance(event, dict) or "detail-type" not in event or "source" not in event:
            return False
        return source in (None, event["source"]) and detail_type in (None, event["detail-type"])

    return matches


def is_authorizer(event: dict[str, Any]) -> bool:
    return event.get("type") in ("TOKEN", "REQUEST") and ("methodArn" in event or "routeArn" in event)


def is_vpc_lattice(event: dict[str, Any]) -> bool:
    context = event.get("requestContext")
    return "raw_path" in event or (isinstance(context, dict) and "serviceNetworkArn" in context)  # versions 1 and 2


def _has(*keys: str) -> Shape:
    return lambda event: all(key in event for key in keys)


def _first_record_has(key: str) -> Shape:
    return lambda event: key in first_record(event)


def _is_appsync(event: Any) -> bool:
    return isinstance(event, dict) and "arguments" in event and ("info" in event or "fieldName" in event)


@dataclass(frozen=True)
class Unsupported:
    name: str
    label: str
    matches: Shape


# In this order: a row's shape may also fit an event that a row above it takes.
UNSUPPORTED: tuple[Unsupported, ...] = (
    Unsupported("sns", "SNS notification", record_source("aws:sns")),
    Unsupported("dynamodb", "DynamoDB stream records", record_source("aws:dynamodb")),
    Unsupported("kinesis", "Kinesis stream records", record_source("aws:kinesis")),
    Unsupported("ses", "SES email receipt", record_source("aws:ses")),
    Unsupported("codecommit", "CodeCommit trigger", _first_record_has("codecommit")),
    Unsupported("lambda-edge", "CloudFront Lambda@Edge request", _first_record_has("cf")),
    Unsupported("apigw-authorizer", "API Gateway Lambda authorizer request", is_authorizer),
    Unsupported("vpc-lattice", "VPC Lattice request", is_vpc_lattice),
    Unsupported("s3-object-lambda", "S3 Object Lambda request", _has("getObjectContext")),
    Unsupported("schedule", "EventBridge scheduled event", eventbridge("aws.events", "Scheduled Event")),
    Unsupported("eventbridge", "EventBridge event", eventbridge()),
    Unsupported("cloudwatch-alarm", "CloudWatch alarm action", _has("alarmData")),
    Unsupported("cloudwatch-logs", "CloudWatch Logs subscription", _has("awslogs")),
    Unsupported("firehose", "Kinesis Data Firehose transformation", _has("invocationId", "records")),
    Unsupported("kafka", "Kafka records", lambda e: e.get("eventSource") in ("aws:kafka", "aws:SelfManagedKafka")),
    Unsupported("mq", "Amazon MQ messages", lambda e: e.get("eventSource") in ("aws:amq", "aws:rmq")),
    Unsupported("cognito", "Cognito trigger", lambda e: "userPoolId" in e or "identityPoolId" in e),
    Unsupported("cloudformation", "CloudFormation custom resource request", _has("RequestType", "ResponseURL")),
    Unsupported("codepipeline", "CodePipeline job", _has("CodePipeline.job")),
    Unsupported("codedeploy", "CodeDeploy lifecycle hook", _has("LifecycleEventHookExecutionId")),
    Unsupported("config", "AWS Config rule evaluation", _has("configRuleArn")),
    Unsupported("secretsmanager", "Secrets Manager rotation", _has("SecretId", "Step")),
    Unsupported("connect", "Amazon Connect contact flow", lambda e: e.get("Name") == "ContactFlowEvent"),
    Unsupported("appsync", "AppSync resolver", _is_appsync),
    Unsupported("bedrock-agent", "Bedrock agent action", _has("agent", "actionGroup")),
    Unsupported("lex", "Lex bot", lambda e: "sessionState" in e or "currentIntent" in e),
    Unsupported("alexa", "Alexa skill request", _has("session", "request", "context")),
    Unsupported("workmail", "WorkMail email flow", _has("summaryVersion", "envelope")),
    Unsupported("sagemaker-ground-truth", "SageMaker Ground Truth labeling", _has("labelingJobArn")),
)
_LABELS = {row.name: row.label for row in UNSUPPORTED}


def unsupported_source(event: Any) -> str:
    """The name of the refused source that sent ``event`` (any JSON value Lambda can be invoked with), or
    "unknown"."""
    if isinstance(event, list):  # AppSync batches resolver invocations into a list; nothing else sends one
        return "appsync" if event and all(_is_appsync(item) for item in event) else UNKNOWN
    if not isinstance(event, dict):
        return UNKNOWN
    return next((row.name for row in UNSUPPORTED if row.matches(event)), UNKNOWN)


def _shape(event: Any) -> str:
    if isinstance(event, dict):
        keys = [str(key) for key in event][:8]
        return f"top-level keys: {', '.join(keys) or 'none'}{', ...' if len(event) > 8 else ''}"
    json_types = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}
    return f"a JSON {json_types.get(type(event), type(event).__name__)}"


def refusal(event: Any, handled: Iterable[Source]) -> UnsupportedEvent:
    """The error for an event that none of the ``handled`` sources takes: it names the event's source."""
    source = unsupported_source(event)
    what = (
        f"event source {source} ({_LABELS[source]})"
        if source in _LABELS
        else f"event of no known source ({_shape(event)})"
    )
    accepted = "; ".join(s.LABEL for s in handled)
    return UnsupportedEvent(f"{what} is not wired to this function; it handles: {accepted}", source=source)
