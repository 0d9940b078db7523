"""Benchmark: what a point cloud adds to a request for a 12 MP photo, in one run on one machine.

The request is what the S3 trigger does with an upload, without the S3 calls: bytes → depth → Inferno heatmap PNG.
The same request with a point cloud also keeps the colour grid and lens EXIF, back-projects the budgeted grid
(default 500 000 points: a 4000 x 3000 photo keeps every 5th pixel of every 5th row) and writes the PLY (or GLB).
Runs alternate between the two so that the machine's noise falls on both; the figures are medians, and the added
cost is given both as the difference of the medians and as the median of the point stages' own timings
(``points`` + ``encode_points``).

    python scripts/bench_pointcloud.py [--model-dir DIR] [--repeats N] [--json out.json]

Without --model-dir, a random-weight checkpoint with the official keys/shapes is baked into a temporary directory
(speed does not depend on the weights' values).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

WIDTH, HEIGHT = 4000, 3000  # 12 MP


def measure(model_dir: str, repeats: int) -> dict:
    from handler import geometry
    from handler.config import Settings
    from handler.estimator import DepthEstimator
    from localdev.bench import photo_like_jpeg

    estimator = DepthEstimator.load(Settings(model_dir=model_dir))
    data = photo_like_jpeg(WIDTH, HEIGHT)
    options = geometry.Options()
    variants = {"ply": ("ply", options), "glb": ("glb", options), "glb_mesh": ("glb", geometry.Options(mesh=True))}

    def plain() -> tuple[float, dict]:
        started = time.perf_counter()
        result = estimator.estimate(data)
        estimator.heatmap_png(result)
        return time.perf_counter() - started, result.timings

    def with_points(variant: str) -> tuple[float, dict, int]:
        fmt, chosen = variants[variant]
        started = time.perf_counter()
        result = estimator.estimate(data, max_points=chosen.max_points)
        estimator.heatmap_png(result)
        body, cloud = estimator.point_cloud(result, fmt, chosen)
        return time.perf_counter() - started, result.timings, len(cloud)

    plain()  # warm-up: first-run allocations, ORT's arena
    with_points("ply")
    runs: dict[str, list[float]] = {"request": []}
    for variant in variants:
        runs[variant], runs[f"{variant}_stages"] = [], []
    points = 0
    for _ in range(repeats):
        runs["request"].append(plain()[0])
        for variant in variants:
            seconds, timings, points = with_points(variant)
            runs[variant].append(seconds)
            runs[f"{variant}_stages"].append(timings["points"] + timings["encode_points"])
    ms = {name: 1000 * statistics.median(values) for name, values in runs.items()}
    return {
        "image": f"{WIDTH}x{HEIGHT}",
        "points": points,
        "stride": geometry.stride_for(HEIGHT, WIDTH, options.max_points),
        "repeats": repeats,
        "request_ms": round(ms["request"], 1),
        **{
            f"{fmt}_{key}": value
            for fmt in variants
            for key, value in {
                "request_ms": round(ms[fmt], 1),
                "added_ms": round(ms[fmt] - ms["request"], 1),
                "stages_ms": round(ms[f"{fmt}_stages"], 1),
                "added_ratio": round(ms[f"{fmt}_stages"] / ms["request"], 3),
            }.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="baked model (default: bake a random-weight checkpoint into a temp dir)")
    parser.add_argument("--repeats", type=int, default=7, help="runs of each kind (median)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="midas-bench-points-") as scratch:
        model_dir = args.model_dir
        if not model_dir:
            from bake.pipeline import bake
            from bake.random_checkpoint import write_checkpoint

            checkpoint = write_checkpoint(Path(scratch) / "checkpoint.pt")
            model_dir = str(Path(scratch) / "model")
            bake(checkpoint, str(checkpoint), Path(model_dir))
        figures = measure(model_dir, args.repeats)
    print(f"{figures['image']} JPEG, {figures['points']} points (stride {figures['stride']}), {args.repeats} runs each")
    print(f"request (depth + heatmap): {figures['request_ms']:.0f} ms")
    for fmt in ("ply", "glb", "glb_mesh"):
        name = fmt.upper().replace("_", " ")
        total, added = figures[f"{fmt}_request_ms"], figures[f"{fmt}_added_ms"]
        stages, ratio = figures[f"{fmt}_stages_ms"], figures[f"{fmt}_added_ratio"]
        print(
            f"with the {name}: {total:.0f} ms; added {added:.0f} ms (difference of medians), "
            f"point stages {stages:.0f} ms = {100 * ratio:.1f} % of the request"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
