"""Session fixtures: an official-format checkpoint with seeded random values, baked once by the real bake script."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts import bake_weights, make_test_checkpoint  # noqa: E402


@pytest.fixture(scope="session")
def checkpoint_path(tmp_path_factory) -> Path:
    """A checkpoint with the 482 official keys/shapes (seeded random values)."""
    return make_test_checkpoint.write_checkpoint(tmp_path_factory.mktemp("ckpt") / "midas_v21_small_256.pt", seed=0)


@pytest.fixture(scope="session")
def baked_model_dir(checkpoint_path, tmp_path_factory) -> Path:
    """The real bake of the test checkpoint: model.onnx + manifest.json, made once per session."""
    out = tmp_path_factory.mktemp("baked") / "model"
    bake_weights.bake(checkpoint_path, str(checkpoint_path), out)
    return out


@pytest.fixture(scope="session")
def torch_model(checkpoint_path):
    """The torch MidasNet_small loaded from the same checkpoint (the reference the ONNX path must match)."""
    return bake_weights.build_model(bake_weights.load_state_dict(checkpoint_path))


def pytest_configure(config):
    # Keep CPU use predictable on the 2-core machine: tests run one torch/ORT thread pool at a time.
    os.environ.setdefault("OMP_NUM_THREADS", "2")
