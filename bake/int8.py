"""int8: a static quantisation (QDQ, per-channel weights) of model.onnx, calibrated on photographs kept in
bake/calibration/, and its error against the fp32 model on held-out photographs, which the runtime's fidelity gate
reads from the manifest (MAX_INT8_ABS_REL).

The choices (docs/performance.md#int8-behind-a-fidelity-gate has the variants measured): uint8 activations with
int8 weights, the pair MLAS's fastest integer kernels take on CPUs with or without VNNI (uint8 weights fall back to
16-bit products without VNNI); weights in 7 bits (the quantiser's reduce_range: -64..64), so that the sums of
products are exact on every CPU (x86 without VNNI adds pairs of them in 16 bits, which 8-bit weights can saturate)
and the error the bake measures holds wherever the model runs, at the speed of 8-bit weights on a VNNI CPU; QDQ
rather than QOperator, so that the bilinear Resize of the decoder stays float (ONNX Runtime's uint8 Resize is far
slower); and, after the quantiser, the integer-only rewiring of :func:`keep_integer`, which leaves ONNX Runtime fewer
tensors to dequantise."""

from __future__ import annotations

from pathlib import Path

from bake import BakeError
from handler import contract
from handler.contract import sha256_file

CALIBRATION_DIR = Path(__file__).resolve().parent / "calibration"
# Calibration and held-out photographs (bake/calibration/README.md: sources and licences); no photo is in both.
CALIBRATION = ("astronaut.jpg", "rocket.jpg", "hubble_deep_field.jpg")
HELD_OUT = ("chelsea.jpg", "coffee.jpg")
# delta1's threshold: the share of pixels whose aligned value is within this factor of the reference.
DELTA1_RATIO = 1.25
# The weights' bits: 7 (reduce_range), so that no sum of a pair of uint8 x int8 products passes 16 bits (contract).
WEIGHT_BITS = 7


def net_input(photo: Path):  # noqa: ANN201  (a NumPy array)
    """The photograph as the function feeds it to the model (handler.preprocess, the MiDaS small transform)."""
    import numpy as np
    from PIL import Image

    from handler.preprocess import to_net_input

    with Image.open(photo) as img:
        return to_net_input(np.asarray(img.convert("RGB")))


def aligned_errors(prediction, reference) -> tuple[float, float]:  # noqa: ANN001
    """(abs_rel, delta1) of ``prediction`` against ``reference`` (relative inverse depth, same shape) after the
    least-squares scale and shift that best align the prediction to the reference (MiDaS's evaluation), over the
    pixels where the reference is positive."""
    import numpy as np

    ref, pred = reference.astype(np.float64).ravel(), prediction.astype(np.float64).ravel()
    valid = ref > 1e-6 * max(float(ref.max()), 1e-30)
    if not valid.any():
        raise BakeError("the fp32 model predicts no positive inverse depth on a held-out photograph")
    ref, pred = ref[valid], pred[valid]
    (scale, shift), *_ = np.linalg.lstsq(np.stack([pred, np.ones_like(pred)], axis=1), ref, rcond=None)
    aligned = np.maximum(scale * pred + shift, 1e-30)
    abs_rel = float(np.mean(np.abs(aligned - ref) / ref))
    delta1 = float(np.mean(np.maximum(aligned / ref, ref / aligned) < DELTA1_RATIO))
    return abs_rel, delta1


