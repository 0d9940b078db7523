"""CLI: ``python -m handler predict IMAGE... --out DIR [--model-dir DIR]`` (like upstream run.py).

Writes ``DIR/<stem>.png`` (Inferno heatmap) and ``DIR/<stem>.pfm`` (float32 depth at the original size) for
each image (with ``--ply`` / ``--glb`` also its coloured point cloud, ``DIR/<stem>.ply`` / ``DIR/<stem>.glb``;
docs/point-clouds.md), and prints the paths it wrote; an unreadable file is reported and the rest still run.
Exit code 1 if any image failed, 2 without a usable model or output directory.

Inputs of one run whose stems are the same (``a.tif`` and ``a.bmp``) are named by their whole file name instead:
``a.tif.png``, ``a.tif.pfm`` and ``a.bmp.png``, ``a.bmp.pfm``; the same file name from two folders then gets
``-2``, ``-3`` … (``a.jpg.png``, ``a.jpg-2.png``). Nothing a run writes overwrites another output of the same run.

The model: ``--model-dir``, else ``$MODEL_DIR``, else the checkout's ``layer/model/`` (``make bake``), else
``/opt/ml/model`` (the image's).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from handler.config import Colormap, Settings, local_model_dir
from handler.errors import DepthError, ModelUnavailable

if TYPE_CHECKING:
    from handler.estimator import DepthEstimator
    from handler.geometry import Options

_NAMING = (
    "Outputs are named after each image's stem (photo.jpg -> photo.png, photo.pfm); images of one run with the same "
    "stem are named after their whole file name instead (a.tif -> a.tif.png, a.bmp -> a.bmp.png), and the same file "
    "name from two folders gets -2, -3 ... (a.jpg.png, a.jpg-2.png), so no output of a run overwrites another."
)


def output_bases(images: list[Path], png16: bool, extra: tuple[str, ...] = ()) -> dict[Path, str]:
    """Each image's output base name (see the module docstring): distinct across the run, compared without case
    (a case-insensitive file system would merge A.png and a.png). ``extra``: further suffixes written (".ply")."""
    unique = list(dict.fromkeys(images))  # an image named twice is one image, written once
    stems = Counter(path.stem.casefold() for path in unique)
    suffixes = ((".png", ".pfm", ".depth.png") if png16 else (".png", ".pfm")) + extra
    taken: set[str] = set()
    bases: dict[Path, str] = {}
    for path in unique:
        first = path.stem if stems[path.stem.casefold()] == 1 else path.name
        for base in itertools.chain([first], (f"{first}-{n}" for n in itertools.count(2))):
            files = {(base + suffix).casefold() for suffix in suffixes}
            if not files & taken:
                break
        taken |= files
        bases[path] = base
    return bases


def _positive(number):
    def parse(text: str):
        value = number(text)
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
        return value

    parse.__name__ = number.__name__
    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m handler", description="MiDaS_small depth maps")
    sub = parser.add_subparsers(dest="command", required=True)
    predict = sub.add_parser(
        "predict",
        help="write <stem>.png heatmaps and <stem>.pfm depth for images",
        description="Write a heatmap (<stem>.png) and the float32 depth (<stem>.pfm) of each image. " + _NAMING,
    )
    predict.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    predict.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    predict.add_argument(
        "--model-dir",
        help="baked model directory (default: $MODEL_DIR, else the checkout's layer/model/ from `make bake`, "
        "else /opt/ml/model)",
    )
    predict.add_argument("--colormap", choices=Colormap.__args__, help="heatmap colours (default inferno)")
    predict.add_argument("--png16", action="store_true", help="also write <stem>.depth.png (16-bit)")
    points = predict.add_argument_group("point clouds (docs/point-clouds.md)")
    points.add_argument("--ply", action="store_true", help="also write <stem>.ply (binary PLY, x y z red green blue)")
    points.add_argument("--glb", action="store_true", help="also write <stem>.glb (glTF binary, POINTS)")
    # no defaults here: what is not given takes geometry.Options' (imported only when a command runs)
    points.add_argument("--max-points", type=_positive(int), help="point budget (default 500000)")
    points.add_argument("--near", type=_positive(float), help="depth of the nearest pixel (default 1)")
    points.add_argument("--far", type=_positive(float), help="depth of the farthest pixel (default 10)")
    points.add_argument(
        "--fov", type=_positive(float), help="horizontal field of view in degrees (default: EXIF, else 60)"
    )
    points.add_argument(
        "--edge-threshold", type=_positive(float), help="drop points at relative depth jumps above this"
    )
    points.add_argument("--mesh", action="store_true", help="write a coloured triangle mesh over the points instead")
    return parser


def _ready(args: argparse.Namespace) -> DepthEstimator | None:
    """The estimator of the run and its output directory, or None (the reason printed) without either."""
    from handler.estimator import DepthEstimator

    try:
        estimator = DepthEstimator.load(Settings(model_dir=local_model_dir(args.model_dir)))
    except ModelUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot create {args.out}: {exc.strerror}", file=sys.stderr)
        return None
    return estimator


def _options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Options:
    """The point-cloud options given (geometry.Options' defaults for the rest); a usage error if they do not fit."""
    from handler import geometry  # deferred: --help stays instant

    given = {name: getattr(args, name) for name in ("max_points", "near", "far", "fov", "edge_threshold")}
    try:
        return geometry.Options(mesh=args.mesh, **{k: v for k, v in given.items() if v is not None})
    except ValueError as exc:
        parser.error(str(exc))


def _formats(args: argparse.Namespace) -> list[str]:
    """The point-cloud formats asked for."""
    return [fmt for fmt in ("ply", "glb") if getattr(args, fmt)]


def _predict(estimator: DepthEstimator, path: Path, *, base: str, args: argparse.Namespace, options: Options) -> str:
    """Write one image's outputs as ``base`` + suffix in ``args.out``; returns the line that reports them."""
    formats = _formats(args)
    heatmap, pfm, png16 = (args.out / f"{base}{suffix}" for suffix in (".png", ".pfm", ".depth.png"))
    clouds = [args.out / f"{base}.{fmt}" for fmt in formats]
    result = estimator.estimate(path.read_bytes(), max_points=options.max_points if formats else None)
    heatmap.write_bytes(estimator.heatmap_png(result, args.colormap))
    pfm.write_bytes(estimator.depth_pfm(result))
    if args.png16:
        png16.write_bytes(estimator.depth_png16(result))
    for fmt, cloud in zip(formats, clouds, strict=True):
        cloud.write_bytes(estimator.point_cloud(result, fmt, options)[0])
    written = ", ".join(str(p) for p in [*(heatmap, pfm, png16)[: 3 if args.png16 else 2], *clouds])
    return f"{path} -> {written} ({result.width}x{result.height}, {1000 * result.total_seconds:.0f} ms)"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    options = _options(parser, args)
    estimator = _ready(args)
    if estimator is None:
        return 2
    failed = 0
    extra = tuple(f".{fmt}" for fmt in _formats(args))
    for path, base in output_bases(args.images, args.png16, extra).items():
        try:
            print(_predict(estimator, path, base=base, args=args, options=options))
        except (OSError, DepthError) as exc:
            failed += 1
            reason = exc.message if isinstance(exc, DepthError) else (exc.strerror or str(exc))
            print(f"error: {path}: {reason}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
