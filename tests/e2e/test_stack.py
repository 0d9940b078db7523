"""The stack itself, emulated: the template as `sam build` writes it, deployed into LocalStack community, with every
event path driven through the deployed resources only (S3, EventBridge, SQS, Lambda, CloudFormation and CloudWatch
Logs of the emulator; the function is never called in-process).

- `make stack`, the docs' block as it is, runs in a copy of the checkout holding the suite's test bake, on a free
  port, with point clouds on and no asynchronous retries (LocalStack waits a minute, then two, between retries); a
  second stack in queue mode is created in the same LocalStack through the CloudFormation API.
- The docs' other `stack` blocks run against it, in document order, as a reader runs them.
- Ctrl-C, last: SIGINT to `make stack`'s process group, as a terminal sends it; then no stack, LocalStack process,
  container or state directory may be left.

Uploads are real photographs (scikit-image's sample images). Skipped, with the reason, only where no Docker engine
answers.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image

from localdev.lambda_container import build_context, docker
from localdev.stack import client, delete, deploy
from support import ROOT, batch_event, doc_commands, free_port, multipart

pytestmark = pytest.mark.image

STACK = "midas-depth"  # make stack's stack
QUEUE_STACK = "midas-queue"
# The upload function with memory of its own, so that each function's size is seen to be its own.
DIRECT = {"WritePointCloud": "ply", "AsyncMaxRetryAttempts": "0", "UploadMemorySize": "2560"}
# One delivery, then the dead-letter queue; the shortest visibility timeout the template allows, and an upload timeout
# within it (Lambda refuses a queue whose visibility timeout is below the function's timeout); a batching window long
# enough for a few uploads to share one batch.
QUEUE = {
    "NamePrefix": QUEUE_STACK,
    "IngestMode": "queue",
    "QueueMaxReceiveCount": "1",
    "QueueVisibilityTimeout": "30",
    "UploadTimeout": "30",
    "QueueBatchingWindowSeconds": "3",
}
DOC_ENDPOINT = "http://127.0.0.1:4599"
READY_SECONDS = 900  # a first build installs the image's dependencies
WAIT_SECONDS = 60

BLOCKS = doc_commands.blocks("stack")
LAUNCHERS = [b for b in BLOCKS if [w[:2] for w in doc_commands.commands(b.text)] == [["make", "stack"]]]
TRIES = [b for b in BLOCKS if b not in LAUNCHERS]


def photo(name: str) -> bytes:
    """A real photograph shipped with scikit-image (``skimage.data.<name>``), as a JPEG."""
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(getattr(data, name)()).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


def jpeg_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def eventually(check, what: str, seconds: float = WAIT_SECONDS) -> Any:  # noqa: ANN001
    """``check()``'s first truthy answer, polled; fails naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.5)


# ------------------------------------------------------------------------------------------------ make stack


@dataclass
class Run:
    """`make stack`, running: its process (group), what it printed, and what it said about itself."""

    process: subprocess.Popen
    checkout: Path
    port: int
    lines: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def said(self, pattern: str) -> re.Match:
        match = re.search(pattern, self.output)
        assert match, f"make stack never printed /{pattern}/:\n{self.output[-3000:]}"
        return match

    def aws(self, service: str) -> Any:
        return client(self.endpoint, service)

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT to the whole process group (make, and the script it runs)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=180)


@pytest.fixture(scope="module")
def checkout(docker_engine, baked_model_dir, tmp_path_factory) -> Path:
    """The repository's tracked files with the test bake as layer/model/, and a photograph as photo.jpg."""
    folder = build_context(tmp_path_factory.mktemp("stack"), baked_model_dir)
    (folder / "photo.jpg").write_bytes(photo("astronaut"))
    return folder


@pytest.fixture(scope="module")
def stack(checkout) -> Run:
    """The docs' `make stack` block, run in the copy (the checkout's venvs, a free port) until it is ready."""
    assert len(LAUNCHERS) == 1, "one `stack` block of the docs is just `make stack`"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MAKE", "MFLAGS"))}
    env.update(
        VENV=str(ROOT / ".venv"),
        TOOLS_VENV=str(ROOT / ".venv-tools"),
        LOCALSTACK_VENV=str(ROOT / ".venv-localstack"),
        STACK_PORT=str(port),
        STACK_PARAMETERS=" ".join(f"{k}={v}" for k, v in DIRECT.items()),
    )
    script = "set -euo pipefail\n" + LAUNCHERS[0].text
    # As a terminal starts it: SIGINT at its default action (a test run in a background job inherits it ignored).
    as_in_a_terminal = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "os.execvp('bash', ['bash', *sys.argv[1:]])"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", as_in_a_terminal, "-c", script],
        cwd=checkout,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    run = Run(process, checkout, port)

    def read() -> None:
        for line in process.stdout:
            run.lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        eventually(
            lambda: any(line.startswith("Ready.") for line in run.lines) or process.poll() is not None,
            "make stack ready",
            READY_SECONDS,
        )
        assert process.poll() is None, f"make stack ended ({process.returncode}):\n{run.output[-5000:]}"
        yield run
    finally:
        run.interrupt()
        reader.join()
        process.stdout.close()


