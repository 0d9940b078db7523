"""Peak memory of the whole pipeline per file kind and size, and the bytes per decoded pixel derived from it: the
figures behind the memory-derived pixel caps (handler.config.PEAK_BYTES_PER_PIXEL, docs/hardening.md#memory).

    .venv/bin/python scripts/memory_peaks.py --model-dir layer/model --megapixels 8 16 24 --report peaks.json

Each image runs in a fresh process (localdev.memory); a few minutes for the default grid.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from handler.config import MEMORY_MARGIN_MB  # noqa: E402
from localdev.memory import SAMPLES, measure, sample  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True, help="a baked model (make bake)")
    parser.add_argument("--megapixels", type=float, nargs="+", default=[8.0, 16.0, 24.0])
    parser.add_argument("--kinds", nargs="+", default=list(SAMPLES), choices=list(SAMPLES))
    parser.add_argument("--report", help="write every measurement and the fit here as JSON")
    args = parser.parse_args(argv)
    runs, fits = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds:
            points = []
            for megapixels in args.megapixels:
                path = Path(tmp) / kind
                path.write_bytes(sample(kind, megapixels))
                run = {"kind": kind, "megapixels": megapixels, "bytes": path.stat().st_size}
                run |= measure(args.model_dir, path)
                runs.append(run)
                print(json.dumps(run), flush=True)
                if "refused" not in run:
                    points.append((megapixels * 1e6, (run["peak_mb"] - run["baseline_mb"]) * 2**20))
            if points:
                # what handler.config.PEAK_BYTES_PER_PIXEL must cover: the peak above the baseline and the margin
                fits[kind] = {
                    "bytes_per_pixel": round(max((peak - MEMORY_MARGIN_MB * 2**20) / n for n, peak in points), 2)
                }
            if len(points) >= 2:
                slope, intercept = np.polyfit(*zip(*points, strict=True), 1)
                fits[kind] |= {
                    "fitted_slope": round(float(slope), 2),
                    "fitted_fixed_mb": round(float(intercept) / 2**20, 1),
                }
            if points:
                print(f"{kind}: {fits[kind]}", flush=True)
    if args.report:
        Path(args.report).write_text(json.dumps({"runs": runs, "fits": fits}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
