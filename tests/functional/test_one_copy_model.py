"""One copy of the weights in the image: model.onnx rebuilt from its frame and the optimised graph's weights, byte
for byte, when the optimised graph does not fit the CPU, and refused when the bytes are not model.onnx's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from handler import contract
from handler.errors import ModelUnavailable
from handler.model import DepthModel
from support.model_dirs import copy_model, edit_manifest, flip_byte, tamper


def image_like(tmp_path, baked_model_dir, optimised_fits: bool = False):
    """The model directory as the image ships it: the frame instead of model.onnx."""
    model_dir = copy_model(baked_model_dir, tmp_path / "m")
    (model_dir / contract.ONNX_FILE).unlink()
    if not optimised_fits:
        edit_manifest(model_dir, lambda m: m["optimized"].update(cpu_features=["sse4_1"]))
    return model_dir


def test_the_frame_and_the_optimised_weights_rebuild_model_onnx_exactly(baked_model_dir):
    manifest = json.loads((baked_model_dir / "manifest.json").read_text())
    frame = manifest["optimized"]["portable_frame"]
    portable = (baked_model_dir / contract.ONNX_FILE).read_bytes()
    assert contract.rebuild_portable(baked_model_dir, manifest["optimized"]) == portable
    # nearly every weight byte is cut out of the frame: the optimised data file is their one copy
    assert (baked_model_dir / frame["file"]).stat().st_size < 0.01 * len(portable)
    assert {piece["layout"] for piece in frame["pieces"]} > {"plain"}  # NCHWc-blocked filters among them


def test_without_model_onnx_the_optimised_graph_is_used_as_before(tmp_path, baked_model_dir, depth_model):
    model = DepthModel.load(image_like(tmp_path, baked_model_dir, optimised_fits=True))
    assert model.variant == "optimized" and not model.variant_note


def test_without_model_onnx_a_misfit_optimised_graph_falls_back_to_the_rebuilt_portable_model(
    tmp_path, baked_model_dir, depth_model
):
    model = DepthModel.load(image_like(tmp_path, baked_model_dir))
    assert model.variant == "portable"
    assert "vector features" in model.variant_note and "rebuilt from model.onnx.frame" in model.variant_note
    x = np.random.default_rng(3).standard_normal((1, 3, 128, 160), dtype=np.float32)
    ours, theirs = model.infer(x), depth_model.infer(x)
    assert np.max(np.abs(ours - theirs)) <= 1e-5 * np.ptp(theirs)


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda d: flip_byte(d / contract.OPTIMIZED_DATA_FILE, 30_000_000), "rebuilt from its frame has sha256"),
        (lambda d: flip_byte(d / contract.PORTABLE_FRAME_FILE, 1_000), "rebuilt from its frame has sha256"),
        (lambda d: tamper(d / contract.PORTABLE_FRAME_FILE), "rebuilt from its frame has sha256"),
        (lambda d: (d / contract.PORTABLE_FRAME_FILE).unlink(), "cannot rebuild .*model.onnx"),
        (lambda d: (d / contract.OPTIMIZED_DATA_FILE).unlink(), "cannot rebuild .*model.onnx"),
        (
            lambda d: edit_manifest(d, lambda m: m["optimized"]["portable_frame"]["pieces"][0].pop("offset")),
            "malformed frame entry",
        ),
    ],
)
def test_a_rebuild_that_is_not_model_onnx_refuses_to_start(tmp_path, baked_model_dir, spoil, message):
    model_dir = image_like(tmp_path, baked_model_dir)
    spoil(model_dir)
    with pytest.raises(ModelUnavailable, match=message):
        DepthModel.load(model_dir)
