"""The whole bake: checkpoint → MidasNet_small → ONNX → parity check → a model directory (model.onnx, the optimised
graph and its weights, the frame that rebuilds model.onnx from them, manifest.json), published only once everything
is verified; nothing partial is left."""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from pathlib import Path

from bake import BakeError
from bake.checkpoint import build_model, load_checkpoint, recorded_source, verify_digest
from bake.onnx_export import OPSET, export_onnx, verify_parity, write_optimized, write_portable_frame
from handler import contract
from handler.contract import sha256_file


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


def bake(
    checkpoint: Path, source: str, output: Path, expected_sha256: str | None = None, *, int8: bool = False
) -> dict:
    """Checkpoint → MidasNet_small → ONNX → parity check → ``output/``: model.onnx, the optimised graph (and its
    weights), manifest.json.

    Args:
        checkpoint: the local checkpoint file (downloaded or given).
        source: where it came from, for the manifest: a URL is recorded as is, a local path by its file name.
        output: the model directory, replaced as a whole only once everything is verified.
        expected_sha256: when given, the bake fails unless the checkpoint has this digest.
        int8: also write model.int8.onnx (bake/int8.py) and record its error against fp32 under "int8".
    """
    checkpoint_sha256 = verify_digest(checkpoint, expected_sha256)
    state, test_weights = load_checkpoint(checkpoint)
    model = build_model(state)
    staging = _make_staging_dir(output)
    try:
        onnx_path = staging / contract.ONNX_FILE
        export_onnx(model, onnx_path)
        parity = verify_parity(model, onnx_path)
        onnx_sha256 = sha256_file(onnx_path)
        optimized = write_optimized(onnx_path, staging)
        optimized["portable_frame"] = write_portable_frame(onnx_path, staging, optimized, onnx_sha256)
        manifest = {
            "model": contract.MODEL_NAME,
            "release": contract.MODEL_RELEASE,
            "source": recorded_source(source),
            "checkpoint_sha256": checkpoint_sha256,
            "checkpoint_bytes": checkpoint.stat().st_size,
            "onnx_file": contract.ONNX_FILE,
            "onnx_sha256": onnx_sha256,
            "onnx_bytes": onnx_path.stat().st_size,
            "opset": OPSET,
            "input": {"name": contract.INPUT_NAME, "shape": [1, 3, "height", "width"], "dtype": "float32"},
            "output": {"name": contract.OUTPUT_NAME, "shape": [1, "height", "width"], "dtype": "float32"},
            "preprocessing": contract.preprocessing(),
            "versions": _versions(),
            "parity": parity,
            "optimized": optimized,
        }
        if int8:
            from bake.int8 import write_int8

            manifest["int8"] = write_int8(onnx_path, staging)
        if test_weights is not None:  # what the checkpoint says it is, never guessed from its name
            manifest |= {"test_weights": True, "test_weights_reason": test_weights}
        try:
            (staging / contract.MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        except OSError as exc:
            raise BakeError(f"cannot write {output}: {exc.strerror or exc}") from None
        _publish(staging, output)
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)
