"""The documents' download recipes (upload a photo, wait, download its heatmap) hand out the heatmap of *this*
upload, never an earlier one of the same key: local-aws.md's for `make serve` (AWS CLI and curl), s3-trigger.md's
curl one and its one on AWS, local-aws.md's for the stack in LocalStack, and the one `make stack` prints.

Each recipe runs as written, with bash, against the session's S3 endpoint (its URL and bucket names pointed at the
session's; the one on AWS, whose buckets are the stack's outputs, up to its download, with the session's bucket names
in their place), and this test plays the upload trigger: once the upload is in the input bucket, it sends the real
Lambda entry the EventBridge "Object Created" event of that object. Before the recipe runs, an earlier upload of other
bytes to the same key has its heatmap there already; the recipe must wait for its own.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from dataclasses import dataclass

import pytest
from PIL import Image

from localdev import stack
from support import CREDENTIALS, LambdaContext, doc_commands, encode, eventbridge_event, scene

DELIVERY_DELAY = 10  # seconds


@dataclass(frozen=True)
class Recipe:
    tag: str
    path: str
    download: str  # the file the recipe writes, which also tells its block apart
    endpoint: str | None  # None: the AWS CLI's default, AWS_ENDPOINT_URL
    input_bucket: str
    output_bucket: str
    key: str
    stop: str | None = None  # where the recipe ends, when the block goes on (`sam logs --tail` runs until Ctrl-C)
    text: str | None = None  # a recipe printed by a program rather than shown in a document

    @property
    def photo(self) -> str:
        return self.key.rsplit("/", 1)[1]

    def block(self) -> str:
        if self.text is not None:
            return self.text
        (block,) = [b for b in doc_commands.blocks(self.tag) if b.path == self.path and self.download in b.text]
        return block.text.split(self.stop)[0] if self.stop else block.text


SERVE = ("http://127.0.0.1:9000", "midas-input", "midas-output")
STACK = (
    "http://127.0.0.1:4599",
    "midas-depth-input-000000000000-us-east-1",
    "midas-depth-output-000000000000-us-east-1",
)


def printed_by_make_stack() -> str:
    """The upload-wait-download lines of the commands `make stack` prints, with the stack's names."""
    endpoint, input_bucket, output_bucket = STACK
    outputs = {
        "FunctionUrl": "http://example.lambda-url.us-east-1.localhost:4599/",
        "InputBucketName": input_bucket,
        "OutputBucketName": output_bucket,
        "UploadPrefix": "uploads/",
        "OutputPrefix": "depth/",
    }
    lines = [line.strip() for line in stack.try_it(endpoint, outputs).splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("export "))
    end = next(i for i, line in enumerate(lines) if "photo-depth.png" in line)
    return "\n".join(lines[start : end + 1])


RECIPES = {
    "local-aws-aws-cli": Recipe("serve", "docs/local-aws.md", "photo-depth.png", *SERVE, "uploads/photo.jpg"),
    "local-aws-curl": Recipe("serve", "docs/local-aws.md", "photo1-depth.png", *SERVE, "uploads/photo1.jpg"),
    "s3-trigger-curl": Recipe(
        "serve", "docs/s3-trigger.md", "café terrace-depth.png", *SERVE, "uploads/café terrace.jpg"
    ),
    "s3-trigger-aws": Recipe(
        "aws",
        "docs/s3-trigger.md",
        "photo.jpg.png",
        None,
        "$(out InputBucketName)",
        "$(out OutputBucketName)",
        "uploads/photo.jpg",
        ".venv-tools/bin/sam logs",
    ),
    "local-aws-stack": Recipe("stack", "docs/local-aws.md", "photo-depth.png", *STACK, "uploads/photo.jpg"),
    "make-stack-prints": Recipe(
        "", "localdev/stack.py", "photo-depth.png", *STACK, "uploads/photo.jpg", text=printed_by_make_stack()
    ),
}


def deliver(entry, bucket: str, key: str, head: dict) -> dict:
    """The trigger's part: the real entry on the EventBridge event of the upload ``head`` describes."""
    event = eventbridge_event(bucket, key)
    event["detail"]["object"].update(etag=head["ETag"].strip('"'), size=head["ContentLength"])
    return entry.lambda_handler(event, LambdaContext())


def deliver_when_uploaded(s3, entry, bucket: str, key: str, before: str, recipe, failures: list) -> None:
    """Wait for a new upload of ``key``, then deliver it; a slow trigger, as a cold start is: a recipe that takes
    whatever heatmap is there has finished before it delivers."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        head = s3.head_object(Bucket=bucket, Key=key)
        if head["ETag"] != before:
            with contextlib.suppress(subprocess.TimeoutExpired):
                recipe.wait(timeout=DELIVERY_DELAY)
            summary = deliver(entry, bucket, key, head)
            if not summary["written"]:
                failures.append(summary)
            return
        time.sleep(0.1)
    failures.append("the recipe uploaded nothing")


@pytest.mark.parametrize("recipe", RECIPES.values(), ids=RECIPES.keys())
def test_the_recipe_downloads_this_uploads_heatmap(
    recipe: Recipe, entry, s3, s3_endpoint, input_bucket, output_bucket, tmp_path
):
    script = recipe.block().replace(recipe.input_bucket, input_bucket).replace(recipe.output_bucket, output_bucket)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    if recipe.endpoint:
        script = script.replace(recipe.endpoint, s3_endpoint)
    else:
        env |= CREDENTIALS | {"AWS_ENDPOINT_URL": s3_endpoint}
    script = "set -euo pipefail\n" + script
    heatmap = f"depth/{recipe.key}.png"

    # An earlier upload of other bytes to the same key, with its heatmap.
    s3.put_object(Bucket=input_bucket, Key=recipe.key, Body=encode(scene(90, 150, seed=90), "JPEG"))
    before = s3.head_object(Bucket=input_bucket, Key=recipe.key)
    assert deliver(entry, input_bucket, recipe.key, before)["written"]

    size = (160, 120)
    (tmp_path / recipe.photo).write_bytes(encode(scene(*size, seed=size[0]), "JPEG"))
    failures: list = []
    run = subprocess.Popen(
        ["bash", "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    args = (s3, entry, input_bucket, recipe.key, before["ETag"], run, failures)
    trigger = threading.Thread(target=deliver_when_uploaded, args=args)
    trigger.start()
    output, _ = run.communicate(timeout=180)
    trigger.join()
    assert not failures, failures
    assert run.returncode == 0, output

    upload = s3.head_object(Bucket=input_bucket, Key=recipe.key)["ETag"].strip('"')
    made = s3.get_object(Bucket=output_bucket, Key=heatmap)
    assert made["Metadata"]["source-etag"] == upload
    assert (tmp_path / recipe.download).read_bytes() == made["Body"].read(), "the recipe saved an earlier heatmap"
    with Image.open(tmp_path / recipe.download) as saved:
        assert saved.size == size
