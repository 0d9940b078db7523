"""`make serve`: the whole function on one machine — the API and web page, an S3 emulator and its upload trigger.

What scripts/serve_local.py runs; that file says how to use it.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from localdev.events import sqs_event
from localdev.function import LambdaContext, function_env
from localdev.s3_emulator import CREDENTIALS, start_moto

ROOT = Path(__file__).resolve().parents[1]
INPUT_BUCKET = "midas-input"
OUTPUT_BUCKET = "midas-output"
UPLOAD_PREFIX = "uploads/"
QUEUE = "midas-uploads"
DEFAULT_PORT = 8000
DEFAULT_S3_PORT = 9000
MAX_RECEIVES = 3  # like the template's QueueMaxReceiveCount: then the message leaves the queue
VISIBILITY_TIMEOUT = 10  # seconds before a failed message is delivered again


class PortTaken(Exception):
    """A port the stack needs is in use (another `make serve`, or anything else)."""


def check_free(port: int, variable: str) -> None:
    """Fail before the model loads if 127.0.0.1:port cannot be bound (moto's server would wait for it forever)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no obstacle
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortTaken(
                f"127.0.0.1:{port} is in use ({exc.strerror}): stop what runs there (another make serve?) "
                f"or choose another port: make serve {variable}=..."
            ) from None


def ensure_model(model_dir: Path) -> None:
    """Bake ``model_dir`` if it holds no model; on failure exit with the bake's own one-line error."""
    if (model_dir / "manifest.json").is_file():
        return
    from bake import cli as bake_cli

    args = ["--output", str(model_dir)]
    if os.environ.get("BAKE_CHECKPOINT"):
        args += ["--checkpoint", os.environ["BAKE_CHECKPOINT"]]
    if os.environ.get("BAKE_SHA256"):
        args += ["--sha256", os.environ["BAKE_SHA256"]]
    print(f"no baked model in {model_dir}: baking it first", file=sys.stderr)
    if bake_cli.main(args) != 0:
        sys.exit(1)


def wire_trigger(s3, sqs, bucket: str, queue: str, visibility_timeout: int = VISIBILITY_TIMEOUT) -> str:
    """The deployed queue mode: ``bucket`` notifies a new SQS queue of uploads under uploads/; returns its URL."""
    queue_url = sqs.create_queue(QueueName=queue, Attributes={"VisibilityTimeout": str(visibility_timeout)})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = {"Key": {"FilterRules": [{"Name": "prefix", "Value": UPLOAD_PREFIX}]}}
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"], "Filter": rule}]
        },
    )
    return queue_url


def start_s3(port: int) -> tuple[str, str]:
    """The emulator, both buckets and the input bucket's trigger; sets AWS_ENDPOINT_URL; returns (endpoint, queue)."""
    import boto3

    for name, value in CREDENTIALS.items():
        os.environ.setdefault(name, value)
    _, endpoint = start_moto(port)
    os.environ["AWS_ENDPOINT_URL"] = endpoint  # the function's own S3 client (the API's s3:// references) too
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    for bucket in (INPUT_BUCKET, OUTPUT_BUCKET):
        s3.create_bucket(Bucket=bucket)
    return endpoint, wire_trigger(s3, sqs, INPUT_BUCKET, QUEUE)