def outputs_of(run: Run, name: str) -> dict[str, str]:
    stack = run.aws("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in stack["Outputs"]}


@pytest.fixture(scope="module")
def direct(stack) -> dict[str, str]:
    return outputs_of(stack, STACK)


@dataclass
class QueueStack:
    outputs: dict[str, str]
    good: dict[str, tuple[int, int]]  # key -> photo size
    bad: str  # an upload that can never succeed: recorded under failures/, not retried
    stray: str  # the "note" of a message that is no notification: it fails every receive


@pytest.fixture(scope="module")
def queue(stack) -> QueueStack:
    """A queue-mode stack from the same built template, with one batch of uploads: two photos and one upload that
    can never succeed, and a message that is no notification at all. The event source mapping is paused until the
    ingest queue holds all four, so that one batch holds them whatever the timing of EventBridge's deliveries (a
    receive waits at most the batching window, then returns what it has)."""
    template = (stack.checkout / ".aws-sam" / "build" / "template.yaml").read_text()
    outputs = deploy(stack.aws("cloudformation"), QUEUE_STACK, template, QUEUE)
    s3, sqs, lambda_ = stack.aws("s3"), stack.aws("sqs"), stack.aws("lambda")
    (mapping,) = lambda_.list_event_source_mappings(FunctionName=outputs["UploadFunctionName"])["EventSourceMappings"]
    assert (mapping["BatchSize"], mapping["FunctionResponseTypes"]) == (10, ["ReportBatchItemFailures"]), mapping
    paused = lambda_.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    eventually(
        lambda: lambda_.get_event_source_mapping(UUID=paused["UUID"])["State"] == "Disabled", "the mapping paused"
    )
    # A receive the mapping started before the pause still takes what arrives within its wait: let it end empty.
    time.sleep(int(QUEUE["QueueBatchingWindowSeconds"]) + 2)
    good = {}
    for name in ("coffee", "chelsea"):
        body = photo(name)
        key = f"uploads/batch/{name}.jpg"
        s3.put_object(Bucket=outputs["InputBucketName"], Key=key, Body=body)
        good[key] = jpeg_size(body)
    bad = "uploads/batch/never.jpg"
    s3.put_object(Bucket=outputs["InputBucketName"], Key=bad, Body=b"these bytes are no image")
    stray = uuid.uuid4().hex
    sqs.send_message(QueueUrl=outputs["IngestQueueUrl"], MessageBody=json.dumps({"note": stray}))

    def queued() -> bool:
        attributes = sqs.get_queue_attributes(QueueUrl=outputs["IngestQueueUrl"], AttributeNames=["All"])["Attributes"]
        counts = attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]
        return counts == ("4", "0")  # all four waiting, none taken

    eventually(queued, "the three uploads and the stray message in the ingest queue")
    lambda_.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)
    return QueueStack(outputs, good, bad, stray)


# ------------------------------------------------------------------------------------------------ helpers


def get(s3: Any, bucket: str, key: str) -> dict | None:
    try:
        return s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        return None


def wait_for_object(s3: Any, bucket: str, key: str) -> dict:
    return eventually(lambda: get(s3, bucket, key), f"s3://{bucket}/{key}")


def function_log(run: Run, function: str) -> list[dict]:
    """The function's JSON log lines, as the Lambda init handed them to LocalStack's CloudWatch Logs."""
    logs = run.aws("logs")
    lines = []
    try:
        for page in logs.get_paginator("filter_log_events").paginate(logGroupName=f"/aws/lambda/{function}"):
            for event in page["events"]:
                for line in event["message"].splitlines():
                    if line.strip().startswith("{"):
                        lines.append(json.loads(line))
    except logs.exceptions.ResourceNotFoundException:
        return []
    return lines


