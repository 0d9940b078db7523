"""CLI: ``python -m handler predict IMAGE... --out DIR [--model-dir DIR]`` (like upstream run.py).

Writes ``DIR/<name>.png`` (Inferno heatmap) and ``DIR/<name>.pfm`` (float32 depth at the original size) for each
image, ``<name>`` being the image's whole file name (``photo.jpg`` -> ``photo.jpg.png``, ``photo.jpg.pfm``: the last
part of the S3 trigger's output key, suffixes from :data:`handler.s3_outputs.RENDERINGS`); with ``--ply`` / ``--glb``
also its coloured point cloud (``photo.jpg.ply`` / ``photo.jpg.glb``; docs/point-clouds.md). It prints the paths it
wrote; an unreadable file is reported and the rest still run. Exit code 1 if any image failed, 2 without a usable
model or output directory, or when an output would replace an input of the run or another output of the run
(``predict a.png a.png.png --out .``; the same file name from two folders): refused before anything is written.

The model: ``--model-dir``, else ``$MODEL_DIR``, else the checkout's ``layer/model/`` (``make bake``), else
``/opt/ml/model`` (the image's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from handler.config import Colormap, Settings, local_model_dir
from handler.errors import DepthError, ModelUnavailable
from handler.point_formats import FORMATS as POINT_CLOUD_FORMATS  # a flag each: a format added there is one here

if TYPE_CHECKING:
    from handler.estimator import DepthEstimator
    from handler.geometry import Options

_NAMING = (
    "Outputs are named after each image's whole file name (photo.jpg -> photo.jpg.png, photo.jpg.pfm), as the S3 "
    "trigger names its keys. A run that would overwrite one of its inputs or write one file twice (the same file "
    "name from two folders) is refused before anything is written."
)


class OutputClash(ValueError):
    """An output of the run would replace one of its inputs or another of its outputs."""


def _same_file_key(path: Path) -> str:
    # compared without case: a case-insensitive file system would make A.png and a.png one file
    return str(path.resolve()).casefold()


def output_paths(images: list[Path], out: Path, renderings: list[str]) -> dict[Path, dict[str, Path]]:
    """Each image's output files, rendering -> ``out / (image's file name + the rendering's suffix)``; an image
    named twice is one image. Raises :class:`OutputClash` naming the file when an output would be one of the run's
    inputs or two outputs would be the same file."""
    from handler.s3_outputs import file_name  # the one place that names the suffixes

    unique = list({path.resolve(): path for path in reversed(images)}.values())[::-1]
    inputs = {_same_file_key(path): path for path in unique}
    written: dict[str, Path] = {}
    paths: dict[Path, dict[str, Path]] = {}
    for image in unique:
        files = {rendering: out / file_name(image.name, rendering) for rendering in renderings}
        for file in files.values():
            key = _same_file_key(file)
            if key in inputs:
                raise OutputClash(f"{file} would overwrite the input {inputs[key]}; choose another --out directory")
            if key in written:
                raise OutputClash(
                    f"{file} would be written for both {written[key]} and {image}; run them with different --out"
                )
            written[key] = image
        paths[image] = files
    return paths


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
        help="write <name>.png heatmaps and <name>.pfm depth for images",
        description="Write a heatmap (<name>.png) and the float32 depth (<name>.pfm) of each image. " + _NAMING,
    )
    predict.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    predict.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    predict.add_argument(
        "--model-dir",
        help="baked model directory (default: $MODEL_DIR, else the checkout's layer/model/ from `make bake`, "
        "else /opt/ml/model)",
    )
    predict.add_argument("--colormap", choices=Colormap.__args__, help="heatmap colours (default inferno)")
    predict.add_argument("--png16", action="store_true", help="also write <name>.depth.png (16-bit)")
    points = predict.add_argument_group("point clouds (docs/point-clouds.md)")
    for fmt, (suffix, media_type) in POINT_CLOUD_FORMATS.items():
        points.add_argument(f"--{fmt}", action="store_true", help=f"also write <name>{suffix} ({media_type})")
    # no defaults here: what is not given takes geometry.Options'
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
    if estimator.model.manifest.test_weights:
        reason = estimator.model.manifest.data.get("test_weights_reason", "")
        print(f"warning: {estimator.model.manifest.test_weights} ({reason})", file=sys.stderr)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot create {args.out}: {exc.strerror}", file=sys.stderr)
        return None
    return estimator


def _options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Options:
    """The point-cloud options given (geometry.Options' defaults for the rest); a usage error if they do not fit."""
    from handler import geometry

    given = {name: getattr(args, name) for name in ("max_points", "near", "far", "fov", "edge_threshold")}
    try:
        return geometry.Options(mesh=args.mesh, **{k: v for k, v in given.items() if v is not None})
    except ValueError as exc:
        parser.error(str(exc))


def _renderings(args: argparse.Namespace) -> list[str]:
    """What the run writes of each image, in the order it reports them."""
    formats = [fmt for fmt in POINT_CLOUD_FORMATS if getattr(args, fmt)]
    return ["heatmap", "pfm", *(["depth_png16"] if args.png16 else []), *formats]


def _predict(
    estimator: DepthEstimator, path: Path, *, files: dict[str, Path], colormap: str | None, options: Options
) -> str:
    """Write one image's ``files`` (rendering -> path, :func:`_renderings`); returns the line that reports them."""
    formats = [rendering for rendering in files if rendering in POINT_CLOUD_FORMATS]
    result = estimator.estimate(path.read_bytes(), max_points=options.max_points if formats else None)
    # every file made before any is written: a refused point cloud leaves no half of an image's outputs behind
    contents = {"heatmap": estimator.heatmap_png(result, colormap), "pfm": estimator.depth_pfm(result)}
    if "depth_png16" in files:
        contents["depth_png16"] = estimator.depth_png16(result)
    for fmt in formats:
        contents[fmt] = estimator.point_cloud(result, fmt, options)[0]
    for rendering, file in files.items():
        file.write_bytes(contents[rendering])
    written = ", ".join(str(file) for file in files.values())
    return f"{path} -> {written} ({result.width}x{result.height}, {1000 * result.total_seconds:.0f} ms)"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    options = _options(parser, args)
    try:
        outputs = output_paths(args.images, args.out, _renderings(args))
    except OutputClash as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    estimator = _ready(args)
    if estimator is None:
        return 2
    failed = 0
    for path, files in outputs.items():
        try:
            print(_predict(estimator, path, files=files, colormap=args.colormap, options=options))
        except (OSError, DepthError) as exc:
            failed += 1
            reason = exc.message if isinstance(exc, DepthError) else (exc.strerror or str(exc))
            print(f"error: {path}: {reason}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
