"""The signed requests of docs/deploy.md, run as written: curl's SigV4 signature (``--aws-sigv4``, for the services
``execute-api`` and ``lambda``) checked the way API Gateway's IAM authorization and an ``AWS_IAM`` function URL check
it, then the function reads the S3 reference for the caller the event names.

The gateway here is a small HTTP server on 127.0.0.1: it recomputes AWS4-HMAC-SHA256 over the canonical request with
the caller's secret (and session token), refuses what does not match with 403 as API Gateway does, and hands a
valid request to the real Lambda entry as an HTTP API or function URL event (payload 2.0) whose
``requestContext.authorizer.iam`` names the caller. The document's ``aws`` commands that need an account
(``cloudformation describe-stacks``, ``configure``) answer for the test stack; ``aws s3`` goes to the suite's S3.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.server
import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from support import LambdaContext, api_event, encode, response_body, scene
from support.doc_commands import blocks
from support.http_servers import serving

KEY, SECRET, SESSION_TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzEXAMPLE//token"
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r" ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?Signature=(?P<signature>[0-9a-f]{64})"
)
EVENT_KINDS = {"execute-api": "v2", "lambda": "function-url"}  # what each service's URL sends the function


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def verified_caller(method: str, target: str, headers: dict[str, str], body: bytes) -> str | None:
    """The service a request is validly signed for by KEY (AWS Signature Version 4), or None."""
    match = _AUTHORIZATION.fullmatch(headers.get("authorization", ""))
    if not match or match["key"] != KEY or match["service"] not in EVENT_KINDS:
        return None
    signed = match["signed"].split(";")
    if not {"host", "x-amz-date"} <= set(signed) or any(name not in headers for name in signed):
        return None
    if headers.get("x-amz-security-token", SESSION_TOKEN) != SESSION_TOKEN or (
        "x-amz-security-token" in headers and "x-amz-security-token" not in signed
    ):
        return None
    stamp = datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if abs((datetime.now(UTC) - stamp).total_seconds()) > 300 or match["date"] != headers["x-amz-date"][:8]:
        return None
    url = urlsplit(target)
    canonical = "\n".join(
        [
            method,
            quote(url.path, safe="/~"),
            url.query,
            "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in signed),
            match["signed"],
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{match['date']}/{match['region']}/{match['service']}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", headers["x-amz-date"], scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    signing_key = _hmac(
        _hmac(_hmac(_hmac(f"AWS4{SECRET}".encode(), match["date"]), match["region"]), match["service"]), "aws4_request"
    )
    expected = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    return match["service"] if hmac.compare_digest(expected, match["signature"]) else None


@pytest.fixture
def gateway(entry):
    """The IAM-authorizing gateway in front of the Lambda entry: (URL, the services of the requests it passed)."""
    passed: list[str] = []

    class Gateway(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {name.lower(): value for name, value in self.headers.items()}
            service = verified_caller("POST", self.path, headers, body)
            if service is None:
                return self._answer(403, {"content-type": "application/json"}, b'{"message":"Forbidden"}')
            passed.append(service)
            event = api_event(EVENT_KINDS[service], "POST", self.path, body, headers.get("content-type"), caller="iam")
            event["requestContext"]["authorizer"]["iam"]["accessKey"] = KEY
            reply = entry.lambda_handler(event, LambdaContext())
            self._answer(reply["statusCode"], reply.get("headers") or {}, response_body(reply))

        def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in ("content-length", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    def serve() -> None:  # one thread, with the event loop Mangum runs the app on (Lambda's main thread has one)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            server.serve_forever()
        finally:
            loop.close()

    server = http.server.HTTPServer(("127.0.0.1", 0), Gateway)
    with serving(server, serve) as url:
        yield url, passed


def account_stubs(gateway_url: str, input_bucket: str, s3_endpoint: str, session_token: str) -> str:
    """Bash functions answering the document's account commands for the test stack."""
    credentials = f"export AWS_ACCESS_KEY_ID={KEY}\\nexport AWS_SECRET_ACCESS_KEY={SECRET}\\n"
    if session_token:
        credentials += f"export AWS_SESSION_TOKEN={session_token}\\n"
    return f"""
aws() {{
  case "$1 $2" in
    "cloudformation describe-stacks")
      case "$*" in
        *AuthenticatedApiUrl*|*FunctionUrl*) echo "{gateway_url}/" ;;
        *InputBucketName*) echo "{input_bucket}" ;;
        *) return 1 ;;
      esac ;;
    "configure get") echo us-east-1 ;;
    "configure export-credentials") printf '{credentials}' ;;
    *) AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing command aws --endpoint-url "{s3_endpoint}" "$@" ;;
  esac
}}
"""


def signed_block() -> str:
    (block,) = [b for b in blocks("aws") if b.path == "docs/deploy.md" and "--aws-sigv4" in b.text]
    return block.text


@pytest.mark.parametrize("session_token", ["", SESSION_TOKEN], ids=["long-term key", "session credentials"])
def test_the_documented_signed_requests_read_the_s3_reference(
    session_token, gateway, s3_endpoint, input_bucket, tmp_path
):
    url, passed = gateway
    Path(tmp_path / "photo.jpg").write_bytes(encode(scene(120, 90, seed=51)))
    script = "set -euo pipefail\n" + account_stubs(url, input_bucket, s3_endpoint, session_token) + signed_block()
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert passed == ["execute-api", "lambda"]  # both signatures verified
    for name in ("s3-depth.json", "s3-depth-url.json"):
        result = json.loads((tmp_path / name).read_text())
        assert (result["width"], result["height"]) == (120, 90) and result["heatmap_s3"]["url"]


def test_a_wrong_secret_or_no_signature_never_reaches_the_function(gateway, input_bucket):
    url, passed = gateway
    payload = json.dumps({"s3": f"s3://{input_bucket}/uploads/photo.jpg"})
    for auth in (["--aws-sigv4", "aws:amz:us-east-1:execute-api", "--user", f"{KEY}:not-the-secret"], []):
        done = subprocess.run(
            ["curl", "-sS", *auth, "-H", "Content-Type: application/json", "-d", payload, f"{url}/depth"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert json.loads(done.stdout) == {"message": "Forbidden"}
    assert passed == []
