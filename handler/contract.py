"""The MiDaS_small model contract shared by the bake (which records it) and the runtime (which checks it).

Dependency-free on purpose: the bake stage imports it without the runtime's libraries.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MODEL_NAME = "MiDaS_small"
MODEL_RELEASE = "isl-org/MiDaS v2.1 midas_v21_small_256"
OFFICIAL_CHECKPOINT_URL = "https://github.com/isl-org/MiDaS/releases/download/v2_1/midas_v21_small_256.pt"

ONNX_FILE = "model.onnx"
# The same graph after ONNX Runtime's full optimisation on the bake's CPU (fused, in ORT's blocked NCHWc layout):
# nothing left to optimise at load (docs/performance.md), but valid only where the CPU's vector features and ORT's
# version are the bake's.
OPTIMIZED_FILE = "model.optimized.onnx"
# Its weights, apart from the graph: ORT maps them from the file instead of copying them.
OPTIMIZED_DATA_FILE = "model.optimized.data"
# model.onnx without the bytes of the weights the optimised graph also holds (only reordered into NCHWc blocks): the
# image ships this frame instead of model.onnx, so its weights are there once, and the runtime rebuilds model.onnx,
# byte for byte (its sha256 checked), from the frame and the optimised weights when the optimised graph does not fit.
PORTABLE_FRAME_FILE = "model.onnx.frame"
# The bake's static int8 quantisation of model.onnx (--precision int8), served only when MODEL_PRECISION=int8 and its
# recorded error against the fp32 model on held-out photographs (manifest "int8" "abs_rel") is within
# MAX_INT8_ABS_REL (default below).
INT8_FILE = "model.int8.onnx"
MAX_INT8_ABS_REL = 0.02
# How ONNX Runtime's uint8 x int8 kernels add up products depends on the CPU: on x86 without VNNI they add pairs of
# products in 16 bits (vpmaddubsw), which 8-bit weights can saturate (2 x 255 x 127 > 32 767); with VNNI (vpdpbusd)
# and on Arm the sums are exact, and with 7-bit weights (the bake's: 2 x 255 x 64 < 32 767) they are exact on every
# CPU. So the error of an 8-bit-weight model is the CPU's too: measured with saturating kernels it holds where they
# are exact (saturation only adds error), not the reverse (docs/performance.md#int8-on-another-cpu).
INT8_EXACT_FEATURES = frozenset({"avx512_vnni", "avx_vnni"})
X86_FEATURES = frozenset({"sse4_1", "sse4_2", "avx", "avx2"})
# What a bake records as int8.sums (int8_sums), and the bits its weights have had (int8.quantization.weight_bits):
# 8 before reduce_range (a bake that did not record them), 7 since.
INT8_SUMS = ("exact", "saturating", "unknown")
INT8_WEIGHT_BITS = (7, 8)
PRECISIONS = ("fp32", "int8")
# A seeded input both the bake and the runtime run through the optimised graph: it must give the portable
# model's output (recorded by the bake) within this fraction of the output's range, or the runtime falls back.
PROBE_SHAPE = (1, 3, 64, 64)
PROBE_TOLERANCE = 1e-4
# The CPU features that decide which kernels (and which NCHWc block size) ORT picks.
VECTOR_FEATURES = frozenset(
    {
        "sse4_1",
        "sse4_2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512dq",
        "avx512vl",
        "avx512_vnni",
        "avx512_bf16",
        "avx_vnni",
        "amx_tile",
        "amx_int8",
        "amx_bf16",
        "asimd",
        "asimddp",
        "asimdhp",
        "sve",
        "sve2",
        "i8mm",
        "bf16",
    }
)
MANIFEST_FILE = "manifest.json"
# Test weights (bake/random_checkpoint.py) carry this key in the checkpoint, its value saying what they are; the bake
# records it in the manifest (``test_weights``, ``test_weights_reason``), and everything a person reads of a model
# baked from them says TEST_WEIGHTS_WARNING: random blobs must not pass for a broken product.
TEST_WEIGHTS_KEY = "midas_lambda_test_weights"
TEST_WEIGHTS_WARNING = "test weights: the depth is meaningless"
# Where the image puts the baked model (layer/Dockerfile), and so the function's default MODEL_DIR.
IMAGE_MODEL_DIR = "/opt/ml/model"
INPUT_NAME = "image"
OUTPUT_NAME = "depth"

# Upstream small_transform: Resize(256, 256, keep_aspect_ratio=True, ensure_multiple_of=32,
# resize_method="upper_bound", cv2.INTER_CUBIC) on the float image, then ImageNet normalisation.
NET_SIZE = 256
MULTIPLE_OF = 32
RESIZE_METHOD = "upper_bound"
INTERPOLATION = "cubic"
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def preprocessing() -> dict[str, object]:
    """The preprocessing constants as recorded in manifest.json."""
    return {
        "net_size": NET_SIZE,
        "multiple_of": MULTIPLE_OF,
        "resize_method": RESIZE_METHOD,
        "keep_aspect_ratio": True,
        "interpolation": INTERPOLATION,
        "scale": "1/255",
        "mean": list(MEAN),
        "std": list(STD),
        "channel_order": "RGB",
        "layout": "NCHW",
    }


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 4 MB chunks (the bake records it, the runtime checks it)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """This CPU's vector features that matter to ORT's kernels (x86 "flags", Arm "Features"), sorted."""
    try:
        text = cpuinfo.read_text(errors="replace")  # the flags are ASCII; nothing else in it may stop a start
    except OSError:
        return []
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return sorted(VECTOR_FEATURES.intersection(value.split()))
    return []


def int8_sums(features: list[str], weight_bits: int = 8) -> str:
    """How ORT's uint8 x int8 kernels add up products of ``weight_bits``-bit weights on a CPU with these vector
    features (:func:`cpu_features`): "exact", "saturating" (8-bit weights on x86 without VNNI), or "unknown"."""
    found = set(features)
    if weight_bits <= 7:  # a pair of products fits 16 bits: no kernel saturates
        return "exact"
    if not found:
        return "unknown"
    if found & INT8_EXACT_FEATURES or not found & X86_FEATURES:
        return "exact"
    return "saturating"


def int8_error_holds(measured: str, here: str) -> bool:
    """Whether int8's error, measured by the bake with ``measured`` sums (:func:`int8_sums`), holds on a CPU whose
    sums are ``here``: wherever they are exact, and anywhere when they were measured saturating."""
    return here == "exact" or measured == "saturating"


def probe_input():  # noqa: ANN201  (a NumPy array; NumPy is imported only when called: the bake stage's contract)
    """The seeded probe input (:data:`PROBE_SHAPE`), the same on every machine."""
    import numpy as np

    return np.random.default_rng(0).standard_normal(PROBE_SHAPE, dtype=np.float32)


def session_options(threads: int = 0, spinning: bool = True, pre_optimized: bool = False):  # noqa: ANN201
    """ONNX Runtime session options of the function (ORT imported when called): sequential, ``threads`` intra-op
    threads (0 = ORT's default), all graph optimisations, or none for :data:`OPTIMIZED_FILE` (already applied)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = level.ORT_DISABLE_ALL if pre_optimized else level.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Spinning is only safe because NumPy's BLAS is single-threaded (handler/__init__.py): beside a second
    # thread pool on the same cores, the spinning threads would take the time that pool needs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return options


# How the optimised graph stores a portable weight: unchanged (biases padded to the block), or a convolution filter
# in one of ORT's NCHWc blocked layouts (MLAS: [O/B][I/B][H][W][Bi][Bo] or [O/B][I][H][W][Bo]), padded with zeros.
BLOCK_LAYOUTS = ("plain", "OIHWBiBo", "OIHWBo")


def unblock(blocked, layout: str, block: int, shape):  # noqa: ANN001, ANN201  (NumPy arrays, imported by the caller)
    """The portable weight of ``shape`` held in ``blocked`` (the optimised graph's tensor, its padded dims) in
    ``layout`` (:data:`BLOCK_LAYOUTS`) with NCHWc block size ``block``; a C-contiguous array."""
    import numpy as np

    if layout == "plain":
        return np.ascontiguousarray(blocked.reshape(-1)[: int(np.prod(shape))].reshape(shape))
    o, i, h, w = blocked.shape
    if layout == "OIHWBiBo":
        full = blocked.reshape(o // block, i // block, h, w, block, block).transpose(0, 5, 1, 4, 2, 3)
    elif layout == "OIHWBo":
        full = blocked.reshape(o // block, i, h, w, block).transpose(0, 4, 1, 2, 3)
    else:
        raise ValueError(f"unknown block layout {layout!r}")
    return np.ascontiguousarray(full.reshape(o, i, h, w)[: shape[0], : shape[1]])


def blocked_tensor(data: bytes, offset: int, dims):  # noqa: ANN001, ANN201  (NumPy, imported when called)
    """The optimised graph's float32 tensor of ``dims`` at ``offset`` in its weights file's ``data`` (a view)."""
    import numpy as np

    return np.frombuffer(data, dtype="<f4", count=int(np.prod(dims)), offset=offset).reshape(dims)


def rebuild_portable(model_dir: Path, optimized: dict) -> bytes:
    """model.onnx's bytes from :data:`PORTABLE_FRAME_FILE` and the optimised graph's weights, as the bake's
    ``optimized["portable_frame"]`` entry says: each piece is a weight cut out of model.onnx at ``at``, held by
    the optimised data file at ``offset`` as a ``blocked`` tensor. The caller checks the result's sha256."""
    frame = (model_dir / optimized["portable_frame"]["file"]).read_bytes()
    data = (model_dir / optimized["data_file"]).read_bytes()
    out, used = bytearray(), 0
    for piece in optimized["portable_frame"]["pieces"]:
        take = piece["at"] - len(out)
        if take < 0 or used + take > len(frame):
            raise ValueError(f"a piece at {piece['at']} lies outside the frame")
        out += frame[used : used + take]
        used += take
        blocked = blocked_tensor(data, piece["offset"], piece["blocked"])
        out += unblock(blocked, piece["layout"], piece["block"], piece["shape"]).tobytes()
    out += frame[used:]
    return bytes(out)
