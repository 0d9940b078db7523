"""docs/local-aws.md's recipe for the stack in LocalStack (upload, wait, download the heatmap) hands out the heatmap of
*this* upload, never an earlier one of the same key.

The recipe runs as written, with bash, against the session's S3 endpoint (its LocalStack URL and the stack's bucket
names pointed at the session's), and this test plays the stack's rule: once the upload is in the input bucket, it
sends the real Lambda entry the EventBridge "Object Created" event of that object. The second upload of the key finds
the first one's heatmap already there; the recipe must wait for its own.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time

from PIL import Image

from support import LambdaContext, doc_commands, encode, eventbridge_event, scene

DOC_ENDPOINT = "http://127.0.0.1:4599"
DOC_INPUT = "midas-depth-input-000000000000-us-east-1"
DOC_OUTPUT = "midas-depth-output-000000000000-us-east-1"
KEY = "uploads/photo.jpg"
DELIVERY_DELAY = 10  # seconds


def the_recipe() -> str:
    (block,) = [b for b in doc_commands.blocks("stack") if "photo-depth.png" in b.text]
    return block.text


def deliver_when_uploaded(s3, entry, bucket: str, before: str | None, recipe, failures: list) -> None:
    """The rule's part: wait for a new upload of KEY, then invoke the function with its EventBridge event; a slow
    rule, as a cold start is: a recipe that takes whatever heatmap is there has finished before it delivers."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            head = s3.head_object(Bucket=bucket, Key=KEY)
        except s3.exceptions.ClientError:
            head = None
        if head is not None and head["ETag"] != before:
            with contextlib.suppress(subprocess.TimeoutExpired):
                recipe.wait(timeout=DELIVERY_DELAY)
            event = eventbridge_event(bucket, KEY)
            event["detail"]["object"].update(etag=head["ETag"].strip('"'), size=head["ContentLength"])
            summary = entry.lambda_handler(event, LambdaContext())
            if not summary["written"]:
                failures.append(summary)
            return
        time.sleep(0.1)
    failures.append("the recipe uploaded nothing")


def test_the_stack_recipe_downloads_this_uploads_heatmap(entry, s3, s3_endpoint, input_bucket, output_bucket, tmp_path):
    script = "set -euo pipefail\n" + the_recipe().replace(DOC_ENDPOINT, s3_endpoint)
    script = script.replace(DOC_INPUT, input_bucket).replace(DOC_OUTPUT, output_bucket)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    for size in ((160, 120), (90, 150)):  # the second finds the first's heatmap at the same key
        (tmp_path / "photo.jpg").write_bytes(encode(scene(*size, seed=size[0]), "JPEG"))
        try:
            before = s3.head_object(Bucket=input_bucket, Key=KEY)["ETag"]
        except s3.exceptions.ClientError:
            before = None
        failures: list = []
        recipe = subprocess.Popen(
            ["bash", "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        rule = threading.Thread(target=deliver_when_uploaded, args=(s3, entry, input_bucket, before, recipe, failures))
        rule.start()
        output, _ = recipe.communicate(timeout=180)
        rule.join()
        assert not failures, failures
        assert recipe.returncode == 0, output
        with Image.open(tmp_path / "photo-depth.png") as heatmap:
            assert heatmap.size == size
