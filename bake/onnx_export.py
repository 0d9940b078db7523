"""The ONNX side of the bake: export MidasNet_small, check it against torch on several shapes, and write ONNX
Runtime's optimised graph of it, checked against the portable one."""

from __future__ import annotations

import platform
import warnings
from pathlib import Path

from bake import BakeError
from handler import contract  # dependency-free module shared with the runtime
from handler.contract import sha256_file

OPSET = 18
# Verification inputs (H, W): square, landscape, portrait and an extreme aspect ratio, all multiples of 32.
VERIFY_SHAPES = ((256, 256), (192, 256), (256, 160), (64, 256))
# Largest |onnx - torch| allowed, relative to the torch output's range (max - min) on each input. float32 torch
# itself differs from a float64 run by ~1.5e-4 of the range on seeded random weights, so 1e-3 is tight but honest.
PARITY_TOLERANCE = 1e-3


def export_onnx(model, path: Path) -> None:
    """TorchScript-based export (deterministic bytes) with dynamic height and width."""
    import torch

    dummy = torch.zeros(1, 3, contract.NET_SIZE, contract.NET_SIZE)
    with torch.no_grad(), warnings.catch_warnings():
        # Expected: the legacy exporter is deprecated (kept for byte-reproducible output), and geffnet's
        # Conv2dSameExport fixes its TF "SAME" padding at trace time, which is exact for every input whose
        # sides are multiples of 32 (the parity check below runs several such shapes to prove it).
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        try:
            torch.onnx.export(
                model,
                (dummy,),
                str(path),
                dynamo=False,
                opset_version=OPSET,
                input_names=[contract.INPUT_NAME],
                output_names=[contract.OUTPUT_NAME],
                dynamic_axes={
                    contract.INPUT_NAME: {2: "height", 3: "width"},
                    contract.OUTPUT_NAME: {1: "height", 2: "width"},
                },
                do_constant_folding=True,
            )
        except Exception as exc:  # the exporter raises many types; one line is what the build log needs
            raise BakeError(f"ONNX export failed: {str(exc).strip().splitlines()[0][:200]}") from None
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise BakeError(f"the exported model fails onnx.checker: {str(exc).splitlines()[0]}") from None


