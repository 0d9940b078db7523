"""`make invoke-s3 IMAGE=photo.jpg`: upload an image to the emulator's input bucket, run the function on the S3 event.

What scripts/local_s3_invoke.py runs; that file says how to use it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from localdev import serve as serve_local
from localdev.events import s3_upload_event
from localdev.function import LambdaContext, function_env
from localdev.s3_emulator import CREDENTIALS, ensure_bucket, start_moto

ROOT = Path(__file__).resolve().parents[1]
INPUT_BUCKET = "midas-local-input"  # the names events/ and events/env-localstack.json use
OUTPUT_BUCKET = "midas-local-output"
UPLOAD_WAIT_SECONDS = 60


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

    trigger = Settings(allowed_input_buckets=serve_local.INPUT_BUCKET, upload_prefix=serve_local.UPLOAD_PREFIX)
    if trigger.may_read(serve_local.INPUT_BUCKET, key) is not None:
        return f"{key} is outside {serve_local.UPLOAD_PREFIX}, the only prefix the trigger takes"
    if Path(key).suffix.lower() not in IMAGE_EXTENSIONS:
        return f"{key} is not an image key the trigger handles ({' '.join(sorted(IMAGE_EXTENSIONS))})"
    return None


def save_outputs(s3, bucket: str, source_key: str, keys: dict[str, str], folder: Path) -> dict[str, Path]:
    """Copy each rendering's object (``keys``: rendering → output key) to ``folder``, named as the CLI names its
    files: the input's file name plus the rendering's suffix, flat (``uploads/a/photo.jpg`` → ``photo.jpg.png``,
    ``.pfm``, ``.ply``, ``.glb``)."""
    from handler.s3_outputs import file_name

    folder.mkdir(parents=True, exist_ok=True)
    saved = {}
    for rendering, out_key in keys.items():
        saved[rendering] = folder / file_name(Path(source_key).name, rendering)
        s3.download_file(bucket, out_key, str(saved[rendering]))
    return saved


def list_outputs(s3, bucket: str, source_key: str, keys: dict[str, str], folder: Path | None, copied: str) -> None:
    """Print each rendering's object (``keys``: rendering → output key), after copying them to ``folder`` if given
    (``copied``: the words before each local path)."""
    saved = save_outputs(s3, bucket, source_key, keys, folder) if folder is not None else {}
    for rendering, out_key in keys.items():
        print(f"{rendering}: s3://{bucket}/{out_key}" + (f"  ({copied} {saved[rendering]})" if saved else ""))


def outputs_of_upload(s3, bucket: str, key: str, etag: str) -> dict[str, str] | None:
    """The output keys the trigger wrote for this upload (the one whose ETag is ``etag``), or None while its heatmap,
    written last, is missing or still an earlier upload's: each output's ``source-etag`` metadata names the upload
    it was made from, so no earlier result of the same key is taken for this one."""
    from botocore.exceptions import ClientError

    from handler.config import DEFAULT_OUTPUT_PREFIX
    from handler.s3_outputs import RENDERINGS, output_key

    found = {}
    for rendering in ("heatmap", *(r for r in RENDERINGS if r != "heatmap")):
        out_key = output_key(DEFAULT_OUTPUT_PREFIX, key, rendering)
        try:
            head = s3.head_object(Bucket=bucket, Key=out_key)
        except ClientError:
            head = None
        if head is not None and head["Metadata"].get("source-etag") == etag:
            found[rendering] = out_key
        elif rendering == "heatmap":
            return None
    return found


def upload_to_serve(args: argparse.Namespace) -> int:
    """`make upload`: put the image in the running `make serve` stack; its trigger writes the heatmap (and the PFM
    and point cloud when enabled); fetch every output it wrote for this upload."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    for name, value in CREDENTIALS.items():
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
    try:
        put = s3.put_object(Bucket=serve_local.INPUT_BUCKET, Key=key, Body=args.image.read_bytes())
    except (BotoCoreError, ClientError) as exc:
        print(f"error: no `make serve` stack answers on {endpoint} ({exc}); start one: make serve", file=sys.stderr)
        return 2
    etag = put["ETag"].strip('"')
    print(f"uploaded {args.image} -> {source}", flush=True)
    deadline = time.monotonic() + UPLOAD_WAIT_SECONDS
    while (keys := outputs_of_upload(s3, output, key, etag)) is None:
        if time.monotonic() > deadline:
            print(
                f"error: no heatmap of this upload in s3://{output}/ {UPLOAD_WAIT_SECONDS} s after it: "
                f"see make serve's log for {source}",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.25)
    list_outputs(s3, output, key, keys, args.download, "saved to")
    return 0


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
    os.environ.setdefault("AWS_ACCESS_KEY_ID", CREDENTIALS["AWS_ACCESS_KEY_ID"])
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    region = os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    embedded = not endpoint
    if embedded:
        _, endpoint = start_moto()
        os.environ["AWS_ENDPOINT_URL"] = endpoint
    download = args.download or (ROOT / "artifacts" if embedded else None)

    import boto3

    s3 = boto3.client("s3")
    for bucket in (args.bucket, args.output_bucket):
        ensure_bucket(s3, bucket, region)
    body = args.image.read_bytes()
    etag = s3.put_object(Bucket=args.bucket, Key=key, Body=body)["ETag"].strip('"')
    print(f"uploaded {args.image} -> s3://{args.bucket}/{key} ({endpoint}{' embedded moto' if embedded else ''})")
    event = s3_upload_event(args.bucket, key, len(body), etag, region)
    if args.event_out:
        args.event_out.write_text(json.dumps(event, indent=2) + "\n")
        print(f"event saved to {args.event_out}")

    # The deployment's environment, pointed at the emulator's buckets; then the real entry, as Lambda calls it.
    os.environ.update(function_env(model_dir=model_dir, output_bucket=args.output_bucket, input_buckets=args.bucket))
    from handler.entry import lambda_handler
    from handler.sources.settle import RecordsFailed

    try:
        summary = lambda_handler(event, LambdaContext())
    except RecordsFailed as exc:
        print(f"error: the function failed: {exc}", file=sys.stderr)
        return 1
    if not summary["written"]:
        print(f"error: nothing written: {json.dumps(summary)}", file=sys.stderr)
        return 1
    from handler.s3_outputs import RENDERINGS

    for written in summary["written"]:
        keys = {rendering: out_key for rendering, out_key in written.items() if rendering in RENDERINGS}
        list_outputs(s3, args.output_bucket, written["key"], keys, download, "copied to")
    return 0
