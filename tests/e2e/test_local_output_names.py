"""Local copies of the trigger's outputs are named as the CLI names its files, flat: the input's whole file name plus
the rendering's suffix (`photo.jpg` → `out/photo.jpg.png`, `.pfm`, `.ply`, `.glb`), by `make upload` and
`make invoke-s3` alike; `make upload` and the documented AWS CLI recipe take this upload's heatmap, never an earlier
one of the same key. The stack is `make serve` with raw depth and point clouds enabled, on free ports."""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from support import ROOT, doc_commands, encode, scene
from support.serve_stack import ServeStack, serve_stack

TIMEOUT = 180  # seconds; the model's first run on a busy 2-core machine
LOCAL_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "S3_PORT", "PORT", "OUTPUT_PREFIX")


def env_of(**extra: str) -> dict[str, str]:
    """This environment without the session's endpoint (the stack and `make upload` find their own)."""
    return {k: v for k, v in os.environ.items() if k not in LOCAL_ENDPOINT_VARIABLES} | extra


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(io.BytesIO(path.read_bytes())) as img:
        assert img.format == "PNG"
        return img.size


@pytest.fixture(scope="module")
def stack(baked_model_dir, tmp_path_factory) -> Iterator[ServeStack]:
    env = env_of(WRITE_RAW_DEPTH="true", WRITE_POINT_CLOUD="ply", POWERTOOLS_LOG_LEVEL="WARNING")
    with serve_stack(baked_model_dir, tmp_path_factory.mktemp("serve") / "serve.log", env) as started:
        yield started


def make_upload(stack: ServeStack, image: Path, out: Path) -> subprocess.CompletedProcess:
    line = f"make upload IMAGE={shlex.quote(str(image))} S3_PORT={stack.s3_port} OUT={shlex.quote(str(out))}"
    return subprocess.run(line, shell=True, cwd=ROOT, env=env_of(), capture_output=True, text=True, timeout=TIMEOUT)


def test_make_upload_saves_every_output_of_this_upload_flat(stack, tmp_path):
    out = tmp_path / "out"
    image = tmp_path / "street scene.jpg"
    for size in ((160, 120), (200, 100)):  # the second upload of the same key must not get the first's heatmap
        image.write_bytes(encode(scene(*size, seed=size[0]), "JPEG"))
        done = make_upload(stack, image, out)
        assert done.returncode == 0, done.stdout + done.stderr
        assert png_size(out / "street scene.jpg.png") == size
    assert sorted(p.name for p in out.iterdir()) == [
        "street scene.jpg.pfm",
        "street scene.jpg.ply",
        "street scene.jpg.png",
    ]
    assert (out / "street scene.jpg.pfm").read_bytes().startswith(b"Pf\n200 100\n")
    assert (out / "street scene.jpg.ply").read_bytes().startswith(b"ply\n")
    for rendering, suffix in (("heatmap", "png"), ("pfm", "pfm"), ("ply", "ply")):
        saved = out / f"street scene.jpg.{suffix}"
        assert f"{rendering}: s3://midas-output/depth/uploads/street scene.jpg.{suffix}  (saved to {saved})" in (
            done.stdout
        )


def test_the_documented_aws_cli_recipe_waits_for_this_uploads_heatmap(stack, tmp_path):
    (recipe,) = [
        b for b in doc_commands.blocks("serve") if b.path.endswith("local-aws.md") and "s3api head-object" in b.text
    ]
    script = "set -euo pipefail\n" + recipe.text.replace("http://127.0.0.1:9000", stack.s3)
    for size in ((180, 90), (120, 160)):  # the second finds the first's heatmap at the same key
        (tmp_path / "photo.jpg").write_bytes(encode(scene(*size, seed=size[1]), "JPEG"))
        done = subprocess.run(
            ["bash", "-c", script], cwd=tmp_path, env=env_of(), capture_output=True, text=True, timeout=TIMEOUT
        )
        assert done.returncode == 0, done.stdout + done.stderr + stack.log_tail()
        assert png_size(tmp_path / "photo-depth.png") == size


def test_make_invoke_s3_copies_every_output_flat(baked_model_dir, s3_endpoint, input_bucket, output_bucket, tmp_path):
    image = tmp_path / "café terrace.jpg"
    image.write_bytes(encode(scene(96, 64, seed=3), "JPEG"))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "local_s3_invoke.py"), str(image), "--download", str(out)]
        + ["--bucket", input_bucket, "--output-bucket", output_bucket, "--key", "uploads/deep/café terrace.jpg"]
        + ["--model-dir", str(baked_model_dir)],
        env=os.environ | {"AWS_ENDPOINT_URL": s3_endpoint, "WRITE_RAW_DEPTH": "true", "WRITE_POINT_CLOUD": "glb"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "café terrace.jpg.glb",
        "café terrace.jpg.pfm",
        "café terrace.jpg.png",
    ]
    assert png_size(out / "café terrace.jpg.png") == (96, 64)
    assert (out / "café terrace.jpg.glb").read_bytes().startswith(b"glTF")
    heatmap = f"s3://{output_bucket}/depth/uploads/deep/café terrace.jpg.png"
    assert f"heatmap: {heatmap}  (copied to {out / 'café terrace.jpg.png'})" in done.stdout
