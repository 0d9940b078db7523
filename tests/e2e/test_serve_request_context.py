"""`make serve` (scripts/serve_local.py) logs each HTTP request as Lambda logs an invocation of the API function: its
own request id, and ``cold_start`` true for the first request the process answers only, whatever the upload
trigger's invocations in between logged."""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid

import boto3

from support import CREDENTIALS, encode, scene
from support.serve_stack import ServeStack, serve_stack

TRIGGER_TIMEOUT = 60
LAMBDA_KEYS = ("cold_start", "function_name", "function_memory_size", "function_arn", "function_request_id")


def post_depth(stack: ServeStack, seed: int) -> None:
    request = urllib.request.Request(
        f"{stack.api}/depth", data=encode(scene(64, 48, seed=seed)), headers={"Content-Type": "image/jpeg"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200


def upload_and_wait(stack: ServeStack) -> None:
    """An upload through the trigger: the poller's invocation of the Lambda entry, between two HTTP requests."""
    s3 = boto3.client(
        "s3",
        endpoint_url=stack.s3,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
    )
    s3.put_object(Bucket="midas-input", Key="uploads/between.jpg", Body=encode(scene(40, 30, seed=3)))
    deadline = time.monotonic() + TRIGGER_TIMEOUT
    while '"heatmap written"' not in stack.text():
        assert time.monotonic() < deadline, stack.log_tail()
        time.sleep(0.25)


def records(stack: ServeStack, message: str) -> list[dict]:
    lines = [line for line in stack.text().splitlines() if line.startswith("{")]
    return [record for record in map(json.loads, lines) if record["message"] == message]


def test_each_request_has_its_own_request_id_and_only_the_first_is_cold(baked_model_dir, tmp_path):
    dropped = ("AWS_ENDPOINT_URL", "S3_PORT", "PORT", "OUTPUT_PREFIX")
    env = {k: v for k, v in os.environ.items() if k not in dropped} | {"POWERTOOLS_LOG_LEVEL": "INFO"}
    with serve_stack(baked_model_dir, tmp_path / "serve.log", env, untouched=True) as stack:
        post_depth(stack, seed=1)
        post_depth(stack, seed=2)
        upload_and_wait(stack)
        post_depth(stack, seed=3)
        answered = records(stack, "depth estimated")
        uploaded = records(stack, "heatmap written")
    assert len(answered) == 3 and len(uploaded) == 1, stack.text()
    for record in answered:
        assert set(LAMBDA_KEYS) <= record.keys(), record
        uuid.UUID(record["function_request_id"])
    assert [record["cold_start"] for record in answered] == [True, False, False], stack.text()
    request_ids = {record["function_request_id"] for record in answered + uploaded}
    assert len(request_ids) == 4, stack.text()  # each request and the upload's invocation: one id each