def messages(sqs: Any, queue_url: str) -> list[dict]:
    reply = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return [json.loads(message["Body"]) for message in reply.get("Messages", [])]


def function_url(run: Run, url: str, method: str = "GET", body: bytes | None = None, **headers: str):
    """A call to the function URL: LocalStack routes it by its host name (<id>.lambda-url.<region>.localhost:<port>,
    which curl resolves to this machine and Python does not), so connect to 127.0.0.1 and send that name."""
    parsed = urlsplit(url)
    connection = http.client.HTTPConnection("127.0.0.1", run.port, timeout=120)
    try:
        connection.request(method, parsed.path or "/", body=body, headers={"Host": parsed.netloc, **headers})
        reply = connection.getresponse()
        return reply.status, reply.getheader("Content-Type", ""), reply.read()
    finally:
        connection.close()


# ------------------------------------------------------------------------------------------------ queue mode
# First, so that the dead-letter queue's wait (the visibility timeout) overlaps the direct-mode tests.


def test_queue_mode_does_the_good_messages_of_a_batch_with_a_bad_one(stack, queue):
    s3 = stack.aws("s3")
    for key, size in queue.good.items():
        heatmap = wait_for_object(s3, queue.outputs["OutputBucketName"], f"depth/{key}.png")
        assert png_size(heatmap["Body"].read()) == size

    def settled() -> list[dict]:  # the heatmaps land before the invocation's log lines reach CloudWatch Logs
        log = function_log(stack, queue.outputs["UploadFunctionName"])
        done = {line.get("key") for line in log if line.get("message") == "heatmap written"}
        stray = any(line.get("message") == "SQS message failed" for line in log)
        return log if set(queue.good) <= done and stray else []

    log = eventually(settled, "the batch's log lines: every good upload written, the stray message failed")
    written = {line["key"]: line["function_request_id"] for line in log if line.get("message") == "heatmap written"}
    refused = [line for line in log if line.get("message") == "object refused for good: recorded, not retried"]
    failed = [line for line in log if line.get("message") == "SQS message failed"]
    assert set(queue.good) <= set(written)
    # one invocation (one batch) settled all four: the broken upload recorded once, the stray message failed alone
    assert [line["key"] for line in refused] == [queue.bad]
    assert len(failed) >= 1 and {written[key] for key in queue.good} == {failed[0]["function_request_id"]}
    assert refused[0]["function_request_id"] == failed[0]["function_request_id"]
    assert "not an S3 notification" in failed[0]["reason"]
    output, source = queue.outputs["OutputBucketName"], queue.outputs["InputBucketName"]
    record = json.loads(wait_for_object(s3, output, f"depth/failures/{source}/{queue.bad}.json")["Body"].read())
    assert (record["key"], record["error"]) == (queue.bad, "invalid_image")


# ------------------------------------------------------------------------------------------------ direct mode


def test_an_upload_gets_its_heatmap_and_point_cloud_with_metadata(stack, direct, baked_model_dir):
    s3 = stack.aws("s3")
    key = "uploads/direct/astronaut.jpg"
    put = s3.put_object(Bucket=direct["InputBucketName"], Key=key, Body=photo("astronaut"))
    heatmap = wait_for_object(s3, direct["OutputBucketName"], f"depth/{key}.png")
    assert png_size(heatmap["Body"].read()) == (512, 512)
    manifest = json.loads((baked_model_dir / "manifest.json").read_text())
    assert heatmap["Metadata"]["source-bucket"] == direct["InputBucketName"]
    assert heatmap["Metadata"]["source-key"] == key
    assert heatmap["Metadata"]["source-etag"] == put["ETag"].strip('"')
    assert heatmap["Metadata"]["model-sha256"] == manifest["onnx_sha256"]
    cloud = wait_for_object(s3, direct["OutputBucketName"], f"depth/{key}.ply")["Body"].read()
    assert cloud.startswith(b"ply\nformat binary_little_endian 1.0\n")


def test_the_same_bytes_again_are_unchanged_not_rewritten(stack, direct):
    s3 = stack.aws("s3")
    key = "uploads/direct/again.jpg"
    body = photo("rocket")
    s3.put_object(Bucket=direct["InputBucketName"], Key=key, Body=body)
    first = wait_for_object(s3, direct["OutputBucketName"], f"depth/{key}.png")
    s3.put_object(Bucket=direct["InputBucketName"], Key=key, Body=body)

    def unchanged() -> list[dict]:
        log = function_log(stack, direct["UploadFunctionName"])
        return [line for line in log if line.get("key") == key and line.get("reason", "").startswith("unchanged")]

    eventually(unchanged, f"the function logs {key} as unchanged")
    again = s3.head_object(Bucket=direct["OutputBucketName"], Key=f"depth/{key}.png")
    assert (again["ETag"], again["LastModified"]) == (first["ETag"], first["LastModified"])


