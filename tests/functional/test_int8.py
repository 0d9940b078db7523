"""int8 behind a fidelity gate: the real int8 bake (calibrated on the photographs in bake/calibration/), its error
against fp32 recorded in the manifest, and the runtime serving it only past MAX_INT8_ABS_REL and its sha256 check."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from bake import cli, int8
from handler import contract
from handler.config import Settings
from handler.contract import sha256_file
from handler.estimator import DepthEstimator
from handler.model import DepthModel
from handler.s3_store import S3Store
from support import local_client
from support.model_dirs import copy_model, edit_manifest, flip_byte, tamper

LAX = 1e9  # a threshold every int8 bake passes: the test weights' int8 error is meaningless, only the branch counts


@pytest.fixture(scope="module")
def int8_bake(checkpoint_path, tmp_path_factory):
    """The int8 bake through its command line (scripts/bake_weights.py --precision int8): the model directory and
    what the command printed."""
    out = tmp_path_factory.mktemp("baked-int8") / "model"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main(["--checkpoint", str(checkpoint_path), "--output", str(out), "--precision", "int8"]) == 0
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def int8_model_dir(int8_bake):
    return int8_bake[0]


def test_the_int8_bake_records_its_file_and_its_error_against_fp32(int8_model_dir, baked_model_dir):
    manifest = json.loads((int8_model_dir / "manifest.json").read_text())
    entry = manifest["int8"]
    assert entry["file"] == contract.INT8_FILE and entry["sha256"] == sha256_file(int8_model_dir / contract.INT8_FILE)
    assert 0.2 < entry["bytes"] / manifest["onnx_bytes"] < 0.35  # int8 weights: about a quarter of fp32's
    assert set(entry["calibration"]) == set(int8.CALIBRATION) and not set(int8.CALIBRATION) & set(int8.HELD_OUT)
    assert set(entry["held_out"]) == set(int8.HELD_OUT)
    # MidasNet_small's five "same" paddings and the shapes they read stay integer (bake/int8.py: keep_integer)
    assert entry["quantization"]["integer_rewiring"] == {"Shape": 10, "Pad": 5}
    # 7-bit weights (int8.WEIGHT_BITS, reduce_range): products sum exactly on every CPU, so the error holds anywhere
    assert entry["quantization"]["weight_bits"] == 7 == int8.WEIGHT_BITS and entry["sums"] == "exact"
    weights = [t for t in onnx.load(str(int8_model_dir / contract.INT8_FILE)).graph.initializer if t.data_type == 3]
    assert weights and max(np.abs(numpy_helper.to_array(t).astype(int)).max() for t in weights) <= 64
    assert entry["abs_rel"] == max(e["abs_rel"] for e in entry["held_out"].values()) >= 0
    assert 0 <= entry["delta1"] == min(e["delta1"] for e in entry["held_out"].values()) <= 1
    # the fp32 model is the one the plain bake writes
    fp32 = json.loads((baked_model_dir / "manifest.json").read_text())
    assert manifest["onnx_sha256"] == fp32["onnx_sha256"] and "int8" not in fp32


def test_the_int8_bake_prints_its_error_and_its_weights(int8_bake):
    """The build log says what the manifest records: int8's error against the gate, and 7-bit weights whose sums are
    exact on every CPU."""
    model_dir, printed = int8_bake
    entry = json.loads((model_dir / "manifest.json").read_text())["int8"]
    lines = {line.split(maxsplit=2)[1]: line.strip() for line in printed.splitlines() if line.startswith("  int8 ")}
    assert lines["vs"] == (
        f"int8 vs fp32      abs_rel {entry['abs_rel']:.4f}, delta1 {entry['delta1']:.4f} on held-out photographs "
        f"(beyond the default MAX_INT8_ABS_REL {contract.MAX_INT8_ABS_REL})"  # the test weights' error
    )
    bits, sums = entry["quantization"]["weight_bits"], entry["sums"]  # 7 and "exact" (the test above)
    assert lines["weights"] == (
        f"int8 weights      {bits}-bit: sums {sums} on this CPU, and on every CPU: the error holds wherever it runs"
    )


def _qdq_pad_graph(after_scale: float):
    """image → Q → DQ → Pad (value 0 through Q/DQ, as the quantiser writes it) → Q(after_scale) → DQ, and the
    Shape of the first DQ's output: what the quantiser leaves around MidasNet_small's "same" paddings."""
    from onnx import TensorProto, helper, numpy_helper

    def scalar(name, value, dtype):
        return numpy_helper.from_array(np.array(value, dtype=dtype), name)

    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xf"]),
        helper.make_node("Shape", ["xf"], ["shape"]),
        helper.make_node("Constant", [], ["zero"], value=scalar("zero_value", 0.0, np.float32)),
        helper.make_node("QuantizeLinear", ["zero", "s", "z"], ["zero_q"]),
        helper.make_node("DequantizeLinear", ["zero_q", "s", "z"], ["zero_f"]),
        helper.make_node("Pad", ["xf", "pads", "zero_f"], ["padded"], mode="constant"),
        helper.make_node("QuantizeLinear", ["padded", "s2", "z"], ["padded_q"]),
        helper.make_node("DequantizeLinear", ["padded_q", "s2", "z"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq_pad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 5])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("shape", TensorProto.INT64, None),
        ],
        [
            scalar("s", 0.05, np.float32),
            scalar("z", 100, np.uint8),
            scalar("s2", after_scale, np.float32),
            numpy_helper.from_array(np.array([0, 0, 0, 1, 0, 0, 2, 1], dtype=np.int64), "pads"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


@pytest.mark.parametrize(("after_scale", "rewired"), [(0.05, {"Shape": 1, "Pad": 1}), (0.07, {"Shape": 1, "Pad": 0})])
def test_keep_integer_pads_uint8_and_reads_shapes_without_dequantising_with_the_same_output(after_scale, rewired):
    model = _qdq_pad_graph(after_scale)
    x = np.random.default_rng(2).uniform(-5, 8, size=(1, 2, 4, 5)).astype(np.float32)
    before = _run(model, x)
    assert int8.keep_integer(model) == rewired
    after = _run(model, x)
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    producer = {output: node.op_type for node in model.graph.node for output in node.output}
    dequantized = {n.op_type for n in model.graph.node if n.input and producer.get(n.input[0]) == "DequantizeLinear"}
    # a Pad followed by a QuantizeLinear of other parameters is left as it was
    assert dequantized == (set() if rewired["Pad"] else {"Pad"})
    assert sum(n.op_type == "QuantizeLinear" for n in model.graph.node) == (1 if rewired["Pad"] else 3)


def test_aligned_errors_are_zero_for_a_scaled_and_shifted_copy_and_grow_with_noise():
    reference = np.random.default_rng(0).uniform(0.5, 2.0, size=(48, 64)).astype(np.float32)
    assert int8.aligned_errors(3 * reference - 0.25, reference) == pytest.approx((0.0, 1.0), abs=1e-6)
    noisy = reference + np.random.default_rng(1).normal(0, 0.3, size=reference.shape)
    abs_rel, delta1 = int8.aligned_errors(noisy, reference)
    assert 0.05 < abs_rel < 0.5 and 0.3 < delta1 < 1


def test_the_gate_refuses_the_test_weights_and_serves_fp32(int8_model_dir):
    abs_rel = json.loads((int8_model_dir / "manifest.json").read_text())["int8"]["abs_rel"]
    assert abs_rel > contract.MAX_INT8_ABS_REL  # random weights: their int8 error is far beyond any real model's
    model = DepthModel.load(int8_model_dir, precision="int8")
    assert model.precision == "fp32" and model.variant == "optimized"
    assert "beyond MAX_INT8_ABS_REL 0.02" in model.precision_note and f"{abs_rel:.4g}" in model.precision_note


def test_past_the_gate_int8_is_served_and_health_says_so(int8_model_dir):
    fp32 = DepthModel.load(int8_model_dir)
    model = DepthModel.load(int8_model_dir, precision="int8", max_int8_abs_rel=LAX)
    assert (model.precision, model.variant, model.precision_note) == ("int8", "int8", "")
    assert fp32.precision == "fp32" and not fp32.precision_note  # fp32 asked, fp32 served, nothing to say
    x = np.random.default_rng(5).standard_normal((1, 3, 96, 128), dtype=np.float32)
    ours, theirs = model.infer(x), fp32.infer(x)
    assert ours.shape == theirs.shape and np.isfinite(ours).all() and not np.array_equal(ours, theirs)
    settings = Settings(model_dir=str(int8_model_dir), model_precision="int8", max_int8_abs_rel=LAX, output_bucket="")
    assert local_client(DepthEstimator(settings, model), S3Store()).get("/health").json()["precision"] == "int8"
    assert local_client(DepthEstimator(settings, fp32), S3Store()).get("/health").json()["precision"] == "fp32"


def _int8_field(keys: tuple[str, ...], value):
    """A model-directory change: the manifest's int8 entry with the field at ``keys`` set to ``value``."""

    def change(manifest: dict) -> None:
        *parents, last = keys
        entry = manifest["int8"]
        for key in parents:
            entry = entry[key]
        entry[last] = value

    return lambda model_dir: edit_manifest(model_dir, change)


