"""`make serve` (scripts/serve_local.py) and `make upload`: the upload trigger as the emulator's own notifications.

The stack runs as `make serve` runs it (a subprocess on free PORT / S3_PORT, serving the suite's baked model); the
tests only upload, with boto3 or with the `make upload` line its banner prints, so every heatmap they find was
written by the trigger: the emulator's bucket notification → SQS → the poller → the Lambda entry. The poller's
retries run in-process against the session's endpoint (moto, or LocalStack in `make test`'s second pass).
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import unquote, unquote_plus

import boto3
import numpy as np
import pytest
from PIL import Image

from bake import cli as bake_cli
from localdev import serve as serve_local
from support import ROOT, encode, free_port, list_keys, scene
from support.serve_stack import ServeStack, serve_stack

TRIGGER_TIMEOUT = 60


def big_jpeg(width: int = 2000, height: int = 1400) -> bytes:
    """A photo-sized JPEG over 1 MB: a scene with grain (smooth scenes compress to a tenth of that)."""
    rng = np.random.default_rng(4)
    rgb = scene(width, height, seed=4).astype(np.int16) + rng.integers(-16, 17, (height, width, 3))
    data = encode(np.clip(rgb, 0, 255).astype(np.uint8), "JPEG", quality=95)
    assert len(data) >= 1_000_000
    return data


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG"
        return img.size


def wait_for_object(client, bucket: str, key: str, timeout: float = TRIGGER_TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.get_object(Bucket=bucket, Key=key)
        except client.exceptions.NoSuchKey:
            if time.monotonic() > deadline:
                raise AssertionError(f"no s3://{bucket}/{key} after {timeout} s") from None
            time.sleep(0.25)


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the session's endpoint: the stack and `make upload` find their own."""
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "S3_PORT", "PORT", "OUTPUT_PREFIX")}
    return env | {"POWERTOOLS_LOG_LEVEL": "INFO", **extra}


# ------------------------------------------------------------------------------------------------ the stack


@pytest.fixture(scope="module")
def stack(baked_model_dir, tmp_path_factory) -> Iterator[ServeStack]:
    """scripts/serve_local.py as `make serve` runs it, on free ports; ready once /health answers."""
    with serve_stack(baked_model_dir, tmp_path_factory.mktemp("serve") / "serve.log", clean_env()) as started:
        yield started


@pytest.fixture(scope="module")
def stack_s3(stack):
    """An S3 client configured from the banner alone: its endpoint and its credentials."""
    endpoint = stack.banner_line("S3 emulator").split()[2]
    assert endpoint == f"http://127.0.0.1:{stack.s3_port}"
    credentials = dict(word.split("=", 1) for word in stack.banner_line("AWS_ACCESS_KEY_ID=").split()[:3])
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        region_name=credentials["AWS_DEFAULT_REGION"],
    )


def test_banner_names_the_stack(stack):
    text = stack.text()
    assert f"{stack.api}/docs" in text
    assert "s3://midas-input/uploads/<name>.jpg -> s3://midas-output/depth/uploads/<name>.jpg.png" in text
    aws = f"aws --endpoint-url http://127.0.0.1:{stack.s3_port} s3 cp photo.jpg s3://midas-input/uploads/"
    assert aws in text
    assert stack.banner_line("make upload") == f'make upload IMAGE="photo.jpg" S3_PORT={stack.s3_port}'


def test_upload_by_any_client_gets_its_heatmap_from_the_trigger(stack, stack_s3):
    key = "uploads/Été à Paris/café terrace.jpg"
    body = big_jpeg()
    etag = stack_s3.put_object(Bucket="midas-input", Key=key, Body=body)["ETag"].strip('"')
    out_key = "depth/uploads/Été à Paris/café terrace.jpg.png"
    result = wait_for_object(stack_s3, "midas-output", out_key)
    assert png_size(result["Body"].read()) == (2000, 1400)
    meta = result["Metadata"]
    assert unquote(meta["source-key"]) == key and meta["source-etag"] == etag  # this upload's, read back from S3
    # Written by the stack's poller through the Lambda entry (its JSON log, with a Lambda request id):
    written = [line for line in stack.text().splitlines() if '"heatmap written"' in line and "Paris/café" in line]
    assert len(written) == 1 and '"function_request_id"' in written[0], stack.text()[-3000:]
    # Nothing else there but what the trigger writes for an upload.
    assert list_keys(stack_s3, "midas-output", "depth/uploads/Été") == [out_key]


