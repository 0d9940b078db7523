"""Soak: many mixed requests through the real Lambda entry in one process; RSS, file descriptors and temp files.

    .venv/bin/python scripts/soak.py                  # 1 000 requests (bakes a seeded test model if none is given)
    .venv/bin/python scripts/soak.py --count 3000 --model-dir layer/model

The mix: raw image bodies (JPEG/PNG/WebP, 64x48 … 1600x1200, and a 1.4 MB noise PNG) through API Gateway REST,
HTTP API and Function URL events, JSON with base64 (inline, and written to S3 with presigned URLs), multipart
/predict (the noise PNG is over the 1 MB that starlette keeps in memory: it goes through a temporary file), S3
references, GET /health, S3 and SQS events, and bad requests (garbage, truncated, a 50 000 x 50 000 header,
invalid base64, unknown fields, missing keys). Every answer is checked. The warm-up sends every kind of request
with every image once; RSS, open file descriptors and the files in the temporary directory are measured after it
and at the end.

The S3 emulator (moto) runs in a subprocess so that the figures are the function's alone. Exit code 1 when a good
request failed, a bad one was not refused as expected, RSS grew more than --max-rss-growth percent after the
warm-up, or descriptors / temporary files grew. The mix and its checks are localdev/soak.py; tests/e2e/test_soak.py
runs this script on a shorter mix.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from localdev.function import function_env
from localdev.s3_emulator import start_moto_process
from localdev.soak import SIZES, Corpus, Report, run

ROOT = Path(__file__).resolve().parents[1]


def _bake_test_model(directory: Path) -> Path:
    """A seeded official-format checkpoint baked into ``directory`` (subprocesses: torch stays out of this one)."""
    checkpoint = directory / "midas_test.pt"
    model_dir = directory / "model"
    subprocess.run([sys.executable, "scripts/make_test_checkpoint.py", str(checkpoint)], cwd=ROOT, check=True)
    bake = [sys.executable, "scripts/bake_weights.py", "--checkpoint", str(checkpoint), "--output", str(model_dir)]
    subprocess.run(bake, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return model_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="requests in all, warm-up included (default 1000)")
    parser.add_argument("--model-dir", type=Path, help="baked model (default: bake a seeded test model first)")
    parser.add_argument("--max-rss-growth", type=float, default=5.0, help="percent after the warm-up (default 5)")
    parser.add_argument("--sizes", default=",".join(f"{w}x{h}" for w, h in SIZES), help="image sizes, WxH,...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path, help="also write the figures (JSON) to this file")
    args = parser.parse_args(argv)
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]

    work = Path(tempfile.mkdtemp(prefix="midas-soak-"))
    tmp_dir = work / "tmp"  # the function's temporary files land here (what /tmp is on Lambda)
    tmp_dir.mkdir()
    try:
        report = _soak(args, work, tmp_dir, sizes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    problems = report.failures(args.max_rss_growth)
    figures = {**report.summary(), "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX"), "problems": problems}
    print(json.dumps(figures, indent=2))
    if args.report:
        args.report.write_text(json.dumps(figures, indent=2))
    for problem in problems[:20]:
        print(f"FAIL: {problem}", file=sys.stderr)
    print("soak: " + ("FAILED" if problems else "passed"))
    return 1 if problems else 0


def _soak(args: argparse.Namespace, work: Path, tmp_dir: Path, sizes: list[tuple[int, int]]) -> Report:
    model_dir = args.model_dir or _bake_test_model(work)
    moto, endpoint = start_moto_process()
    try:
        import boto3

        os.environ["AWS_ENDPOINT_URL"] = endpoint
        s3 = boto3.client("s3")
        buckets = {name: f"midas-soak-{name}-{uuid.uuid4().hex[:6]}" for name in ("in", "out")}
        for bucket in buckets.values():
            s3.create_bucket(Bucket=bucket)
        os.environ.update(
            function_env(
                model_dir=model_dir, output_bucket=buckets["out"], input_buckets=buckets["in"], WRITE_RAW_DEPTH="true"
            )
        )
        tempfile.tempdir = str(tmp_dir)
        corpus = Corpus.build(s3, buckets["in"], sizes)
        from handler import entry
        from handler.logs import logger

        logger.setLevel("CRITICAL")  # every bad request logs a line: keep the soak's own output readable

        print(f"soak: {args.count} requests through handler.entry (model {model_dir}, S3 {endpoint})", flush=True)
        report = run(
            entry.lambda_handler,
            corpus,
            count=args.count,
            tmp_dir=str(tmp_dir),
            seed=args.seed,
            progress=lambda line: print(line, flush=True),
        )
    finally:
        moto.terminate()
        moto.wait(timeout=10)
    return report


if __name__ == "__main__":
    sys.exit(main())