@pytest.mark.parametrize(
    ("spoil", "note"),
    [
        (lambda d: tamper(d / contract.INT8_FILE), "model.int8.onnx sha256"),
        (lambda d: flip_byte(d / contract.INT8_FILE, 5_000_000), "model.int8.onnx sha256"),
        (lambda d: (d / contract.INT8_FILE).unlink(), "model.int8.onnx is missing"),
        (lambda d: edit_manifest(d, lambda m: m["int8"].pop("sha256")), "int8 entry is malformed (KeyError"),
        (lambda d: edit_manifest(d, lambda m: m.pop("int8")), "the bake wrote no int8 model"),
        # the weights' bits and the sums decide where the error holds: a value no bake writes is refused, never
        # read as "fewer bits" (exact everywhere) nor as a CPU kind
        *[
            (_int8_field(("quantization", "weight_bits"), v), f"int8 entry is malformed (weight_bits {v!r}")
            for v in (0, -7, True, 9, 7.0, "7", None)
        ],
        *[(_int8_field(("sums",), v), f"int8 entry is malformed (sums {v!r}") for v in ("Exact", None, ["exact"])],
        (_int8_field(("quantization",), None), "int8 entry is malformed (AttributeError"),
    ],
)
def test_an_int8_model_that_fails_its_checks_falls_back_to_fp32(tmp_path, int8_model_dir, spoil, note):
    """As a misfit optimised graph does: the fp32 model, verified, and the reason in the log."""
    model_dir = copy_model(int8_model_dir, tmp_path / "m")
    spoil(model_dir)
    model = DepthModel.load(model_dir, precision="int8", max_int8_abs_rel=LAX)
    assert model.precision == "fp32" and note in model.precision_note