def verify_parity(model, onnx_path: Path, shapes=VERIFY_SHAPES, tolerance: float = PARITY_TOLERANCE) -> dict:
    """Run torch and ONNX Runtime on seeded inputs of several shapes; fail beyond ``tolerance``."""
    import numpy as np
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst_abs, worst_rel, per_shape = 0.0, 0.0, []
    for h, w in shapes:
        x = rng.standard_normal((1, 3, h, w), dtype=np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        (actual,) = session.run(None, {contract.INPUT_NAME: x})
        if actual.shape != expected.shape:
            raise BakeError(f"parity failed at {h}x{w}: onnx shape {actual.shape} != torch shape {expected.shape}")
        abs_err = float(np.max(np.abs(actual - expected)))
        rel_err = abs_err / max(float(expected.max() - expected.min()), 1e-12)
        per_shape.append({"shape": [h, w], "max_abs_error": abs_err, "max_rel_error": rel_err})
        worst_abs, worst_rel = max(worst_abs, abs_err), max(worst_rel, rel_err)
        if not np.isfinite(actual).all() or rel_err > tolerance:
            raise BakeError(
                f"parity failed at {h}x{w}: max abs error {abs_err:.3g}, max rel error {rel_err:.3g} "
                f"(tolerance {tolerance:g} of the output range)"
            )
    return {"tolerance": tolerance, "max_abs_error": worst_abs, "max_rel_error": worst_rel, "inputs": per_shape}


def write_optimized(onnx_path: Path, output_dir: Path) -> dict:
    """ONNX Runtime's fully optimised graph of ``onnx_path`` (fused, blocked NCHWc layout for this CPU) →
    ``output_dir/model.optimized.onnx`` and its weights ``model.optimized.data``, checked to give the portable
    model's output on the probe input.

    The runtime loads it in about half the time, where ORT's version and the CPU's vector features are this bake's
    (recorded here), and only once its own run of the probe matches the portable output recorded here."""
    import base64

    import numpy as np
    import onnxruntime as ort

    path, data = output_dir / contract.OPTIMIZED_FILE, output_dir / contract.OPTIMIZED_DATA_FILE
    options = contract.session_options()
    options.optimized_model_filepath = str(path)
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", data.name)
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    portable = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    optimised = ort.InferenceSession(
        str(path), contract.session_options(pre_optimized=True), providers=["CPUExecutionProvider"]
    )
    feed = {contract.INPUT_NAME: contract.probe_input()}
    (expected,) = portable.run([contract.OUTPUT_NAME], feed)
    (actual,) = optimised.run([contract.OUTPUT_NAME], feed)
    error = float(np.max(np.abs(actual - expected)))
    if not error <= contract.PROBE_TOLERANCE * max(float(np.ptp(expected)), 1e-12):
        raise BakeError(f"the optimised graph differs from the portable one by {error:.3g} on the probe input")
    return {
        "file": contract.OPTIMIZED_FILE,
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "data_file": contract.OPTIMIZED_DATA_FILE,
        "data_sha256": sha256_file(data),
        "data_bytes": data.stat().st_size,
        "onnxruntime": ort.__version__,
        "machine": platform.machine(),
        "cpu_features": contract.cpu_features(),
        "probe_shape": list(contract.PROBE_SHAPE),
        "probe_output": base64.b64encode(expected.astype("<f4").tobytes()).decode(),
    }


# Weights smaller than this stay in the frame: cutting them out saves nothing worth a manifest entry.
FRAME_MIN_PIECE_BYTES = 4096
NCHWC_BLOCKS = (16, 8, 4)


def _blocked_match(weight, candidates: dict, data: bytes):
    """(name, layout, block) of the optimised graph's tensor that holds ``weight`` exactly, or None."""
    import numpy as np

    want = weight.tobytes()
    tries = [("plain", 1)] + [(layout, block) for layout in contract.BLOCK_LAYOUTS[1:] for block in NCHWC_BLOCKS]
    for name, (offset, dims) in candidates.items():
        padding = np.subtract(dims, weight.shape) if len(dims) == weight.ndim else None
        if padding is None or padding.min() < 0 or padding.max() >= max(NCHWC_BLOCKS):
            continue
        blocked = contract.blocked_tensor(data, offset, dims)
        for layout, block in tries:
            try:
                if contract.unblock(blocked, layout, block, weight.shape).tobytes() == want:
                    return name, layout, block
            except ValueError:  # dims that are no multiple of this block: not this layout
                continue
    return None


def write_portable_frame(onnx_path: Path, output_dir: Path, optimized: dict, onnx_sha256: str) -> dict:
    """``output_dir/model.onnx.frame``: model.onnx without the weights the optimised graph holds too, and where each
    of them is there; checked to rebuild model.onnx (whose sha256 is ``onnx_sha256``) byte for byte
    (:func:`contract.rebuild_portable`)."""
    import hashlib

    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(output_dir / optimized["file"]), load_external_data=False).graph
    candidates = {}
    for tensor in graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL and tensor.data_type == onnx.TensorProto.FLOAT:
            info = {entry.key: entry.value for entry in tensor.external_data}
            candidates[tensor.name] = (int(info.get("offset", 0)), tuple(tensor.dims))
    data = (output_dir / optimized["data_file"]).read_bytes()
    portable = onnx_path.read_bytes()
    pieces, frame, cut = [], bytearray(), 0
    for tensor in onnx.load_from_string(portable).graph.initializer:
        if tensor.data_type != onnx.TensorProto.FLOAT or len(tensor.raw_data) < FRAME_MIN_PIECE_BYTES:
            continue
        weight = numpy_helper.to_array(tensor)
        match = _blocked_match(weight, candidates, data)
        at = portable.find(tensor.raw_data, cut)
        if match is None or at < 0:
            continue
        name, layout, block = match
        frame += portable[cut:at]
        cut = at + len(tensor.raw_data)
        offset, dims = candidates[name]
        pieces.append(
            {"at": at, "shape": list(weight.shape), "offset": offset, "blocked": list(dims), "layout": layout}
            | {"block": block}
        )
    frame += portable[cut:]
    path = output_dir / contract.PORTABLE_FRAME_FILE
    path.write_bytes(frame)
    entry = {"file": path.name, "bytes": len(frame), "pieces": pieces}
    rebuilt = contract.rebuild_portable(output_dir, optimized | {"portable_frame": entry})
    if hashlib.sha256(rebuilt).hexdigest() != onnx_sha256:
        raise BakeError("model.onnx rebuilt from its frame and the optimised weights differs from model.onnx")
    return entry
