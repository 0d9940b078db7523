"""Bake the official MiDaS_small checkpoint into a verified ONNX model + manifest.json (build time only).

The command line of ``scripts/bake_weights.py`` (``make bake``, the Dockerfile's bake stage, ``make serve`` when it
has no model): every failure is one line on stderr and exit code 1; nothing partial is left in the output directory
or the download directory.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from bake import BakeError
from bake.checkpoint import resolve_checkpoint
from bake.pipeline import bake
from handler import contract

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "layer" / "model"
DEFAULT_DOWNLOAD_DIR = ROOT / "layer" / "checkpoints"


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
    parser.add_argument(
        "--precision",
        choices=contract.PRECISIONS,
        default="fp32",
        help="int8: also write model.int8.onnx and its measured error against fp32 (the runtime's gate)",
    )
    args = parser.parse_args(argv)
    if args.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", args.sha256):
        parser.error(f"--sha256 must be 64 hex digits, got {args.sha256!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        checkpoint, source = resolve_checkpoint(args.checkpoint, args.url, args.download_dir)
        manifest = bake(checkpoint, source, args.output, args.sha256, int8=args.precision == "int8")
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
    if int8 := manifest.get("int8"):
        gate = "within" if int8["abs_rel"] <= contract.MAX_INT8_ABS_REL else "beyond"
        print(
            f"  int8 vs fp32      abs_rel {int8['abs_rel']:.4f}, delta1 {int8['delta1']:.4f} on held-out photographs "
            f"({gate} the default MAX_INT8_ABS_REL {contract.MAX_INT8_ABS_REL})"
        )
        bits = int8["quantization"]["weight_bits"]
        everywhere = ", and on every CPU: the error holds wherever it runs" if bits <= 7 else ""
        print(f"  int8 weights      {bits}-bit: sums {int8['sums']} on this CPU{everywhere}")
    return 0
