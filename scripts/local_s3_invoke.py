"""`make invoke-s3 IMAGE=photo.jpg`: upload an image to the emulator's input bucket, run the function on the S3 event.

The emulator is the one ``AWS_ENDPOINT_URL`` points at (e.g. LocalStack on http://localhost:4566), or, when it is
unset, a moto server started for this run (its objects vanish on exit, so outputs are downloaded locally). The
event is what S3 sends for the upload (events/s3-put.json with this bucket, key, size and ETag; the key
URL-encoded as S3 encodes it), and the function is the real Lambda entry (handler.entry.lambda_handler).

    python scripts/local_s3_invoke.py IMAGE [--key uploads/name.jpg] [--download DIR] [--event-out FILE]

Prints where the heatmap went. ``--event-out`` saves the event for ``sam local invoke -e FILE``.

``--serve`` (`make upload IMAGE=photo.jpg`) runs nothing here: it uploads to the running `make serve` stack
(``AWS_ENDPOINT_URL``, else http://127.0.0.1:$S3_PORT, default 9000) under uploads/, waits up to 60 s for the
heatmap its trigger writes under depth/, and saves it to ``--download``.

Exit codes: 0 written, 1 the function failed (or no heatmap in time), 2 bad input, no model or no stack.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

EVENT_TEMPLATE = ROOT / "events" / "s3-put.json"
INPUT_BUCKET = "midas-local-input"  # the names events/ and events/env-localstack.json use
OUTPUT_BUCKET = "midas-local-output"
UPLOAD_WAIT_SECONDS = 60


@dataclass
class Context:
    """The fields of the Lambda context object the function reads."""

    function_name: str = "midas-depth-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:midas-depth-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/midas-depth-local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def s3_event(bucket: str, key: str, size: int, etag: str, region: str) -> dict:
    """The notification S3 sends for a PUT: events/s3-put.json with this object (key form-encoded, as S3 does)."""
    event = json.loads(EVENT_TEMPLATE.read_text())
    record = event["Records"][0]
    record["awsRegion"] = region
    record["eventTime"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    record["s3"]["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
    record["s3"]["object"].update(key=quote_plus(key, safe="/"), size=size, eTag=etag)
    record["s3"]["object"]["sequencer"] = hashlib.sha256(f"{bucket}/{key}/{etag}".encode()).hexdigest()[:18].upper()
    return event


def start_moto() -> str:
    """A moto S3 server on 127.0.0.1 for this run; sets AWS_ENDPOINT_URL."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not one line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
    return os.environ["AWS_ENDPOINT_URL"]


def ensure_bucket(s3, name: str, region: str) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=name)
    except ClientError:
        extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=name, **extra)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path, help="a local image file")
    parser.add_argument("--bucket", default=INPUT_BUCKET, help=f"input bucket (default {INPUT_BUCKET})")
    parser.add_argument("--key", help="object key (default uploads/<file name>)")
    parser.add_argument("--output-bucket", default=OUTPUT_BUCKET, help=f"output bucket (default {OUTPUT_BUCKET})")
    parser.add_argument("--model-dir", type=Path, help="baked model (default $MODEL_DIR or layer/model)")
    parser.add_argument("--download", type=Path, help="copy the outputs here (default with moto: artifacts/)")
    parser.add_argument("--event-out", type=Path, help="also save the S3 event (for sam local invoke -e)")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="upload to the running `make serve` stack and wait for its trigger's heatmap instead of invoking here",
    )
    return parser.parse_args(argv)


def key_problem(key: str) -> str | None:
    """Why the upload trigger would not take ``key`` (outside uploads/, or not an image extension), if it would not:
    the function's own read rule (``Settings.may_read``) with this run's upload prefix."""
    from handler.config import Settings
    from handler.imaging import IMAGE_EXTENSIONS
    from scripts.serve_local import INPUT_BUCKET, UPLOAD_PREFIX

    trigger = Settings(allowed_input_buckets=INPUT_BUCKET, upload_prefix=UPLOAD_PREFIX)
    if trigger.may_read(INPUT_BUCKET, key) is not None:
        return f"{key} is outside {UPLOAD_PREFIX}, the only prefix the trigger takes"
    if Path(key).suffix.lower() not in IMAGE_EXTENSIONS:
        return f"{key} is not an image key the trigger handles ({' '.join(sorted(IMAGE_EXTENSIONS))})"
    return None


