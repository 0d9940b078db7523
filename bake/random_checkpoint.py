"""An official-format MiDaS_small checkpoint with seeded random values (tests and offline demos only).

Keys, shapes and dtypes come from ``midas_v21_small_256.keys.json`` (read off the upstream checkpoint), not from
our own model, so a strict load of this file proves the real ``midas_v21_small_256.pt`` loads too. The depth it
produces is meaningless; the pipeline around it is exercised exactly as with the real weights.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from handler.contract import TEST_WEIGHTS_KEY

KEYS_FILE = Path(__file__).with_name("midas_v21_small_256.keys.json")


def official_keys() -> list[dict]:
    return json.loads(KEYS_FILE.read_text())


def make_state_dict(seed: int = 0) -> dict:
    """Seeded random tensors with He-scaled conv weights and BN running_var > 0 (sane activations)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    state = {}
    for entry in official_keys():
        key, shape = entry["key"], tuple(entry["shape"])
        if entry["dtype"] == "int64":
            state[key] = torch.zeros(shape, dtype=torch.int64)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=gen) * math.sqrt(2.0 / fan_in)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith("running_mean"):
            state[key] = torch.randn(shape, generator=gen) * 0.1
        elif key.endswith(".weight"):  # batch-norm scale
            state[key] = torch.rand(shape, generator=gen) * 0.5 + 0.75
        else:  # biases: slightly positive so the final ReLU does not zero the whole map
            state[key] = torch.randn(shape, generator=gen) * 0.05 + 0.05
    return state


def write_checkpoint(path: Path, seed: int = 0, wrapped: bool = False) -> Path:
    """Save like upstream: a plain state dict, or ``{"model": ..., "optimizer": ...}`` when ``wrapped``; either
    with the test-weights marker (:data:`handler.contract.TEST_WEIGHTS_KEY`) beside the tensors, which the bake
    records in the manifest (the file's name says nothing: it may be renamed to the official one)."""
    import torch

    state = make_state_dict(seed)
    marker = {TEST_WEIGHTS_KEY: f"random weights from bake/random_checkpoint.py (seed {seed})"}
    torch.save({"model": state, "optimizer": {}, **marker} if wrapped else {**state, **marker}, path)
    return path