def test_make_upload_as_the_banner_says(stack, tmp_path):
    image = tmp_path / "café terrace.jpg"
    image.write_bytes(encode(scene(320, 240, seed=12)))
    out = tmp_path / "my heatmaps"
    line = stack.banner_line("make upload").replace('IMAGE="photo.jpg"', f"IMAGE={shlex.quote(str(image))}")
    done = subprocess.run(
        f"{line} OUT={shlex.quote(str(out))}",
        shell=True,
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=TRIGGER_TIMEOUT + 60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"uploaded {image} -> s3://midas-input/uploads/café terrace.jpg" in done.stdout
    saved = out / "café terrace.jpg.png"
    assert f"heatmap: s3://midas-output/depth/uploads/café terrace.jpg.png  (saved to {saved})" in done.stdout
    assert png_size(saved.read_bytes()) == (320, 240)


def test_make_upload_without_a_stack_says_so_in_one_line(tmp_path):
    image = tmp_path / "photo.jpg"
    image.write_bytes(encode(scene(32, 32)))
    port = free_port()  # nothing listens there
    done = subprocess.run(
        ["make", "upload", f"IMAGE={image}", f"S3_PORT={port}", f"OUT={tmp_path}"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    ours = [line for line in done.stderr.splitlines() if not line.startswith("make")]
    assert len(ours) == 1, done.stderr
    assert ours[0].startswith(f"error: no `make serve` stack answers on http://127.0.0.1:{port} (")
    assert ours[0].endswith("start one: make serve")


def test_make_upload_needs_an_image():
    done = subprocess.run(["make", "upload"], cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "usage: make upload IMAGE=photo.jpg [OUT=dir]" in done.stderr


# ------------------------------------------------------------------------------------------------ the poller


def test_trigger_records_a_broken_upload_once(entry, s3, sqs, events_bucket, output_bucket):
    """The poller on the session's endpoint: a broken upload is delivered once, recorded under the output bucket's
    failures/ and not retried; a good one is written once; a key outside uploads/ never notifies."""
    run = f"midas-trigger-{uuid.uuid4().hex[:8]}"
    queue_url = serve_local.wire_trigger(s3, sqs, events_bucket, f"{run}-q", visibility_timeout=1)
    deliveries: dict[str, int] = {}  # source key → times the entry got it
    lock = threading.Lock()

    def handler(event: dict, context: object) -> dict:
        for record in event["Records"]:
            for s3_record in json.loads(record["body"]).get("Records", []):
                with lock:
                    name = unquote_plus(s3_record["s3"]["object"]["key"])  # quote_plus (moto) or quote (LocalStack)
                    deliveries[name] = deliveries.get(name, 0) + 1
        return entry.lambda_handler(event, context)

    stop = threading.Event()
    poller = threading.Thread(target=serve_local.poll_uploads, args=(sqs, queue_url, handler, stop, 2), daemon=True)
    poller.start()
    try:
        good, broken, elsewhere = f"uploads/{run}/ok ü.jpg", f"uploads/{run}/broken.jpg", "other/x.jpg"
        s3.put_object(Bucket=events_bucket, Key=good, Body=encode(scene(120, 90, seed=13)))
        s3.put_object(Bucket=events_bucket, Key=broken, Body=b"\xff\xd8\xff not a jpeg")
        s3.put_object(Bucket=events_bucket, Key=elsewhere, Body=encode(scene(40, 30)))
        heatmap = wait_for_object(s3, output_bucket, f"depth/uploads/{run}/ok ü.jpg.png")
        assert png_size(heatmap["Body"].read()) == (120, 90)
        deadline = time.monotonic() + TRIGGER_TIMEOUT
        while deliveries.get(broken, 0) < 1 or queue_depth(sqs, queue_url):
            assert time.monotonic() < deadline, f"deliveries {deliveries}, queue {queue_depth(sqs, queue_url)}"
            time.sleep(0.25)
        time.sleep(3)  # three visibility timeouts: a message not deleted would come back
    finally:
        stop.set()
        poller.join(timeout=10)
    assert deliveries == {good: 1, broken: 1}
    assert queue_depth(sqs, queue_url) == 0
    stem = f"depth/uploads/{run}/ok ü.jpg"
    assert list_keys(s3, output_bucket, f"depth/uploads/{run}/") == [f"{stem}.pfm", f"{stem}.png"]  # the entry's
    record = s3.get_object(Bucket=output_bucket, Key=f"depth/failures/{events_bucket}/{broken}.json")["Body"].read()
    assert json.loads(record)["key"] == broken


def queue_depth(sqs, queue_url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


# ------------------------------------------------------------------------------------------------ refusals


def test_serve_without_a_model_offline_exits_with_the_bakes_error(monkeypatch, tmp_path, capsys):
    """No model and no network: serve stops with the bake's one-line error before it starts anything."""
    closed = free_port()
    monkeypatch.setattr(bake_cli.contract, "OFFICIAL_CHECKPOINT_URL", f"http://127.0.0.1:{closed}/m.pt")
    monkeypatch.setattr(bake_cli, "DEFAULT_DOWNLOAD_DIR", tmp_path / "downloads")
    ports = free_port(), free_port()
    for name, value in {"MODEL_DIR": tmp_path / "model", "PORT": ports[0], "S3_PORT": ports[1]}.items():
        monkeypatch.setenv(name, str(value))
    with pytest.raises(SystemExit) as exited:
        serve_local.main()
    assert exited.value.code == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"no baked model in {tmp_path / 'model'}: baking it first"
    assert len(lines) == 2 and re.fullmatch(
        rf"bake_weights: error: download of http://127\.0\.0\.1:{closed}/m\.pt failed: .*refused.*; without network "
        r"access, bake a local copy of the checkpoint: --checkpoint PATH \(make bake BAKE_CHECKPOINT=PATH\).*",
        lines[1],
    ), lines
    for port in ports:
        serve_local.check_free(port, "PORT")  # nothing was started
    assert not (tmp_path / "model").exists()


def test_serve_refuses_a_taken_port_before_loading_anything(monkeypatch, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("S3_PORT", str(port))
        monkeypatch.setenv("PORT", str(free_port()))
        monkeypatch.setenv("MODEL_DIR", str(tmp_path / "no model"))  # would bake: the port check comes first
        with pytest.raises(SystemExit) as exited:
            serve_local.main()
    message = str(exited.value.code)
    assert message.startswith(f"serve_local: error: 127.0.0.1:{port} is in use (")
    assert message.endswith("make serve S3_PORT=...")
    assert not (tmp_path / "no model").exists()
