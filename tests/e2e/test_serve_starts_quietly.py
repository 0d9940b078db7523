"""`make serve` as a newcomer first sees it: no start-up line that looks like an error (the S3 test event that wiring
the notification sends, CloudWatch's raw metric JSON), and a page that makes its browser ask for no /favicon.ico."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator

import boto3
import pytest

from support import encode, scene
from support.serve_stack import ServeStack, serve_stack

TRIGGER_TIMEOUT = 60


@pytest.fixture(scope="module")
def stack(baked_model_dir, tmp_path_factory) -> Iterator[ServeStack]:
    dropped = ("AWS_ENDPOINT_URL", "S3_PORT", "PORT", "OUTPUT_PREFIX", "POWERTOOLS_LOG_LEVEL")
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("POWERTOOLS_METRICS")}
    with serve_stack(baked_model_dir, tmp_path_factory.mktemp("serve") / "serve.log", env) as started:
        yield started


def test_the_log_of_a_start_and_an_upload_has_nothing_that_looks_like_an_error(stack):
    s3 = boto3.client(
        "s3",
        endpoint_url=stack.s3,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    s3.put_object(Bucket="midas-input", Key="uploads/first.jpg", Body=encode(scene(64, 48, seed=2), "JPEG"))
    deadline = time.monotonic() + TRIGGER_TIMEOUT
    while "heatmap written" not in stack.text():
        assert time.monotonic() < deadline, stack.log_tail()
        time.sleep(0.25)
    lines = stack.text().splitlines()
    assert not [line for line in lines if "dropped" in line.lower()], stack.text()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records, stack.text()  # the function's own JSON log lines are there
    assert not [r for r in records if "_aws" in r], "CloudWatch metric JSON in the log:\n" + stack.text()
    assert not [r for r in records if r.get("level") in ("WARNING", "ERROR", "CRITICAL")], stack.text()


def test_the_page_declares_its_icon_so_browsers_ask_for_no_favicon(stack):
    with urllib.request.urlopen(stack.api + "/") as response:
        page = response.read().decode()
        policy = response.headers["Content-Security-Policy"]
    assert '<link rel="icon" href="data:,">' in page
    assert "data:" in policy.split("img-src", 1)[1].split(";", 1)[0]
