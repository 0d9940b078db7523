"""S3 references are an authenticated feature: ``POST /depth {"s3": ...}`` from an anonymous caller is refused with
403 ``authentication_required`` before any S3 call; an authenticated one (an IAM or JWT authorizer in the event's
``requestContext``, or the local user of ``make serve`` on 127.0.0.1) keeps the bucket and prefix rules.

The events are real payloads (Powertools' and SAM CLI's corpus, tests/events/third_party) turned into ``POST /depth``
requests; S3 is a server that counts the requests it gets (it answers every GET with a JPEG), or the suite's moto
server.
"""

from __future__ import annotations

import copy
import json

import pytest
from fastapi.testclient import TestClient
from mangum import Mangum

from handler.app import create_app
from handler.config import Settings
from handler.estimator import DepthEstimator
from handler.s3_store import S3Store
from support import Answer, assert_clean_error, b64, call, encode, load_event, response_body, scene

ANONYMOUS = {
    "function URL, AuthType NONE": "third_party/powertools/lambdaFunctionUrlEvent.json",
    "function URL, AuthType NONE, with headers": "third_party/powertools/lambdaFunctionUrlEventWithHeaders.json",
    "REST API": "third_party/powertools/apiGatewayProxyEvent.json",
    "REST API, Lambda authorizer": "third_party/powertools/apiGatewayProxyEventPrincipalId.json",
    "REST API (sam)": "third_party/sam-cli/apigateway-aws-proxy.json",
    "ALB": "third_party/powertools/albEvent.json",
}
AUTHENTICATED = {
    "HTTP API, IAM": "third_party/powertools/apiGatewayProxyV2IamEvent.json",
    "HTTP API, JWT": "third_party/powertools/apiGatewayProxyV2Event.json",
    "HTTP API, JWT and Lambda authorizer": "third_party/powertools/apiGatewayProxyV2LambdaAuthorizerEvent.json",
    "HTTP API, JWT (sam)": "third_party/sam-cli/apigateway-http-api-proxy.json",
    "function URL, AuthType AWS_IAM": "third_party/powertools/lambdaFunctionUrlIAMEvent.json",
}
# What a remote caller can put into a request, all of it claiming to be someone or somewhere it is not.
FORGED_HEADERS = {
    "authorization": "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20260101/us-east-1/execute-api/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
    "x-amz-date": "20260101T000000Z",
    "x-amzn-oidc-identity": "admin",
    "x-amzn-oidc-data": "e30.e30.",
    "x-forwarded-for": "127.0.0.1",
    "x-real-ip": "127.0.0.1",
    "forwarded": "for=127.0.0.1",
}


def depth_request(name: str, payload: dict, headers: dict[str, str] | None = None) -> dict:
    """A committed HTTP event (REST v1, HTTP API v2, function URL or ALB), made into POST /depth with a JSON body."""
    event = copy.deepcopy(load_event(name))
    wanted = {"content-type": "application/json", **(headers or {})}
    event["headers"] = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"} | wanted
    event.pop("multiValueHeaders", None)
    event.pop("multiValueQueryStringParameters", None)
    event["queryStringParameters"] = None if "httpMethod" in event else {}
    event.update(body=json.dumps(payload), isBase64Encoded=False)
    context = event["requestContext"]
    if "http" in context:  # payload 2.0
        event.update(rawPath="/depth", rawQueryString="")
        event.pop("cookies", None)
        context["http"].update(method="POST", path="/depth")
    else:
        event.update(httpMethod="POST", path="/depth")
        if "elb" not in context:
            context.update(httpMethod="POST", path=f"/{context.get('stage', 'prod')}/depth")
    return event


def answer_of(handler, event: dict, lambda_context) -> Answer:
    response = handler(event, lambda_context)
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    return Answer(response["statusCode"], headers, response_body(response))


@pytest.fixture
def counted(monkeypatch, canary, depth_model, baked_model_dir):
    """A deployment whose S3 endpoint counts requests: (settings, store, hits); ``midas-in`` is its input bucket."""
    url, hits = canary
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", url)
    settings = Settings(model_dir=str(baked_model_dir), allowed_input_buckets="midas-in", trust_loopback_callers=True)
    return DepthEstimator(settings, depth_model), S3Store(max_attempts=1), hits


@pytest.fixture
def lambda_app(counted):
    """The app as the Lambda entry runs it (Mangum), on the counting S3 endpoint: (handler, hits)."""
    estimator, store, hits = counted
    return Mangum(create_app(estimator, store), lifespan="off"), hits


REFS = ["s3://midas-in/uploads/a.jpg", {"bucket": "midas-in", "key": "uploads/a.jpg"}]


