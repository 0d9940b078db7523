"""A model baked from the random test checkpoint says so wherever a person looks (manifest, /health, the depth
answers' header, the CLI); a model baked from unmarked weights says none of it. The marker is in the checkpoint,
never read off its file name (the session's test checkpoint has the official file name)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from bake.checkpoint import load_checkpoint
from bake.pipeline import bake
from handler.app import create_app
from handler.config import Settings
from handler.contract import TEST_WEIGHTS_WARNING
from handler.estimator import DepthEstimator
from handler.model import DepthModel
from handler.s3_store import S3Store
from support import ROOT, encode, scene

WARNING = "test weights: the depth is meaningless"


@pytest.fixture(scope="module")
def unmarked_model_dir(checkpoint_path, tmp_path_factory):
    """The same weights saved as upstream saves real ones (a plain state dict, no marker), really baked."""
    import torch

    state, marker = load_checkpoint(checkpoint_path)
    assert marker is not None
    unmarked = tmp_path_factory.mktemp("real") / "midas_v21_small_256.pt"
    torch.save(dict(state), unmarked)
    assert load_checkpoint(unmarked)[1] is None
    out = unmarked.parent / "model"
    bake(unmarked, str(unmarked), out)
    return out


def app_client(model_dir) -> TestClient:
    estimator = DepthEstimator(Settings(model_dir=str(model_dir)), DepthModel.load(model_dir))
    return TestClient(create_app(estimator, S3Store()))


def cli(model_dir, tmp_path) -> subprocess.CompletedProcess:
    (tmp_path / "p.jpg").write_bytes(encode(scene(48, 32)))
    command = [sys.executable, "-m", "handler", "predict", str(tmp_path / "p.jpg"), "--out", str(tmp_path / "out")]
    return subprocess.run([*command, "--model-dir", str(model_dir)], cwd=ROOT, capture_output=True, text=True)


def depth_answers(client: TestClient) -> list:
    image = encode(scene(48, 32))
    return [
        client.post("/depth", json={"image": base64.b64encode(image).decode()}),
        client.post("/depth", content=image, headers={"Content-Type": "image/jpeg"}),
        client.post("/predict", files={"image": ("p.jpg", image, "image/jpeg")}),
        client.post("/depth", json={"image": "%%%"}),  # a refusal from a test model is no more real
    ]


def test_the_test_checkpoint_is_announced_everywhere(baked_model_dir, checkpoint_path, tmp_path):
    assert TEST_WEIGHTS_WARNING == WARNING and checkpoint_path.name == "midas_v21_small_256.pt"
    manifest = json.loads((baked_model_dir / "manifest.json").read_text())
    assert manifest["test_weights"] is True
    assert manifest["test_weights_reason"] == "random weights from bake/random_checkpoint.py (seed 0)"

    client = app_client(baked_model_dir)
    health = client.get("/health").json()
    assert health["test_weights"] is True and health["warning"] == WARNING
    answers = depth_answers(client)
    assert [a.status_code for a in answers] == [200, 200, 200, 400]
    assert all(a.headers["x-model-warning"] == WARNING for a in answers)
    assert "x-model-warning" not in client.get("/health").headers

    done = cli(baked_model_dir, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"warning: {WARNING} (random weights from bake/random_checkpoint.py (seed 0))" in done.stderr


def test_real_weights_show_none_of_it(unmarked_model_dir, tmp_path):
    manifest = json.loads((unmarked_model_dir / "manifest.json").read_text())
    assert "test_weights" not in manifest and "test_weights_reason" not in manifest
    client = app_client(unmarked_model_dir)
    health = client.get("/health").json()
    assert "test_weights" not in health and "warning" not in health
    answers = depth_answers(client)
    assert [a.status_code for a in answers] == [200, 200, 200, 400]
    assert not any("x-model-warning" in a.headers for a in answers)
    done = cli(unmarked_model_dir, tmp_path)
    assert done.returncode == 0 and "warning" not in done.stderr and "test weights" not in done.stderr