def test_an_upload_that_always_fails_is_recorded_once_and_not_retried(stack, direct):
    s3, key = stack.aws("s3"), f"uploads/direct/broken-{uuid.uuid4().hex[:8]}.jpg"
    s3.put_object(Bucket=direct["InputBucketName"], Key=key, Body=b"these bytes are no image")
    where = f"depth/failures/{direct['InputBucketName']}/{key}.json"
    record = json.loads(wait_for_object(s3, direct["OutputBucketName"], where)["Body"].read())
    assert (record["key"], record["error"]) == (key, "invalid_image")

    def refused() -> list[dict]:  # the record lands before the invocation's log lines reach CloudWatch Logs
        log = function_log(stack, direct["UploadFunctionName"])
        return [line for line in log if line.get("key") == key and line.get("message", "").startswith("object refused")]

    assert len(eventually(refused, f"the function logs {key} as refused")) == 1


def test_an_event_that_fails_ends_in_the_failure_queue(stack, direct):
    """The on-failure destination, with an event the function refuses (an SNS notification) invoked as SNS does."""
    note = uuid.uuid4().hex
    event = {"Records": [{"EventSource": "aws:sns", "Sns": {"MessageId": note, "Message": "{}"}}]}
    payload = json.dumps(event).encode()
    stack.aws("lambda").invoke(FunctionName=direct["UploadFunctionName"], InvocationType="Event", Payload=payload)
    sqs = stack.aws("sqs")

    def failure() -> list[dict]:
        found = messages(sqs, direct["AsyncFailureQueueUrl"])
        return [m for m in found if m["requestPayload"]["Records"][0].get("Sns", {}).get("MessageId") == note]

    (record,) = eventually(failure, "the refused event in AsyncFailureQueue")
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 1  # AsyncMaxRetryAttempts=0
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert "sns" in record["responsePayload"]["errorMessage"]


# ------------------------------------------------------------------------------------------------ function URL
# Payload format 2.0, the HTTP API's (which LocalStack community does not emulate).


def test_each_function_runs_with_its_own_memory_and_timeout(stack, direct):
    """MemorySize/Timeout size the API function, UploadMemorySize/UploadTimeout the upload function; the API function
    knows the upload function's memory and reports the trigger's caps at it."""
    lambda_ = stack.aws("lambda")
    api = lambda_.get_function_configuration(FunctionName=direct["ApiFunctionName"])
    uploads = lambda_.get_function_configuration(FunctionName=direct["UploadFunctionName"])
    assert (api["MemorySize"], api["Timeout"]) == (2048, 30)  # the defaults
    assert (uploads["MemorySize"], uploads["Timeout"]) == (int(DIRECT["UploadMemorySize"]), 120)
    assert api["Environment"]["Variables"]["UPLOAD_FUNCTION_MEMORY_SIZE"] == DIRECT["UploadMemorySize"]
    assert "UPLOAD_FUNCTION_MEMORY_SIZE" not in uploads["Environment"]["Variables"]
    status, _, body = function_url(stack, direct["FunctionUrl"] + "health")
    assert status == 200, body
    limits = json.loads(body)["limits"]
    assert (limits["memory_mb"], limits["upload_memory_mb"]) == (2048, int(DIRECT["UploadMemorySize"]))


def test_function_url_health_and_page(stack, direct):
    status, kind, body = function_url(stack, direct["FunctionUrl"] + "health")
    assert status == 200 and json.loads(body)["status"] == "ok" and json.loads(body)["model"] == "MiDaS_small"
    status, kind, body = function_url(stack, direct["FunctionUrl"])
    assert status == 200 and kind.startswith("text/html") and b"<html" in body.lower()


def test_function_url_raw_jpeg_and_base64_json_get_heatmaps(stack, direct):
    jpeg = photo("coffee")
    status, kind, body = function_url(
        stack, direct["FunctionUrl"] + "depth", "POST", jpeg, **{"Content-Type": "image/jpeg"}
    )
    assert (status, kind) == (200, "image/png") and png_size(body) == (600, 400)
    payload = json.dumps({"image": base64.b64encode(jpeg).decode(), "output": "inline"}).encode()
    status, _, body = function_url(
        stack, direct["FunctionUrl"] + "depth", "POST", payload, **{"Content-Type": "application/json"}
    )
    assert status == 200, body
    assert png_size(base64.b64decode(json.loads(body)["heatmap_png_base64"])) == (600, 400)


