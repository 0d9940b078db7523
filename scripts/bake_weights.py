"""Bake the official MiDaS_small checkpoint into a verified ONNX model + manifest.json (build time only).

Usage:
    python scripts/bake_weights.py                                  # download the official release asset
    python scripts/bake_weights.py --checkpoint midas_v21_small_256.pt   # air-gapped: a local file
    python scripts/bake_weights.py --sha256 <hex>                   # pin the checkpoint's digest

Never uses torch.hub: the architecture is built here (scripts/midas_net.py, backbone from the geffnet package),
the weights come from a file or one plain HTTPS download. Every failure is one line on stderr and exit code 1;
nothing partial is left in the output directory or the download directory. A failed download names the ways
forward without network access: a local copy of the checkpoint, or the random test checkpoint for a demo.

The manifest records where the checkpoint came from: the URL, or a local file's name only (never a path on the
build machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python scripts/bake_weights.py` puts scripts/ first, not the repo
    sys.path.insert(0, str(ROOT))

from handler import contract  # noqa: E402  (dependency-free module shared with the runtime)
from handler.contract import sha256_file  # noqa: E402

DEFAULT_OUTPUT = ROOT / "layer" / "model"
DEFAULT_DOWNLOAD_DIR = ROOT / "layer" / "checkpoints"
OPSET = 18
# Verification inputs (H, W): square, landscape, portrait and an extreme aspect ratio, all multiples of 32.
VERIFY_SHAPES = ((256, 256), (192, 256), (256, 160), (64, 256))
# Largest |onnx - torch| allowed, relative to the torch output's range (max - min) on each input. float32 torch
# itself differs from a float64 run by ~1.5e-4 of the range on seeded random weights, so 1e-3 is tight but honest.
PARITY_TOLERANCE = 1e-3
_CHUNK = 1 << 20
# Appended to every failed download: what to do without network access (one line, like every bake error).
OFFLINE_HINT = (
    "without network access, bake a local copy of the checkpoint: --checkpoint PATH "
    "(make bake BAKE_CHECKPOINT=PATH); for an offline demo whose depth is meaningless, make the random test "
    "checkpoint and bake that: .venv/bin/python scripts/make_test_checkpoint.py /tmp/midas_test.pt, then "
    "make bake BAKE_CHECKPOINT=/tmp/midas_test.pt"
)


class BakeError(Exception):
    """A failure reported as one line and a non-zero exit."""


# --------------------------------------------------------------------------------------------- sources


def _progress(done: int, total: int | None, started: float, last: list[float]) -> None:
    now = time.monotonic()
    if now - last[0] < 0.5 and (total is None or done < total):
        return
    last[0] = now
    rate = done / max(now - started, 1e-6) / 1e6
    if total:
        pct = 100 * done / total
        bar = "#" * int(pct // 4)
        msg = f"\r  [{bar:<25}] {pct:5.1f}%  {done / 1e6:6.1f}/{total / 1e6:.1f} MB  {rate:5.1f} MB/s"
    else:
        msg = f"\r  {done / 1e6:6.1f} MB  {rate:5.1f} MB/s"
    end = "\n" if total and done >= total else ""
    print(msg, end=end, file=sys.stderr, flush=True)


def download(url: str, dest: Path, timeout: float = 30.0) -> Path:
    """Stream ``url`` to ``dest`` through a temp file in the same directory; nothing is left on failure."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BakeError(f"cannot create download directory {dest.parent}: {exc.strerror}") from None
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "midas-lambda-bake/1"})
    except ValueError as exc:
        raise BakeError(f"not a download URL: {url} ({exc})") from None
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    last, finished = [0.0], False  # when the progress bar was last drawn (0: not yet); whether dest is in place
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            print(f"downloading {url}", file=sys.stderr)
            done, started = 0, time.monotonic()
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                done += len(chunk)
                _progress(done, total, started, last)
            if total is not None and done != total:
                raise BakeError(f"download of {url} is incomplete: got {done} of {total} bytes; {OFFLINE_HINT}")
        tmp.replace(dest)
        finished = True
        return dest
    except urllib.error.HTTPError as exc:
        raise BakeError(f"download of {url} failed: HTTP {exc.code} {exc.reason}; {OFFLINE_HINT}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise BakeError(f"download of {url} failed: {reason}; {OFFLINE_HINT}") from None
    finally:
        if last[0] and not finished:
            print(file=sys.stderr)  # end the half-drawn progress bar: the error gets a line of its own
        tmp.unlink(missing_ok=True)


def resolve_checkpoint(checkpoint: Path | None, url: str, download_dir: Path) -> tuple[Path, str]:
    """Return (local checkpoint path, source string for the manifest: the URL, or the local file's name)."""
    if checkpoint is not None:
        if not checkpoint.is_file():
            raise BakeError(f"checkpoint not found: {checkpoint}")
        return checkpoint, recorded_source(str(checkpoint))
    dest = download_dir / Path(urllib.request.urlparse(url).path).name
    if dest.is_file():
        print(f"using previously downloaded {dest}", file=sys.stderr)
        return dest, url
    return download(url, dest), url


def recorded_source(source: str) -> str:
    """What the manifest records: a URL as given, a local path by its file name only. The path is the build
    machine's (a home directory, a CI workspace): meaningless where the model runs, and not the image's business."""
    return source if "://" in source else Path(source).name


def verify_digest(path: Path, expected: str | None) -> str:
    try:
        actual = sha256_file(path)
    except OSError as exc:
        raise BakeError(f"cannot read {path}: {exc.strerror or exc}") from None
    if expected is not None and actual != expected.lower():
        raise BakeError(f"sha256 mismatch for {path}: expected {expected.lower()}, got {actual}")
    return actual


# --------------------------------------------------------------------------------------------- model


def load_state_dict(path: Path) -> Mapping[str, object]:
    """Load an official-format checkpoint: a plain state dict, or ``{"model": state_dict, ...}``."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for garbage (UnpicklingError, RuntimeError, EOFError…)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BakeError(f"not a PyTorch checkpoint: {path} ({first[:160]})") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BakeError(f"not a MiDaS checkpoint: {path} holds no state dict of tensors")
    return obj


def _first(items: list[str], n: int = 5) -> str:
    more = f", … {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def build_model(state_dict: Mapping[str, object]):
    """MidasNet_small with the checkpoint loaded strictly; mismatches listed in one line."""
    from scripts.midas_net import MidasNetSmall

    model = MidasNetSmall()
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} keys ({_first(missing)})")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} keys ({_first(unexpected)})")
    if wrong_shape:
        problems.append(f"{len(wrong_shape)} wrong shapes ({_first(wrong_shape, 3)})")
    if problems:
        raise BakeError("checkpoint does not match MidasNet_small: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


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


# --------------------------------------------------------------------------------------------- output


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"python": platform.python_version()} | {
        name: version(name) for name in ("torch", "geffnet", "onnx", "onnxruntime", "numpy")
    }


def _make_staging_dir(output: Path) -> Path:
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp"))
        staging.chmod(0o755)  # mkdtemp makes 0700; Lambda runs the image as a non-root user that must read it
        return staging
    except OSError as exc:
        raise BakeError(f"output directory {output} is not writable: {exc.strerror or exc}") from None


def _publish(staging: Path, output: Path) -> None:
    """Swap ``staging`` into ``output`` by renames (same filesystem), keeping the old one until the new is in."""
    old = None
    try:
        if output.exists():
            old = output.with_name(f".{output.name}.old-{os.getpid()}")
            output.rename(old)
        staging.rename(output)
    except OSError as exc:
        if old is not None and not output.exists():
            old.rename(output)
        raise BakeError(f"cannot write {output}: {exc.strerror or exc}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def bake(checkpoint: Path, source: str, output: Path, expected_sha256: str | None = None) -> dict:
    """Checkpoint → MidasNet_small → ONNX → parity check → ``output/``: model.onnx, the optimised graph (and its
    weights), manifest.json.

    Args:
        checkpoint: the local checkpoint file (downloaded or given).
        source: where it came from, for the manifest: a URL is recorded as is, a local path by its file name.
        output: the model directory, replaced as a whole only once everything is verified.
        expected_sha256: when given, the bake fails unless the checkpoint has this digest.
    """
    checkpoint_sha256 = verify_digest(checkpoint, expected_sha256)
    model = build_model(load_state_dict(checkpoint))
    staging = _make_staging_dir(output)
    try:
        onnx_path = staging / contract.ONNX_FILE
        export_onnx(model, onnx_path)
        parity = verify_parity(model, onnx_path)
        manifest = {
            "model": contract.MODEL_NAME,
            "release": contract.MODEL_RELEASE,
            "source": recorded_source(source),
            "checkpoint_sha256": checkpoint_sha256,
            "checkpoint_bytes": checkpoint.stat().st_size,
            "onnx_file": contract.ONNX_FILE,
            "onnx_sha256": sha256_file(onnx_path),
            "onnx_bytes": onnx_path.stat().st_size,
            "opset": OPSET,
            "input": {"name": contract.INPUT_NAME, "shape": [1, 3, "height", "width"], "dtype": "float32"},
            "output": {"name": contract.OUTPUT_NAME, "shape": [1, "height", "width"], "dtype": "float32"},
            "preprocessing": contract.preprocessing(),
            "versions": _versions(),
            "parity": parity,
            "optimized": write_optimized(onnx_path, staging),
        }
        try:
            (staging / contract.MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        except OSError as exc:
            raise BakeError(f"cannot write {output}: {exc.strerror or exc}") from None
        _publish(staging, output)
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="local checkpoint in the official format (air-gapped builds)")
    parser.add_argument("--url", default=contract.OFFICIAL_CHECKPOINT_URL, help="checkpoint URL (default: official)")
    parser.add_argument("--sha256", help="expected sha256 of the checkpoint; the bake fails if it differs")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help=f"output directory (default {DEFAULT_OUTPUT})"
    )
    parser.add_argument(
        "--download-dir", type=Path, default=DEFAULT_DOWNLOAD_DIR, help="where a downloaded checkpoint is kept"
    )
    args = parser.parse_args(argv)
    if args.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", args.sha256):
        parser.error(f"--sha256 must be 64 hex digits, got {args.sha256!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        checkpoint, source = resolve_checkpoint(args.checkpoint, args.url, args.download_dir)
        manifest = bake(checkpoint, source, args.output, args.sha256)
    except BakeError as exc:
        print(f"bake_weights: error: {exc}", file=sys.stderr)
        return 1
    parity = manifest["parity"]
    print(
        f"baked {manifest['model']} → {args.output / contract.ONNX_FILE}\n"
        f"  checkpoint sha256 {manifest['checkpoint_sha256']}\n"
        f"  onnx sha256       {manifest['onnx_sha256']}\n"
        f"  parity vs torch   max abs {parity['max_abs_error']:.3g}, max rel {parity['max_rel_error']:.3g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
