"""`make serve`: the whole function on one machine — the API and web page, an S3 emulator and its upload trigger.

- The API on 127.0.0.1:PORT (default 8000): the same FastAPI app the Lambda entry wraps.
- An S3 emulator (moto server) on 127.0.0.1:S3_PORT (default 9000) with the buckets midas-input and midas-output.
- The upload trigger wired as the deployed stack's queue mode: the input bucket notifies an SQS queue (the
  emulator's own bucket notifications) for objects under uploads/, and a poller hands each batch of messages to the
  Lambda entry (handler.entry.lambda_handler) as Lambda's SQS event source does: messages the function reports in
  batchItemFailures are retried (visibility timeout) and dropped, with a log line, after MAX_RECEIVES deliveries.

Bakes layer/model/ first if there is none (official URL, or BAKE_CHECKPOINT=path / BAKE_SHA256=hex).
Environment: PORT, S3_PORT, MODEL_DIR (default layer/model).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

INPUT_BUCKET = "midas-input"
OUTPUT_BUCKET = "midas-output"
UPLOAD_PREFIX = "uploads/"
QUEUE = "midas-uploads"
DEFAULT_S3_PORT = 9000
MAX_RECEIVES = 3  # like the template's QueueMaxReceiveCount: then the message leaves the queue
VISIBILITY_TIMEOUT = 10  # seconds before a failed message is delivered again


def ensure_model(model_dir: Path) -> None:
    if (model_dir / "manifest.json").is_file():
        return
    from scripts import bake_weights

    args = ["--output", str(model_dir)]
    if os.environ.get("BAKE_CHECKPOINT"):
        args += ["--checkpoint", os.environ["BAKE_CHECKPOINT"]]
    if os.environ.get("BAKE_SHA256"):
        args += ["--sha256", os.environ["BAKE_SHA256"]]
    print(f"no baked model in {model_dir}: baking it first", file=sys.stderr)
    if bake_weights.main(args) != 0:
        sys.exit(1)


def start_s3(port: int) -> tuple[str, str]:
    """The emulator with both buckets and the input bucket's notification to the queue; returns (endpoint, queue)."""
    import boto3
    from moto.server import ThreadedMotoServer

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    endpoint = f"http://{host}:{bound}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    for bucket in (INPUT_BUCKET, OUTPUT_BUCKET):
        s3.create_bucket(Bucket=bucket)
    queue_url = sqs.create_queue(QueueName=QUEUE, Attributes={"VisibilityTimeout": str(VISIBILITY_TIMEOUT)})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = {"Key": {"FilterRules": [{"Name": "prefix", "Value": UPLOAD_PREFIX}]}}
    s3.put_bucket_notification_configuration(
        Bucket=INPUT_BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"], "Filter": rule}]
        },
    )
    return endpoint, queue_url


def sqs_event(messages: list[dict], queue_arn: str) -> dict:
    """The event Lambda's SQS event source sends for these received messages."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": os.environ["AWS_DEFAULT_REGION"],
            }
            for m in messages
        ]
    }


def poll_uploads(queue_url: str, handler, stop: threading.Event) -> None:
    """Drain the upload queue into the Lambda entry, as Lambda's SQS event source mapping does."""
    import boto3

    from handler.logs import logger
    from scripts.local_s3_invoke import Context

    sqs = boto3.client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    while not stop.is_set():
        try:
            reply = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
            )
        except Exception as exc:  # the emulator going away at shutdown, or a hiccup: try again
            logger.warning("upload queue unreachable", extra={"reason": str(exc)})
            time.sleep(1)
            continue
        messages = reply.get("Messages", [])
        if not messages:
            continue
        event = sqs_event(messages, arn)
        try:
            failed = {f["itemIdentifier"] for f in handler(event, Context())["batchItemFailures"]}
        except Exception:
            logger.exception("the function failed on an upload batch")
            failed = {m["MessageId"] for m in messages}
        for message in messages:
            receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            if message["MessageId"] not in failed or receives >= MAX_RECEIVES:
                if message["MessageId"] in failed:
                    logger.error("upload dropped after retries", extra={"body": message["Body"][:500]})
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def main() -> None:
    import uvicorn

    model_dir = Path(os.environ.get("MODEL_DIR") or ROOT / "layer" / "model")
    ensure_model(model_dir)
    s3_port = int(os.environ.get("S3_PORT") or DEFAULT_S3_PORT)
    endpoint, queue_url = start_s3(s3_port)
    os.environ.update(MODEL_DIR=str(model_dir), OUTPUT_BUCKET=OUTPUT_BUCKET, ALLOWED_INPUT_BUCKETS=INPUT_BUCKET)
    from handler import entry  # the Lambda entry: model loaded once, as in a container

    stop = threading.Event()
    threading.Thread(target=poll_uploads, args=(queue_url, entry.lambda_handler, stop), daemon=True).start()
    port = int(os.environ.get("PORT", "8000"))
    url = f"http://127.0.0.1:{port}"
    credentials = "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1"
    print(
        f"\nMiDaS depth API: {url}/   (docs: {url}/docs)\n"
        f"S3 emulator:     {endpoint}  buckets {INPUT_BUCKET} (input), {OUTPUT_BUCKET} (output)\n"
        f"S3 trigger:      uploads under s3://{INPUT_BUCKET}/{UPLOAD_PREFIX} -> s3://{OUTPUT_BUCKET}/depth/"
        f"{UPLOAD_PREFIX}<name>.png\n"
        f"try:  curl -F image=@photo.jpg {url}/predict\n"
        f"      curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg' {url}/depth -o depth.png\n"
        f'      make upload IMAGE="photo.jpg"      (waits for the heatmap, saves it to out/)\n'
        f"      {credentials} aws --endpoint-url {endpoint} s3 cp photo.jpg s3://{INPUT_BUCKET}/{UPLOAD_PREFIX}\n",
        flush=True,
    )
    try:
        uvicorn.run(entry.app, host="127.0.0.1", port=port, log_level="warning")
    finally:
        stop.set()


if __name__ == "__main__":
    main()