@pytest.mark.parametrize("source", list(ANONYMOUS))
def test_an_anonymous_s3_reference_is_403_before_any_s3_call(source, lambda_app, lambda_context):
    handler, hits = lambda_app
    for ref in [*REFS, "s3://someone-elses-bucket/uploads/a.jpg", "s3://midas-in/private/a.jpg"]:
        answer = answer_of(handler, depth_request(ANONYMOUS[source], {"s3": ref}), lambda_context)
        body = assert_clean_error(answer, 403, "authentication_required", "authenticated", "base64")
        assert "midas-in" not in body["message"] and "someone-elses-bucket" not in answer.body.decode()
    assert hits == []


@pytest.mark.parametrize("source", list(ANONYMOUS))
def test_nothing_a_caller_sends_makes_a_request_authenticated(source, lambda_app, lambda_context):
    """Signature-looking, OIDC and forwarding headers, and a loopback source address in a deployment that trusts
    local callers: a Lambda event's caller is who its requestContext's authorizer says, and nobody here."""
    handler, hits = lambda_app
    event = depth_request(ANONYMOUS[source], {"s3": REFS[0]}, FORGED_HEADERS)
    context = event["requestContext"]
    if "http" in context:
        context["http"]["sourceIp"] = "127.0.0.1"
    elif "identity" in context:
        context["identity"]["sourceIp"] = "127.0.0.1"
    assert_clean_error(answer_of(handler, event, lambda_context), 403, "authentication_required")
    assert hits == []


@pytest.mark.parametrize("source", list(AUTHENTICATED))
def test_an_authenticated_s3_reference_keeps_the_bucket_and_prefix_rules(source, lambda_app, lambda_context):
    handler, hits = lambda_app
    refused = {
        "s3://someone-elses-bucket/uploads/a.jpg": "bucket_not_allowed",
        "s3://midas-in/private/a.jpg": "key_not_allowed",
    }
    for ref, code in refused.items():
        answer = answer_of(
            handler, depth_request(AUTHENTICATED[source], {"s3": ref, "output": "inline"}), lambda_context
        )
        assert_clean_error(answer, 403, code)
    assert hits == []
    for ref in REFS:
        answer = answer_of(
            handler, depth_request(AUTHENTICATED[source], {"s3": ref, "output": "inline"}), lambda_context
        )
        assert answer.status == 200, answer.body[:300]
        assert answer.json()["width"] == 96  # the object the counting server holds
    assert len(hits) == 2 and all(hit.endswith("/uploads/a.jpg") for hit in hits)


def test_an_anonymous_caller_still_gets_depth_for_the_image_itself(lambda_app, lambda_context):
    handler, hits = lambda_app
    payload = {"image": b64(encode(scene(64, 48))), "output": "inline"}
    answer = answer_of(handler, depth_request(ANONYMOUS["function URL, AuthType NONE"], payload), lambda_context)
    assert answer.status == 200 and answer.json()["width"] == 64
    assert hits == []


@pytest.mark.parametrize(
    ("trusted", "client", "authenticated"),
    [
        (True, "127.0.0.1", True),
        (True, "::1", True),
        (True, "127.8.9.10", True),
        (True, "203.0.113.9", False),
        (True, "testclient", False),  # not an address
        (False, "127.0.0.1", False),
    ],
)
def test_a_local_server_trusts_loopback_callers_only_when_told(counted, trusted, client, authenticated):
    """Served directly (``make serve``: uvicorn on 127.0.0.1), the caller is the local user when the request comes
    from the loopback address and TRUST_LOOPBACK_CALLERS is set; forwarding headers change nothing."""
    estimator, store, hits = counted
    settings = estimator.settings.model_copy(update={"trust_loopback_callers": trusted})
    app = create_app(DepthEstimator(settings, estimator.model), store)
    response = TestClient(app, client=(client, 50000)).post(
        "/depth", json={"s3": REFS[0], "output": "inline"}, headers=FORGED_HEADERS
    )
    if authenticated:
        assert response.status_code == 200, response.text
        assert len(hits) == 1
    else:
        assert response.status_code == 403 and response.json()["error"] == "authentication_required"
        assert hits == []


def test_through_the_entry_with_real_s3(entry, lambda_context, s3, input_bucket):
    """The deployed shape end to end: the Lambda entry, the suite's S3 endpoint, a real upload."""
    key = "uploads/auth/photo.jpg"
    s3.put_object(Bucket=input_bucket, Key=key, Body=encode(scene(80, 60, seed=4)))
    payload = json.dumps({"s3": f"s3://{input_bucket}/{key}", "output": "inline"})
    for kind, caller in [("function-url", "iam"), ("v2", "iam"), ("v2", "jwt")]:
        answer = call(
            entry.lambda_handler, lambda_context, kind, "POST", "/depth", payload, "application/json", caller=caller
        )
        assert answer.status == 200 and answer.json()["width"] == 80, answer.body[:300]
    for kind, caller in [("function-url", None), ("v2", "anonymous"), ("v1", None)]:
        answer = call(
            entry.lambda_handler, lambda_context, kind, "POST", "/depth", payload, "application/json", caller=caller
        )
        assert_clean_error(answer, 403, "authentication_required")
