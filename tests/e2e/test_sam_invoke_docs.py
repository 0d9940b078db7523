"""The documents' ``sam`` blocks: ``sam build``, then ``make sam-invoke``, the built image under ``sam local invoke``
on an upload's S3 notification, EventBridge event and SQS batch, against moto's server from .venv (no LocalStack).

Each block runs with bash, as written, in a copy of the checkout (its tracked files, the suite's baked test model as
layer/model, ``.venv`` and ``.venv-tools`` linked, as ``make setup`` leaves them) holding a photograph as
``photo.jpg`` (scikit-image's ``coffee``), on a Docker network of this run (``SAM_NETWORK``, which the Makefile
takes from the environment). Skipped, with the reason, only where no Docker engine answers.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from PIL import Image

from localdev.lambda_container import build_context, docker
from support import ROOT, doc_commands

pytestmark = pytest.mark.image

BLOCKS = doc_commands.blocks("sam")
EVENTS = ("s3-notification", "eventbridge", "sqs-batch")
HEATMAP = "s3://midas-local-output/depth/uploads/photo.jpg.png"


@pytest.fixture(scope="module")
def checkout(docker_engine, baked_model_dir, tmp_path_factory) -> Path:
    """A copy of the checkout with the test model, the repository's venvs and a photograph."""
    from skimage import data

    done = subprocess.run(["make", "-s", "base-image"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"make base-image failed:\n{done.stdout}\n{done.stderr}"
    folder = build_context(tmp_path_factory.mktemp("sam-invoke"), baked_model_dir)
    for venv in (".venv", ".venv-tools"):
        (folder / venv).symlink_to((ROOT / venv).resolve())
    Image.fromarray(data.coffee()).save(folder / "photo.jpg", quality=92)
    return folder


@pytest.fixture(scope="module")
def network() -> str:
    """A Docker network of this run's own, removed afterwards (with whatever SAM left attached to it)."""
    name = f"newcomer-sam-{uuid.uuid4().hex[:8]}"
    yield name
    for container in docker("ps", "-aq", "--filter", f"network={name}", check=False).stdout.split():
        docker("rm", "--force", container, check=False)
    docker("network", "rm", name, check=False)


def test_the_sam_path_is_documented():
    assert any("make sam-invoke" in block.text for block in BLOCKS), "no `sam` block runs make sam-invoke"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_sam_block_runs(block, checkout: Path, network: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ("MAKEFLAGS", "MAKELEVEL")}
    env.update(SAM_CLI_TELEMETRY="0", SAM_NETWORK=network, PYTHONPATH=str(checkout))
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    heatmap = checkout / "out" / "photo.jpg.png"
    heatmap.unlink(missing_ok=True)
    script = "set -euo pipefail\n" + block.text
    done = subprocess.run(["bash", "-c", script], cwd=checkout, env=env, capture_output=True, text=True, timeout=900)
    output = f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    assert done.returncode == 0, f"{block.id}:\n{output}"
    if "make sam-invoke" in block.text:
        for name in EVENTS:
            assert f"{name}: heatmap written: {HEATMAP}" in done.stdout, output
        assert '{"batchItemFailures": []}' in done.stdout, output
        with Image.open(heatmap) as png, Image.open(checkout / "photo.jpg") as photo:
            assert png.format == "PNG" and png.size == photo.size
