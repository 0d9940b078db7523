"""Lambda events as AWS sends them, built from committed payloads: the one place the local scripts and the tests
make their API Gateway, S3, SQS, EventBridge and S3 Batch Operations events.

The templates are real payloads: ``tests/events/`` (``sam local generate-event`` output; ``third_party/``: events
written by others, see its README.md) and ``events/`` (the ``sam local invoke`` payloads the docs show).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import urllib.parse
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, quote_plus

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "tests" / "events"
SAM_EVENTS = ROOT / "events"
# The HTTP event shapes the function answers: API Gateway REST (v1), HTTP API (v2), Function URL.
API_KINDS = ["v1", "v2", "function-url"]
BATCH_SCHEMAS = {"1.0": "s3BatchOperationEventSchemaV1.json", "2.0": "s3BatchOperationEventSchemaV2.json"}


def load_event(name: str) -> dict:
    """A committed event payload from tests/events/."""
    return json.loads((EVENTS / name).read_text())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ------------------------------------------------------------------------------------------------ HTTP


# ``requestContext.authorizer`` as AWS writes it after authenticating a caller: ``iam`` (SigV4) from a function URL
# with AuthType AWS_IAM (Powertools' event), ``jwt`` from an HTTP API JWT authorizer (sam's).
_AUTHORIZER_EVENTS = {"iam": "third_party/powertools/lambdaFunctionUrlIAMEvent.json", "jwt": "apigw-v2-http.json"}


def _authorizer(caller: str) -> dict:
    """The ``caller``'s authorizer, read from its one event file."""
    return load_event(_AUTHORIZER_EVENTS[caller])["requestContext"]["authorizer"]


def api_event(
    kind: str,
    method: str,
    path: str,
    body: bytes | str | None = None,
    content_type: str | None = None,
    query: str = "",
    *,
    caller: str | None = None,
) -> dict:
    """An API Gateway REST (v1), HTTP API (v2) or Function URL event built from the committed sam payloads. As
    committed, the v2 payload carries a JWT authorizer's claims and the others none; ``caller`` makes a v2 or
    Function URL event ``"iam"`` (SigV4), ``"jwt"`` or ``"anonymous"`` (no authorizer)."""
    headers = {"host": "abc123.execute-api.us-east-1.amazonaws.com", "user-agent": "pytest"}
    if content_type:
        headers["content-type"] = content_type
    raw = body.encode() if isinstance(body, str) else body
    encoded = base64.b64encode(raw).decode() if raw is not None else None
    if kind == "v1":
        event = load_event("apigw-v1-proxy.json")
        event.update(
            path=path,
            httpMethod=method,
            headers=headers,
            multiValueHeaders={k: [v] for k, v in headers.items()},
            queryStringParameters=dict(urllib.parse.parse_qsl(query)) or None,
            multiValueQueryStringParameters=None,
            pathParameters={"proxy": path.lstrip("/")},
            body=encoded,
            isBase64Encoded=raw is not None,
        )
        event["requestContext"].update(httpMethod=method, path=f"/prod{path}")
        return event
    event = load_event("apigw-v2-http.json")
    event.update(rawPath=path, rawQueryString=query, headers=headers, body=encoded, isBase64Encoded=raw is not None)
    event.pop("cookies", None)
    event.pop("queryStringParameters", None)
    if query:
        event["queryStringParameters"] = dict(urllib.parse.parse_qsl(query))
    event["requestContext"]["http"].update(method=method, path=path)
    if kind == "function-url":
        event["requestContext"].update(domainName="abc123.lambda-url.us-east-1.on.aws", domainPrefix="abc123")
        event["requestContext"].pop("stage", None)
        event["requestContext"].pop("authentication", None)
        event["requestContext"].pop("authorizer", None)
    if caller == "anonymous":
        event["requestContext"].pop("authorizer", None)
    elif caller is not None:
        event["requestContext"]["authorizer"] = _authorizer(caller)
    return event


