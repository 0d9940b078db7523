"""`make sam-invoke IMAGE=photo.jpg`: the built image under ``sam local invoke`` on the S3 upload events, offline,
against moto's server from .venv (no LocalStack, no emulator image).

The function's container must reach the emulator: ``sam local invoke --docker-network NAME`` attaches it to a
user-defined Docker network (created if missing), and moto listens on that network's gateway, the address of this
machine on it (not 127.0.0.1, which inside the container is the container; nor 0.0.0.0: nothing beyond this machine
and that network reaches it). SAM's ``--docker-network host`` does not share the host's network (SAM still publishes
the runtime's port and reaches it through it), so it is no way to 127.0.0.1.

With moto running, it creates the buckets events/env-localstack.json names and a queue, uploads the photo under
uploads/, and invokes the function once per event an upload reaches it by: the S3 notification (events/s3-put.json
for this object), the EventBridge "Object Created" event (direct mode), and an SQS batch carrying that EventBridge
event (queue mode: the message received from the queue). Before each invocation the heatmap is deleted; after it,
the heatmap must be there again, made from this upload (its ``source-etag`` metadata). Prints each ``sam`` command,
its reply and the heatmap's S3 URI, saves the heatmap to ``--out`` and writes the events and the env-vars file to
``--events-dir`` (for running ``sam local invoke`` by hand). Exit 0 when every event wrote the heatmap, 1 when one did
not, 2 when something it needs is missing (the built template, Docker, the photo).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from localdev.events import eventbridge_event, s3_upload_event, sqs_event
from localdev.function import function_env
from localdev.invoke_s3 import INPUT_BUCKET, OUTPUT_BUCKET, key_problem, outputs_of_upload, save_outputs
from localdev.s3_emulator import CREDENTIALS, ensure_bucket, start_moto_process

ROOT = Path(__file__).resolve().parents[1]
NETWORK = "midas-local"
QUEUE = "midas-uploads"
FUNCTION = "UploadFunction"  # the template's function for uploads (HTTP events go to ApiFunction)
BUILT_TEMPLATE = Path(".aws-sam") / "build" / "template.yaml"
INVOKE_TIMEOUT = 600


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path, help="a local photo")
    parser.add_argument("--network", default=NETWORK, help=f"the Docker network (default {NETWORK})")
    parser.add_argument("--out", type=Path, default=Path("out"), help="save the heatmap here (default out/)")
    parser.add_argument(
        "--events-dir", type=Path, default=Path("out") / "sam-events", help="write the events and env-vars file here"
    )
    parser.add_argument("--sam", default=str(Path(".venv-tools") / "bin" / "sam"), help="the SAM CLI")
    return parser.parse_args(argv)


def network_gateway(name: str) -> str:
    """The gateway of Docker network ``name`` (created, as a bridge, if missing): this machine's address on it."""
    inspect = ["docker", "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}} {{end}}", name]
    done = subprocess.run(inspect, capture_output=True, text=True)
    if done.returncode != 0:
        subprocess.run(["docker", "network", "create", name], capture_output=True, text=True, check=True)
        print(f"created the Docker network {name}")
        done = subprocess.run(inspect, capture_output=True, text=True, check=True)
    gateways = [g for g in done.stdout.split() if "." in g]  # the IPv4 one
    if not gateways:
        raise SystemExit(f"error: the Docker network {name} has no IPv4 gateway")
    return gateways[0]


