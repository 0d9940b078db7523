"""int8: a static quantisation (QDQ, per-channel weights) of model.onnx, calibrated on photographs kept in
bake/calibration/, and its error against the fp32 model on held-out photographs, which the runtime's fidelity gate
reads from the manifest (MAX_INT8_ABS_REL)."""

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
        )
    except Exception as exc:  # the quantiser raises many types; one line is what the build log needs
        raise BakeError(f"int8 quantisation failed: {str(exc).strip().splitlines()[0][:200]}") from None
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
        "quantization": {"format": "QDQ", "per_channel": True, "activations": "uint8", "weights": "int8"},
        "calibration": list(CALIBRATION),
        # the worst held-out photograph: what the runtime's gate compares with MAX_INT8_ABS_REL
        "abs_rel": max(errors["abs_rel"] for errors in held_out.values()),
        "delta1": min(errors["delta1"] for errors in held_out.values()),
        "held_out": held_out,
    }