def depth_event(jpeg: bytes) -> dict:
    """POST /depth with a raw JPEG body, as an HTTP API (v2) event (base64, as API Gateway sends it): the docs'
    events/api-depth-png.json with this image."""
    event = json.loads((SAM_EVENTS / "api-depth-png.json").read_text())
    event["headers"].update({"content-type": "image/jpeg", "content-length": str(len(jpeg))})
    event["body"] = base64.b64encode(jpeg).decode()
    return event


def response_body(response: dict) -> bytes:
    """The body of a Lambda proxy response, base64-decoded when flagged."""
    body = response.get("body") or ""
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()


def multipart(fields: list[tuple[str, str | None, bytes]], boundary: str = "soakboundary") -> tuple[bytes, str]:
    """(name, filename or None for a text field, content) parts → multipart/form-data body and its content type."""
    body = b""
    for name, filename, content in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# ------------------------------------------------------------------------------------------------ S3 and queues


def s3_event(bucket: str, *keys: str, event_name: str = "ObjectCreated:Put") -> dict:
    """The committed `sam local generate-event s3 put` payload, retargeted (keys encoded as AWS does)."""
    template = load_event("s3-put.json")["Records"][0]
    records = []
    for key in keys:
        record = copy.deepcopy(template)
        record["eventName"] = event_name
        record["s3"]["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
        record["s3"]["object"]["key"] = quote_plus(key, safe="/")
        records.append(record)
    return {"Records": records}


def s3_upload_event(bucket: str, key: str, size: int, etag: str, region: str) -> dict:
    """The notification S3 sends for a PUT: the docs' events/s3-put.json with this object (key form-encoded, as S3
    does), its time now."""
    event = json.loads((SAM_EVENTS / "s3-put.json").read_text())
    record = event["Records"][0]
    record["awsRegion"] = region
    record["eventTime"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    record["s3"]["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
    record["s3"]["object"].update(key=quote_plus(key, safe="/"), size=size, eTag=etag)
    record["s3"]["object"]["sequencer"] = hashlib.sha256(f"{bucket}/{key}/{etag}".encode()).hexdigest()[:18].upper()
    return event


def sqs_event(messages: list[dict], queue_arn: str | None = None, region: str | None = None) -> dict:
    """The event Lambda's SQS event source sends for these messages (as ReceiveMessage returns them): the committed
    record with each message's id, receipt handle and body, its attributes and MD5 where the receive returned them,
    and the queue's ARN and region where given."""
    template = load_event("sqs-receive.json")["Records"][0]
    records = []
    for message in messages:
        record = copy.deepcopy(template)
        record.update(messageId=message["MessageId"], receiptHandle=message["ReceiptHandle"], body=message["Body"])
        record["attributes"] = message.get("Attributes", record["attributes"])
        record["md5OfBody"] = message.get("MD5OfBody", record["md5OfBody"])
        record["eventSourceARN"] = queue_arn or record["eventSourceARN"]
        record["awsRegion"] = region or record["awsRegion"]
        records.append(record)
    return {"Records": records}


def eventbridge_event(bucket: str, key: str, detail_type: str = "Object Created") -> dict:
    """An EventBridge "Object Created" event of S3 (Powertools' fixture), for ``key`` as given (not encoded)."""
    event = load_event("third_party/powertools/s3EventBridgeNotificationObjectCreatedEvent.json")
    event["detail-type"] = detail_type
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"]["key"] = key
    event["detail"]["object"].pop("etag")
    return event


def batch_event(schema: str, bucket: str, keys: list[str]) -> dict:
    """The documented S3 Batch Operations event of ``schema`` with one task per key (keys URL-encoded, as in a CSV
    manifest)."""
    event = load_event(f"third_party/powertools/{BATCH_SCHEMAS[schema]}")
    template = event["tasks"][0]
    event["invocationId"] = uuid.uuid4().hex
    event["tasks"] = []
    for i, key in enumerate(keys):
        task = copy.deepcopy(template)
        task.update(taskId=f"task-{i}-{uuid.uuid4().hex[:6]}", s3Key=quote(key, safe="/"))
        if schema == "1.0":
            task["s3BucketArn"] = f"arn:aws:s3:::{bucket}"
        else:
            task["s3Bucket"] = bucket
        event["tasks"].append(task)
    return event