def write_int8(onnx_path: Path, output_dir: Path) -> dict:
    """``output_dir/model.int8.onnx`` quantised from ``onnx_path``, and the manifest's ``int8`` entry: its file,
    sha256, size, and its error against the fp32 model on each held-out photograph (the gate reads the worst)."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Photos(CalibrationDataReader):
        def __init__(self) -> None:
            self._inputs = iter([{contract.INPUT_NAME: net_input(CALIBRATION_DIR / name)} for name in CALIBRATION])

        def get_next(self) -> dict | None:
            return next(self._inputs, None)

    path = output_dir / contract.INT8_FILE
    ort.set_default_logger_severity(3)  # the quantiser's sessions warn of every initializer they drop
    try:
        quantize_static(
            str(onnx_path),
            str(path),
            Photos(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            reduce_range=WEIGHT_BITS == 7,
        )
    except Exception as exc:  # the quantiser raises many types; one line is what the build log needs
        raise BakeError(f"int8 quantisation failed: {str(exc).strip().splitlines()[0][:200]}") from None
    quantised = onnx.load(str(path))
    rewired = keep_integer(quantised)
    onnx.save(quantised, str(path))
    fp32 = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    int8 = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    held_out = {}
    for name in HELD_OUT:
        feed = {contract.INPUT_NAME: net_input(CALIBRATION_DIR / name)}
        (reference,) = fp32.run([contract.OUTPUT_NAME], feed)
        (prediction,) = int8.run([contract.OUTPUT_NAME], feed)
        if not np.isfinite(prediction).all():
            raise BakeError(f"the int8 model predicts non-finite values on {name}")
        abs_rel, delta1 = aligned_errors(prediction, reference)
        held_out[name] = {"abs_rel": round(abs_rel, 6), "delta1": round(delta1, 6)}
    return {
        "file": contract.INT8_FILE,
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "quantization": {
            "format": "QDQ",
            "per_channel": True,
            "activations": "uint8",
            "weights": "int8",
            "weight_bits": WEIGHT_BITS,
            "integer_rewiring": rewired,
        },
        "calibration": list(CALIBRATION),
        # how this CPU's int8 kernels added up products: the error below holds where the runtime's do it as exactly
        "sums": contract.int8_sums(contract.cpu_features(), WEIGHT_BITS),
        # the worst held-out photograph: what the runtime's gate compares with MAX_INT8_ABS_REL
        "abs_rel": max(errors["abs_rel"] for errors in held_out.values()),
        "delta1": min(errors["delta1"] for errors in held_out.values()),
        "held_out": held_out,
    }


def keep_integer(model) -> dict[str, int]:  # noqa: ANN001  (an onnx.ModelProto, changed in place)
    """Rewire what the quantiser leaves in float for no reason, with the same output bit for bit; returns how many
    nodes of each kind were rewired.

    - A ``Shape`` that reads a ``DequantizeLinear``'s output reads its quantised input instead (the same shape):
      MidasNet_small's "same" paddings take the shapes of activations, and ONNX Runtime would otherwise dequantise
      whole tensors only to read their shapes.
    - A constant ``Pad`` between a ``DequantizeLinear`` and a ``QuantizeLinear`` of the same scale and zero point
      pads the uint8 tensor directly with the quantised pad value (padding commutes with an affine map whose
      parameters are equal on both sides), instead of dequantising, padding and quantising again.
    """
    import numpy as np
    from onnx import numpy_helper

    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    producer = {output: node for node in model.graph.node for output in node.output}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def constant(name: str) -> np.ndarray | None:
        if name in initializers:
            return numpy_helper.to_array(initializers[name])
        node = producer.get(name)
        if node is not None and node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            return numpy_helper.to_array(node.attribute[0].t)
        return None

    def float_constant(name: str) -> float | None:
        """A scalar given as a constant, or as a constant through QuantizeLinear/DequantizeLinear (as the quantiser
        wraps a Pad's value); only 0 is taken through them, the one value both keep exactly."""
        value = constant(name)
        if value is not None:
            return float(value.reshape(-1)[0]) if value.size == 1 else None
        node = producer.get(name)
        if node is not None and node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            inner = float_constant(node.input[0])
            return inner if inner == 0.0 else None
        return None

    def same_quantization(dequantize, quantize) -> bool:
        if len(dequantize.input) < 3 or len(quantize.input) < 3:
            return False
        pairs = [(constant(a), constant(b)) for a, b in zip(dequantize.input[1:3], quantize.input[1:3], strict=True)]
        return all(a is not None and b is not None and np.array_equal(a, b) for a, b in pairs)

    rewired = {"Shape": 0, "Pad": 0}
    for node in list(model.graph.node):
        source = producer.get(node.input[0]) if node.input else None
        if source is None or source.op_type != "DequantizeLinear":
            continue
        if node.op_type == "Shape":
            node.input[0] = source.input[0]
            rewired["Shape"] += 1
            continue
        after = consumers.get(node.output[0], [])
        mode = next((a.s for a in node.attribute if a.name == "mode"), b"constant")
        if (
            node.op_type != "Pad"
            or mode != b"constant"
            or len(after) != 1
            or after[0].op_type != "QuantizeLinear"
            or not same_quantization(source, after[0])
            or any(output in (o.name for o in model.graph.output) for output in node.output)
        ):
            continue
        value = float_constant(node.input[2]) if len(node.input) > 2 and node.input[2] else 0.0
        if value is None:
            continue
        scale, zero_point = constant(source.input[1]), constant(source.input[2])
        if scale.size != 1:
            continue
        info = np.iinfo(zero_point.dtype)
        quantised = np.clip(np.round(value / scale) + zero_point.astype(np.int64), info.min, info.max)
        pad_value = numpy_helper.from_array(quantised.astype(zero_point.dtype).reshape(()), f"{node.name}_pad_value")
        model.graph.initializer.append(pad_value)
        while len(node.input) < 3:
            node.input.append("")
        node.input[0], node.input[2] = source.input[0], pad_value.name
        node.output[0] = after[0].output[0]  # the Pad now writes what the QuantizeLinear wrote
        model.graph.node.remove(after[0])
        rewired["Pad"] += 1
    _drop_unread(model)
    return rewired


def _drop_unread(model) -> None:  # noqa: ANN001
    """Remove the nodes none of whose outputs is read any more (ONNX Runtime would still run them)."""
    outputs = {output.name for output in model.graph.output}
    while True:
        read = {name for node in model.graph.node for name in node.input} | outputs
        unread = [node for node in model.graph.node if not any(output in read for output in node.output)]
        if not unread:
            return
        for node in unread:
            model.graph.node.remove(node)