def upload_to_serve(args: argparse.Namespace) -> int:
    """`make upload`: put the image in the running `make serve` stack; its trigger writes the heatmap; fetch it."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    from handler.config import DEFAULT_OUTPUT_PREFIX
    from handler.s3_outputs import output_key
    from scripts import serve_local

    for name, value in serve_local.CREDENTIALS.items():
        os.environ.setdefault(name, value)
    port = os.environ.get("S3_PORT") or serve_local.DEFAULT_S3_PORT
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or f"http://127.0.0.1:{port}"
    quick = Config(connect_timeout=2, read_timeout=30, retries={"max_attempts": 2, "mode": "standard"})
    s3 = boto3.client("s3", endpoint_url=endpoint, config=quick)
    key = args.key or f"{serve_local.UPLOAD_PREFIX}{args.image.name}"
    problem = key_problem(key)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    source, output = f"s3://{serve_local.INPUT_BUCKET}/{key}", serve_local.OUTPUT_BUCKET
    out_key = output_key(DEFAULT_OUTPUT_PREFIX, key, "heatmap")
    try:
        s3.delete_object(Bucket=output, Key=out_key)  # so that the heatmap waited for is this upload's
        s3.put_object(Bucket=serve_local.INPUT_BUCKET, Key=key, Body=args.image.read_bytes())
    except (BotoCoreError, ClientError) as exc:
        print(f"error: no `make serve` stack answers on {endpoint} ({exc}); start one: make serve", file=sys.stderr)
        return 2
    print(f"uploaded {args.image} -> {source}", flush=True)
    deadline = time.monotonic() + UPLOAD_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            body = s3.get_object(Bucket=output, Key=out_key)["Body"].read()
        except ClientError:
            time.sleep(0.25)
            continue
        line = f"heatmap: s3://{output}/{out_key}"
        if args.download is not None:
            local = args.download / Path(out_key).name
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(body)
            line += f"  (saved to {local})"
        print(line)
        return 0
    print(
        f"error: no heatmap at s3://{output}/{out_key} {UPLOAD_WAIT_SECONDS} s after the upload: "
        f"see make serve's log for {source}",
        file=sys.stderr,
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.image.is_file():
        print(f"error: no such image: {args.image}", file=sys.stderr)
        return 2
    if args.serve:
        return upload_to_serve(args)
    model_dir = args.model_dir or Path(os.environ.get("MODEL_DIR") or ROOT / "layer" / "model")
    if not (model_dir / "manifest.json").is_file():
        print(f"error: no baked model in {model_dir}: run 'make bake' (or pass --model-dir)", file=sys.stderr)
        return 2
    key = args.key or f"uploads/{args.image.name}"
    problem = key_problem(key)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    # Emulator credentials and region unless the caller set their own (LocalStack accepts any).
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    region = os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    embedded = not endpoint
    if embedded:
        endpoint = start_moto()
    download = args.download or (ROOT / "artifacts" if embedded else None)

    import boto3

    s3 = boto3.client("s3")
    for bucket in (args.bucket, args.output_bucket):
        ensure_bucket(s3, bucket, region)
    body = args.image.read_bytes()
    etag = s3.put_object(Bucket=args.bucket, Key=key, Body=body)["ETag"].strip('"')
    print(f"uploaded {args.image} -> s3://{args.bucket}/{key} ({endpoint}{' embedded moto' if embedded else ''})")
    event = s3_event(args.bucket, key, len(body), etag, region)
    if args.event_out:
        args.event_out.write_text(json.dumps(event, indent=2) + "\n")
        print(f"event saved to {args.event_out}")

    # The deployment's environment, pointed at the emulator's buckets; then the real entry, as Lambda calls it.
    os.environ.update(
        MODEL_DIR=str(model_dir),
        OUTPUT_BUCKET=args.output_bucket,
        ALLOWED_INPUT_BUCKETS=args.bucket,
        UPLOAD_PREFIX="uploads/",
    )
    from handler.entry import lambda_handler
    from handler.sources.settle import RecordsFailed

    try:
        summary = lambda_handler(event, Context())
    except RecordsFailed as exc:
        print(f"error: the function failed: {exc}", file=sys.stderr)
        return 1
    if not summary["written"]:
        print(f"error: nothing written: {json.dumps(summary)}", file=sys.stderr)
        return 1
    for written in summary["written"]:
        for kind in ("heatmap", "pfm"):
            if kind not in written:
                continue
            out_key = written[kind]
            line = f"{kind}: s3://{args.output_bucket}/{out_key}"
            if download is not None:
                local = download / out_key
                local.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(args.output_bucket, out_key, str(local))
                line += f"  (copied to {local})"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
