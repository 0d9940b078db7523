"""CLI: ``python -m handler predict IMAGE... --out DIR [--model-dir DIR]`` (like upstream run.py).

Writes ``DIR/<stem>.png`` (Inferno heatmap) and ``DIR/<stem>.pfm`` (float32 depth at the original size) for
each image; an unreadable file is reported and the rest still run. Exit code 1 if any image failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from handler.config import Colormap, Settings
from handler.errors import DepthError, ModelUnavailable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handler", description="MiDaS_small depth maps")
    sub = parser.add_subparsers(dest="command", required=True)
    predict = sub.add_parser("predict", help="write <stem>.png heatmaps and <stem>.pfm depth for images")
    predict.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    predict.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    predict.add_argument("--model-dir", help="baked model directory (default: $MODEL_DIR or /opt/ml/model)")
    predict.add_argument("--colormap", choices=Colormap.__args__, help="heatmap colours (default inferno)")
    predict.add_argument("--png16", action="store_true", help="also write <stem>.depth.png (16-bit)")
    args = parser.parse_args(argv)

    from handler.core import DepthEstimator  # deferred: --help stays instant

    overrides = {"model_dir": args.model_dir} if args.model_dir else {}
    try:
        estimator = DepthEstimator.load(Settings(**overrides))
    except ModelUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot create {args.out}: {exc.strerror}", file=sys.stderr)
        return 2

    failed = 0
    for path in args.images:
        try:
            result = estimator.estimate(path.read_bytes())
            (args.out / f"{path.stem}.png").write_bytes(estimator.heatmap_png(result, args.colormap))
            (args.out / f"{path.stem}.pfm").write_bytes(estimator.depth_pfm(result))
            if args.png16:
                (args.out / f"{path.stem}.depth.png").write_bytes(estimator.depth_png16(result))
        except (OSError, DepthError) as exc:
            failed += 1
            reason = exc.message if isinstance(exc, DepthError) else (exc.strerror or str(exc))
            print(f"error: {path}: {reason}", file=sys.stderr)
            continue
        ms = 1000 * result.total_seconds
        print(f"{path} -> {args.out / path.stem}.png, .pfm ({result.width}x{result.height}, {ms:.0f} ms)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