NO_VNNI = ["avx", "avx2", "avx512bw", "avx512f", "fma", "sse4_1", "sse4_2"]


def _as_baked(measured: str | None, weight_bits: int | None):
    """A manifest change: the int8 entry as a bake with ``weight_bits`` (None: a bake that did not record them, 8-bit)
    on a CPU whose sums were ``measured`` (None: not recorded) would have written it."""

    def change(manifest: dict) -> None:
        entry = manifest["int8"]
        entry.pop("sums") if measured is None else entry.update(sums=measured)
        if weight_bits is None:
            entry["quantization"].pop("weight_bits")
        else:
            entry["quantization"]["weight_bits"] = weight_bits

    return change


@pytest.mark.parametrize(
    ("measured", "weight_bits", "features", "served"),
    [
        ("exact", 7, NO_VNNI, "int8"),  # the bake's 7-bit weights: exact sums everywhere, the error holds anywhere
        ("exact", 8, NO_VNNI, "fp32"),  # 8-bit weights measured with VNNI, served where ORT's sums may saturate
        ("exact", 8, [*NO_VNNI, "avx512_vnni"], "int8"),
        ("saturating", 8, NO_VNNI, "int8"),
        ("saturating", 8, [*NO_VNNI, "avx512_vnni"], "int8"),
        (None, None, NO_VNNI, "fp32"),  # an older manifest: 8-bit weights, and no word of how its error was measured
    ],
)
def test_int8_is_served_only_where_the_bakes_error_holds(
    tmp_path, monkeypatch, int8_model_dir, measured, weight_bits, features, served
):
    """The gate's error is the bake CPU's for 8-bit weights: measured with exact int8 sums (VNNI, Arm), it says
    nothing of a CPU whose kernels saturate, so the function serves fp32 there and says why."""
    model_dir = copy_model(int8_model_dir, tmp_path / "m")
    edit_manifest(model_dir, _as_baked(measured, weight_bits))
    monkeypatch.setattr(contract, "cpu_features", lambda *_: sorted(features))
    model = DepthModel.load(model_dir, precision="int8", max_int8_abs_rel=LAX)
    assert model.precision == served
    if served == "fp32":
        here = "saturating"
        assert f"int8 sums are {measured or 'unknown'}; this CPU's are {here}" in model.precision_note
        assert "without VNNI" in model.precision_note
    else:
        assert model.precision_note == ""