def test_function_url_multipart_predict_gives_a_presigned_url_that_downloads(stack, direct):
    body, content_type = multipart([("image", "chelsea.jpg", photo("chelsea"))])
    status, _, reply = function_url(
        stack, direct["FunctionUrl"] + "predict", "POST", body, **{"Content-Type": content_type}
    )
    assert status == 200, reply
    result = json.loads(reply)
    assert result["status"] == "success" and (result["width"], result["height"]) == (451, 300)
    with urllib.request.urlopen(result["depth_map_url"], timeout=30) as download:  # signed for LocalStack's S3
        assert png_size(download.read()) == (451, 300)


# ------------------------------------------------------------------------------------------------ backfill


def test_a_batch_operations_task_writes_its_heatmap(stack, direct):
    s3, bucket, output = stack.aws("s3"), direct["InputBucketName"], direct["OutputBucketName"]
    key = "uploads/backfill/rocket.jpg"
    s3.put_object(Bucket=bucket, Key=key, Body=photo("rocket"))
    for suffix in (".png", ".ply"):  # the upload's own outputs, removed: the task must write them again
        wait_for_object(s3, output, f"depth/{key}{suffix}")
        s3.delete_object(Bucket=output, Key=f"depth/{key}{suffix}")
    task = batch_event("2.0", bucket, [key])
    # FunctionArn: the function a Batch Operations job invokes (docs/backfill.md), the upload function
    reply = stack.aws("lambda").invoke(FunctionName=direct["FunctionArn"], Payload=json.dumps(task).encode())
    result = json.loads(reply["Payload"].read())
    assert "FunctionError" not in reply, result
    (outcome,) = result["results"]
    assert outcome["resultCode"] == "Succeeded" and outcome["resultString"].startswith("written:"), outcome
    assert png_size(s3.get_object(Bucket=output, Key=f"depth/{key}.png")["Body"].read()) == (640, 427)


# ------------------------------------------------------------------------------------------------ two pools


def test_uploads_land_while_the_api_function_is_saturated(stack, direct):
    """Public traffic cannot starve uploads: the API function's pool cut to one execution and flooded through the
    function URL while photos are uploaded; every upload gets its heatmap, from the upload function, with no failure
    record and nothing in the failure queue. LocalStack enforces reserved concurrency per function, as Lambda does
    (its CloudFormation leaves the template's pools out: make stack sets them)."""
    lambda_, s3, sqs = stack.aws("lambda"), stack.aws("s3"), stack.aws("sqs")
    api, uploads = direct["ApiFunctionName"], direct["UploadFunctionName"]
    assert api != uploads

    def pool(function: str) -> int | None:
        return lambda_.get_function_concurrency(FunctionName=function).get("ReservedConcurrentExecutions")

    assert (pool(api), pool(uploads)) == (10, 10)  # ReservedConcurrency, UploadReservedConcurrency: the defaults
    lambda_.put_function_concurrency(FunctionName=api, ReservedConcurrentExecutions=1)
    jpeg, answers, stop = photo("coffee"), [], threading.Event()

    def flood() -> None:
        while not stop.is_set():
            status, _, body = function_url(
                stack, direct["FunctionUrl"] + "depth", "POST", jpeg, **{"Content-Type": "image/jpeg"}
            )
            # Lambda answers a throttled function URL call 429; LocalStack 500 naming Lambda's throttling error
            throttled = status == 429 or (status == 500 and b'"TooManyRequestsException"' in body)
            answers.append("heatmap" if status == 200 else "throttled" if throttled else f"{status} {body[:200]!r}")

    senders = [threading.Thread(target=flood) for _ in range(6)]
    try:
        for sender in senders:
            sender.start()
        eventually(lambda: "throttled" in answers, "the API function throttled: its pool is full")
        keys = {f"uploads/pools/{name}-{uuid.uuid4().hex[:8]}.jpg": name for name in ("astronaut", "chelsea", "rocket")}
        for key, name in keys.items():
            s3.put_object(Bucket=direct["InputBucketName"], Key=key, Body=photo(name))
        for key, name in keys.items():
            heatmap = wait_for_object(s3, direct["OutputBucketName"], f"depth/{key}.png")
            assert png_size(heatmap["Body"].read()) == jpeg_size(photo(name))
        throttled_meanwhile = answers.count("throttled")
    finally:
        stop.set()
        for sender in senders:
            sender.join()
        lambda_.put_function_concurrency(FunctionName=api, ReservedConcurrentExecutions=10)
    assert throttled_meanwhile > 0 and set(answers) == {"heatmap", "throttled"}, set(answers)
    for key in keys:
        assert get(s3, direct["OutputBucketName"], f"depth/failures/{direct['InputBucketName']}/{key}.json") is None
    failed = [m for m in messages(sqs, direct["AsyncFailureQueueUrl"]) if any(k in json.dumps(m) for k in keys)]
    assert failed == []

    def written() -> set[str]:  # by the upload function: its log, not the API function's
        log = function_log(stack, uploads)
        return {line.get("key") for line in log if line.get("message") == "heatmap written"} & set(keys)

    assert eventually(lambda: written() == set(keys), "the upload function logs every upload written")
    assert not [line for line in function_log(stack, api) if line.get("key") in keys]


