"""`make invoke-s3` (scripts/local_s3_invoke.py): upload to a real S3 endpoint, run the entry on the S3 event."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from support import ROOT, encode, scene

INVOKE_TIMEOUT = 180  # seconds; includes the model load on a busy 2-core machine


def _png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG"
        return img.size


def test_local_s3_invoke_uploads_runs_the_function_and_says_where_the_heatmap_went(
    s3_endpoint, s3, baked_model_dir, input_bucket, output_bucket, tmp_path
):
    image = tmp_path / "street scene.jpg"
    image.write_bytes(encode(scene(200, 150, seed=9), "JPEG", quality=90))
    event_file = tmp_path / "event.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "local_s3_invoke.py"),
            str(image),
            *("--bucket", input_bucket, "--output-bucket", output_bucket),
            *("--key", "uploads/local invoke/street scene.jpg", "--model-dir", str(baked_model_dir)),
            *("--download", str(tmp_path / "out"), "--event-out", str(event_file)),
        ],
        env={**os.environ, "AWS_ENDPOINT_URL": s3_endpoint, "POWERTOOLS_LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=INVOKE_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out_key = "depth/uploads/local invoke/street scene.jpg.png"
    assert f"heatmap: s3://{output_bucket}/{out_key}" in done.stdout
    assert s3.head_object(Bucket=input_bucket, Key="uploads/local invoke/street scene.jpg")["ContentLength"] > 0
    assert _png_size(s3.get_object(Bucket=output_bucket, Key=out_key)["Body"].read()) == (200, 150)
    assert _png_size((tmp_path / "out" / "street scene.jpg.png").read_bytes()) == (200, 150)
    saved = json.loads(event_file.read_text())["Records"][0]["s3"]
    assert saved["object"]["key"] == "uploads/local+invoke/street+scene.jpg"  # encoded as S3 encodes it
    assert saved["bucket"]["name"] == input_bucket


def test_local_s3_invoke_fails_clearly_without_a_model(tmp_path):
    image = tmp_path / "a.jpg"
    image.write_bytes(encode(scene(32, 32), "JPEG"))
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "local_s3_invoke.py"), str(image), "--model-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "no baked model" in done.stderr and "make bake" in done.stderr


@pytest.mark.parametrize(
    "key, words",
    [
        ("private/a.jpg", "is outside uploads/, the only prefix the trigger takes"),
        ("uploads/a.txt", "is not an image key the trigger handles"),
    ],
)
def test_local_s3_invoke_refuses_a_key_the_trigger_would_refuse(tmp_path, baked_model_dir, key, words):
    image = tmp_path / "a.jpg"
    image.write_bytes(encode(scene(32, 32), "JPEG"))
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "local_s3_invoke.py"), str(image), "--key", key]
        + ["--model-dir", str(baked_model_dir)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr.startswith(f"error: {key} {words}") and not done.stdout