def poll_uploads(
    sqs,
    queue_url: str,
    handler: Callable[[dict, object], dict],
    stop: threading.Event,
    max_receives: int = MAX_RECEIVES,
) -> None:
    """Drain the upload queue into the Lambda entry, as Lambda's SQS event source mapping does: a message the
    function reports in batchItemFailures (or every message of a batch that raised) stays for redelivery after the
    visibility timeout, and is dropped with an error log on its ``max_receives``-th failed delivery (the DLQ)."""
    from handler.logs import logger

    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    while not stop.is_set():
        try:
            reply = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
            )
        except Exception as exc:  # the emulator going away at shutdown, or a hiccup: try again
            if not stop.is_set():
                logger.warning("upload queue unreachable", extra={"reason": str(exc)})
                time.sleep(1)
            continue
        messages = reply.get("Messages", [])
        if not messages:
            continue
        try:
            answer = handler(sqs_event(messages, arn, sqs.meta.region_name), LambdaContext())
            failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
        except Exception:
            logger.exception("the function failed on an upload batch")
            failed = {m["MessageId"] for m in messages}
        for message in messages:
            receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            if message["MessageId"] in failed and receives < max_receives:
                continue  # visible again after the visibility timeout
            if message["MessageId"] in failed:
                logger.error(
                    "upload dropped after retries", extra={"receives": receives, "body": message["Body"][:500]}
                )
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def banner(url: str, endpoint: str, s3_port: int) -> str:
    """What `make serve` prints once everything runs: where to go, and how to upload and fetch."""
    from handler.config import DEFAULT_OUTPUT_PREFIX
    from handler.s3_outputs import output_key

    env = " ".join(f"{name}={value}" for name, value in CREDENTIALS.items())
    heatmap = output_key(DEFAULT_OUTPUT_PREFIX, f"{UPLOAD_PREFIX}<name>.jpg", "heatmap")
    photo_heatmap = output_key(DEFAULT_OUTPUT_PREFIX, f"{UPLOAD_PREFIX}photo.jpg", "heatmap")
    aws = f"{env} \\\n    aws --endpoint-url {endpoint} s3"
    port_arg = "" if s3_port == DEFAULT_S3_PORT else f" S3_PORT={s3_port}"
    return (
        f"\nMiDaS depth API  {url}/   (API docs: {url}/docs)\n"
        f"S3 emulator      {endpoint}   buckets {INPUT_BUCKET} (input), {OUTPUT_BUCKET} (output)\n"
        f"Upload trigger   s3://{INPUT_BUCKET}/{UPLOAD_PREFIX}<name>.jpg -> s3://{OUTPUT_BUCKET}/{heatmap}"
        f"   (queue {QUEUE}, {MAX_RECEIVES} tries)\n"
        f"\nThe API:\n"
        f"  curl -F image=@photo.jpg {url}/predict\n"
        f"  curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg' {url}/depth -o depth.png\n"
        f"The upload trigger (waits for the heatmap, saves it as out/photo.jpg.png):\n"
        f'  make upload IMAGE="photo.jpg"{port_arg}\n'
        f"Any S3 client (endpoint {endpoint}, any credentials), e.g. the AWS CLI:\n"
        f"  {aws} cp photo.jpg s3://{INPUT_BUCKET}/{UPLOAD_PREFIX}\n"
        f"  {aws} cp s3://{OUTPUT_BUCKET}/{photo_heatmap} .   # a second or so later\n"
    )


def main() -> None:
    import uvicorn

    port = int(os.environ.get("PORT") or DEFAULT_PORT)
    s3_port = int(os.environ.get("S3_PORT") or DEFAULT_S3_PORT)
    try:
        check_free(port, "PORT")
        check_free(s3_port, "S3_PORT")
    except PortTaken as exc:
        sys.exit(f"serve_local: error: {exc}")
    model_dir = Path(os.environ.get("MODEL_DIR") or ROOT / "layer" / "model")
    ensure_model(model_dir)
    endpoint, queue_url = start_s3(s3_port)
    # CloudWatch's embedded metrics are raw JSON on stdout, read by nobody locally: they would drown the log.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    # The API serves 127.0.0.1 only, to the user who started it: their requests count as authenticated, so that
    # S3 references work as they do for a signed caller of the deployed API (docs/api.md#authentication).
    os.environ.update(
        function_env(
            model_dir=model_dir,
            output_bucket=OUTPUT_BUCKET,
            input_buckets=INPUT_BUCKET,
            UPLOAD_PREFIX=UPLOAD_PREFIX,
            TRUST_LOOPBACK_CALLERS="true",
        )
    )
    import boto3

    from handler import entry  # the Lambda entry: model loaded once, as in a container
    from localdev.http_invocations import AsLambdaInvocations

    stop = threading.Event()
    poller = threading.Thread(
        target=poll_uploads, args=(boto3.client("sqs"), queue_url, entry.lambda_handler, stop), daemon=True
    )
    poller.start()
    url = f"http://127.0.0.1:{port}"
    print(banner(url, endpoint, s3_port), flush=True)
    try:
        uvicorn.run(AsLambdaInvocations(entry.http_app()), host="127.0.0.1", port=port, log_level="warning")
    finally:
        stop.set()
        poller.join(timeout=5)