def sam_invoke(sam: str, event: Path, env_vars: Path, network: str) -> dict:
    """``sam local invoke`` of the function on ``event``; returns its reply (the last line SAM prints)."""
    command = [sam, "local", "invoke", FUNCTION, "-e", str(event), "--env-vars", str(env_vars)]
    command += ["--docker-network", network]
    print("$ " + shlex.join(command), flush=True)
    env = os.environ | CREDENTIALS | {"SAM_CLI_TELEMETRY": "0"}
    env.pop("AWS_ENDPOINT_URL", None)  # the function's endpoint comes from --env-vars; SAM itself needs none
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=INVOKE_TIMEOUT)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"error: sam local invoke failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.image.is_file():
        print(f"error: no such image: {args.image}", file=sys.stderr)
        return 2
    if not BUILT_TEMPLATE.is_file():
        print(f"error: no {BUILT_TEMPLATE}: run `{args.sam} build` first (docs/local-aws.md)", file=sys.stderr)
        return 2
    key = f"uploads/{args.image.name}"
    problem = key_problem(key)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        gateway = network_gateway(args.network)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"error: no Docker network {args.network} ({exc}): is Docker running?", file=sys.stderr)
        return 2

    region = CREDENTIALS["AWS_DEFAULT_REGION"]
    moto, endpoint = start_moto_process(host=gateway)
    try:
        print(f"moto server on {endpoint}, the gateway of the Docker network {args.network}", flush=True)
        return invoke_each_event(args, key, endpoint, region)
    finally:
        moto.terminate()
        moto.wait(timeout=10)


def invoke_each_event(args: argparse.Namespace, key: str, endpoint: str, region: str) -> int:
    import boto3

    from handler.config import DEFAULT_OUTPUT_PREFIX
    from handler.s3_outputs import output_key

    session = boto3.session.Session(
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=region,
    )
    s3, sqs = session.client("s3", endpoint_url=endpoint), session.client("sqs", endpoint_url=endpoint)
    for bucket in (INPUT_BUCKET, OUTPUT_BUCKET):
        ensure_bucket(s3, bucket, region)
    queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    body = args.image.read_bytes()
    etag = s3.put_object(Bucket=INPUT_BUCKET, Key=key, Body=body)["ETag"].strip('"')
    print(f"uploaded {args.image} -> s3://{INPUT_BUCKET}/{key}")

    # The events an upload reaches the function by. EventBridge's carries the object's ETag, as S3's does.
    notification = s3_upload_event(INPUT_BUCKET, key, len(body), etag, region)
    eventbridge = eventbridge_event(INPUT_BUCKET, key)
    eventbridge.update(region=region, resources=[f"arn:aws:s3:::{INPUT_BUCKET}"])
    eventbridge["detail"]["object"].update(size=len(body), etag=etag)
    # Queue mode: the rule sends the EventBridge event to the queue; Lambda's event source receives the message.
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(eventbridge))
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, AttributeNames=["All"])["Messages"]
    batch = sqs_event(messages, queue_arn, region)

    args.events_dir.mkdir(parents=True, exist_ok=True)
    env_vars = args.events_dir / "env-vars.json"
    # AWS_ENDPOINT_URL: the emulator as the container reaches it. SAM only sets variables the template declares.
    settings = function_env(output_bucket=OUTPUT_BUCKET, input_buckets=INPUT_BUCKET, AWS_ENDPOINT_URL=endpoint)
    env_vars.write_text(json.dumps({FUNCTION: settings}, indent=2) + "\n")
    heatmap_key = output_key(DEFAULT_OUTPUT_PREFIX, key, "heatmap")
    heatmap = f"s3://{OUTPUT_BUCKET}/{heatmap_key}"
    for name, event in (("s3-notification", notification), ("eventbridge", eventbridge), ("sqs-batch", batch)):
        path = args.events_dir / f"{name}.json"
        path.write_text(json.dumps(event, indent=2) + "\n")
        s3.delete_object(Bucket=OUTPUT_BUCKET, Key=heatmap_key)
        started = time.monotonic()
        reply = sam_invoke(args.sam, path, env_vars, args.network)
        print(f"{name}: {json.dumps(reply)} ({time.monotonic() - started:.1f} s)")
        outputs = outputs_of_upload(s3, OUTPUT_BUCKET, key, etag)
        if outputs is None:
            print(f"error: the {name} event wrote no heatmap of this upload at {heatmap}", file=sys.stderr)
            return 1
        print(f"{name}: heatmap written: {heatmap}", flush=True)
    saved = save_outputs(s3, OUTPUT_BUCKET, key, outputs, args.out)
    print(f"saved {', '.join(str(p) for p in saved.values())}")
    return 0