# ------------------------------------------------------------------------------------------------ the docs


@pytest.mark.parametrize("block", TRIES, ids=[b.id for b in TRIES])
def test_stack_doc_block_runs(block, stack, tmp_path):
    script = "set -euo pipefail\n" + block.text.replace(DOC_ENDPOINT, stack.endpoint)
    assert "4599" not in script.replace(stack.endpoint, ""), f"{block.id}: LocalStack is {DOC_ENDPOINT} in the docs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    before = {p: p.stat().st_mtime_ns for p in stack.checkout.glob("*.png")}
    done = subprocess.run(
        ["bash", "-c", script], cwd=stack.checkout, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{block.id}:\n{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    written = [p for p in stack.checkout.glob("*.png") if before.get(p) != p.stat().st_mtime_ns]
    for png in written:
        assert png_size(png.read_bytes()) == (512, 512), png.name  # photo.jpg's size


# ------------------------------------------------------------------------------------------------ the end


def test_queue_mode_dead_letters_the_message_that_never_succeeds(stack, queue):
    sqs = stack.aws("sqs")

    def dead() -> list[dict]:
        found = messages(sqs, queue.outputs["IngestDeadLetterQueueUrl"])
        return [m for m in found if isinstance(m, dict) and m.get("note") == queue.stray]

    # redriven when it is received again, once the visibility timeout (30 s) has passed
    (message,) = eventually(dead, "the stray message in the dead-letter queue", seconds=150)
    assert message == {"note": queue.stray}
    # the broken upload was settled on its first receive: it never reaches the dead-letter queue
    assert [m for m in messages(sqs, queue.outputs["IngestDeadLetterQueueUrl"]) if "detail" in m] == []
    good = messages(sqs, queue.outputs["IngestQueueUrl"])
    assert good == [], "the batch's good messages were deleted from the ingest queue"


def test_deleting_a_stack_removes_its_function_containers(stack, queue):
    prefix = stack.said(r"\((midas-stack-[0-9a-f]+)-lambda-\*\)")[1]
    function = queue.outputs["UploadFunctionName"].lower()

    def containers() -> list[str]:
        names = docker("ps", "--all", "--format", "{{.Names}}").stdout.split()
        return [name for name in names if name.startswith(f"{prefix}-lambda-{function}-")]

    assert containers(), "the queue stack's function ran in a container of this run"
    assert delete(stack.aws("cloudformation"), QUEUE_STACK) == "DELETE_COMPLETE"
    eventually(lambda: not containers(), "the deleted function's containers gone", seconds=30)


def test_ctrl_c_deletes_the_stack_and_leaves_nothing_behind(stack):
    localstack = stack.said(r"LocalStack on http://127\.0\.0\.1:\d+ \(pid (\d+), log (\S+)\)")
    prefix = stack.said(r"\((midas-stack-[0-9a-f]+)-lambda-\*\)")[1]
    pid, state = int(localstack[1]), Path(localstack[2]).parent
    assert state.is_dir()
    stack.interrupt()
    assert f"Deleting stack {STACK} ...\n  DELETE_COMPLETE" in stack.output, stack.output[-3000:]
    assert "LocalStack stopped" in stack.output
    names = docker("ps", "--all", "--format", "{{.Names}}").stdout.split()
    assert [name for name in names if name.startswith(prefix)] == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", stack.port)) != 0
    assert not state.exists()
