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
warm-up, or descriptors / temporary files grew. tests/test_soak.py runs :func:`run` on a shorter mix.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

# The test suite's helpers (one of each in the repository): API Gateway and S3 event builders, images, context.
from test_s3_trigger import s3_event  # noqa: E402

from conftest import LambdaContext, api_event, encode, load_event, response_body, scene  # noqa: E402

SIZES = [(64, 48), (320, 240), (640, 480), (1024, 768), (1600, 1200)]
FORMATS = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"), "WEBP": ("webp", "image/webp")}
KINDS = ["v1", "v2", "function-url"]


def multipart(fields: list[tuple[str, str | None, bytes]], boundary: str = "soakboundary") -> tuple[bytes, str]:
    """(name, filename or None for a text field, content) parts → multipart/form-data body and its content type."""
    body = b""
    for name, filename, content in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels while its data is a few bytes (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b"")
    )


# ------------------------------------------------------------------------------------------------ measurements


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def tmp_usage(directory: str) -> tuple[int, int]:
    """(entries, bytes) under ``directory``."""
    entries = size = 0
    for root, dirs, files in os.walk(directory):
        entries += len(dirs) + len(files)
        size += sum(os.path.getsize(os.path.join(root, f)) for f in files if os.path.exists(os.path.join(root, f)))
    return entries, size


@dataclass
class Snapshot:
    rss_mb: float
    fds: int
    tmp_entries: int
    tmp_bytes: int

    @classmethod
    def take(cls, tmp_dir: str) -> Snapshot:
        gc.collect()
        return cls(rss_mb(), open_fds(), *tmp_usage(tmp_dir))


# ------------------------------------------------------------------------------------------------ the mix


Image = tuple[str, bytes, str]  # (name, bytes, content type)


@dataclass
class Request:
    kind: str
    event: dict
    good: bool
    expect: Any  # HTTP status, or for S3/SQS events: "written" / "failed" / the SQS message ids that must fail


@dataclass
class Corpus:
    """Encoded images (and their S3 keys) the requests are drawn from."""

    images: list[Image]
    keys: dict[str, str]  # name → key in the input bucket
    input_bucket: str

    @classmethod
    def build(cls, s3: Any, input_bucket: str, sizes: list[tuple[int, int]] = SIZES) -> Corpus:
        images, keys, run = [], {}, uuid.uuid4().hex[:6]
        for i, (w, h) in enumerate(sizes):
            for fmt, (ext, content_type) in FORMATS.items():
                name = f"{w}x{h}.{ext}"
                data = encode(scene(w, h, seed=100 + i), fmt, **({"quality": 85} if fmt != "PNG" else {}))
                images.append((name, data, content_type))
        # ~1.4 MB of PNG: over the 1 MB starlette keeps in memory, so an upload of it goes through a temporary file
        noise = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
        images.append(("noise-800x600.png", encode(noise, "PNG"), "image/png"))
        bad = {"garbage.jpg": b"\x00garbage" * 64, "bomb.png": png_claiming(50_000, 50_000)}
        for name, data in [(n, d) for n, d, _ in images] + list(bad.items()):
            keys[name] = f"uploads/soak-{run}/{name}"
            s3.put_object(Bucket=input_bucket, Key=keys[name], Body=data)
        return cls(images, keys, input_bucket)


def _json_event(kind: str, payload: dict) -> dict:
    return api_event(kind, "POST", "/depth", json.dumps(payload), "application/json")


def request_kinds(corpus: Corpus, rng: random.Random) -> dict[str, Callable[[Image], Request]]:
    """Every kind of request the soak sends: name → a factory making one of that kind around an image."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    def kind() -> str:
        return rng.choice(KINDS)

    def raw(image: Image) -> Request:
        _, data, content_type = image
        return Request("raw", api_event(kind(), "POST", "/depth", data, content_type), True, 200)

    def json_inline(image: Image) -> Request:
        payload = {"image": b64(image[1]), "output": "inline", "include_depth": rng.random() < 0.5}
        return Request("json-inline", _json_event(kind(), payload), True, 200)

    def json_both(image: Image) -> Request:
        payload = {"image": b64(image[1]), "colormap": rng.choice(["inferno", "gray", "turbo"])}
        return Request("json-both", _json_event(kind(), payload), True, 200)

    def predict(image: Image) -> Request:
        name, data, _ = image
        body, content_type = multipart([("image", name, data)])
        return Request("predict", api_event(kind(), "POST", "/predict", body, content_type), True, 200)

    def s3_ref(image: Image) -> Request:
        payload = {"s3": f"s3://{corpus.input_bucket}/{corpus.keys[image[0]]}", "output": "inline"}
        return Request("json-s3-ref", _json_event(kind(), payload), True, 200)

    def health(image: Image) -> Request:
        return Request("health", api_event(kind(), "GET", "/health"), True, 200)

    def s3_upload(image: Image) -> Request:
        return Request("s3-event", s3_event(corpus.input_bucket, corpus.keys[image[0]]), True, "written")

    def sqs_batch(image: Image) -> Request:
        template = load_event("sqs-receive.json")["Records"][0]
        names = [image[0], "garbage.jpg", rng.choice(corpus.images)[0]]
        records = [
            {**template, "messageId": f"m{i}", "body": json.dumps(s3_event(corpus.input_bucket, corpus.keys[n]))}
            for i, n in enumerate(names)
        ]
        return Request("sqs-batch", {"Records": records}, True, ["m1"])  # good messages written, the bad one reported

    def bad_raw(image: Image) -> Request:
        data, status = rng.choice(
            [(b"\x00garbage" * 64, 400), (image[1][:300], 400), (png_claiming(50_000, 50_000), 413), (b"", 400)]
        )
        return Request("bad-raw", api_event(kind(), "POST", "/depth", data, image[2]), False, status)

    def bad_json(image: Image) -> Request:
        payload, status = rng.choice(
            [
                ({"image": "%%% not base64"}, 400),
                ({"image": b64(b"plain text")}, 400),
                ({"image": b64(image[1]), "unknown": 1}, 422),
                ({"s3": f"s3://{corpus.input_bucket}/uploads/soak/missing.jpg"}, 404),
                ({"s3": "s3://not-an-allowed-bucket/uploads/a.jpg"}, 403),
                ({"s3": f"s3://{corpus.input_bucket}/private/a.jpg"}, 403),
                ({"image": "data:text/plain;base64,aGk="}, 415),
            ]
        )
        return Request("bad-json", _json_event(kind(), payload), False, status)

    def bad_s3_upload(image: Image) -> Request:
        name = rng.choice(["garbage.jpg", "bomb.png"])
        return Request("bad-s3-event", s3_event(corpus.input_bucket, corpus.keys[name]), False, "failed")

    return {
        "raw": raw,
        "json-inline": json_inline,
        "json-both": json_both,
        "predict": predict,
        "json-s3-ref": s3_ref,
        "health": health,
        "s3-event": s3_upload,
        "sqs-batch": sqs_batch,
        "bad-raw": bad_raw,
        "bad-json": bad_json,
        "bad-s3-event": bad_s3_upload,
    }


WEIGHTS = {
    "raw": 26,
    "json-inline": 14,
    "json-both": 10,
    "predict": 10,
    "json-s3-ref": 8,
    "health": 5,
    "s3-event": 9,
    "sqs-batch": 3,
    "bad-raw": 6,
    "bad-json": 6,
    "bad-s3-event": 3,
}


def plan(corpus: Corpus, count: int, seed: int) -> tuple[int, Iterator[Request]]:
    """(warm-up length, requests): first every kind with every image (the warm-up), then a weighted random mix."""
    rng = random.Random(seed)
    kinds = request_kinds(corpus, rng)
    warmup = [(make, image) for image in corpus.images for make in kinds.values()]

    def generate() -> Iterator[Request]:
        for i in range(count):
            if i < len(warmup):
                make, image = warmup[i]
            else:
                make, image = kinds[rng.choices(list(WEIGHTS), list(WEIGHTS.values()))[0]], rng.choice(corpus.images)
            yield make(image)

    return len(warmup), generate()


# ------------------------------------------------------------------------------------------------ run


def check(request: Request, handler: Callable[[dict, Any], Any], context: Any) -> str | None:
    """Send one request; None if the answer is what it must be, else what was wrong."""
    from handler.job import UNCHANGED
    from handler.sources.settle import RecordsFailed

    try:
        result = handler(request.event, context)
    except RecordsFailed as exc:
        return None if request.expect == "failed" else f"S3 event failed: {exc}"
    if request.expect == "written":  # or already written from these very bytes by this model: unchanged
        done = result.get("written") or [s for s in result.get("skipped", []) if s["reason"] == UNCHANGED]
        return None if done and not result.get("failed") else f"S3 event: {result}"
    if request.expect == "failed":
        return f"bad S3 event not reported: {result}"
    if isinstance(request.expect, list):
        failures = sorted(f["itemIdentifier"] for f in result["batchItemFailures"])
        return None if failures == request.expect else f"SQS batch failures {failures} != {request.expect}"
    status, body = result["statusCode"], response_body(result)
    if status != request.expect:
        return f"status {status} != {request.expect}: {body[:200]!r}"
    if status != 200:
        error = json.loads(body)
        return None if error["status"] == "error" and "Traceback" not in body.decode() else f"bad error body {body!r}"
    if body.startswith(b"\x89PNG") or json.loads(body).get("status") in ("success", "ok"):
        return None
    return f"unexpected body {body[:200]!r}"


@dataclass
class Report:
    requests: int = 0
    warmup: int = 0
    kinds: Counter = field(default_factory=Counter)
    good_failures: list[str] = field(default_factory=list)
    bad_not_refused: list[str] = field(default_factory=list)
    seconds: float = 0.0
    after_warmup: Snapshot | None = None
    end: Snapshot | None = None
    rss_samples: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0

    @property
    def rss_growth_pct(self) -> float:
        return 100 * (self.end.rss_mb - self.after_warmup.rss_mb) / self.after_warmup.rss_mb

    def failures(self, max_rss_growth_pct: float) -> list[str]:
        problems = [f"good request failed: {f}" for f in self.good_failures]
        problems += [f"bad request not refused as expected: {f}" for f in self.bad_not_refused]
        if self.rss_growth_pct > max_rss_growth_pct:
            problems.append(f"RSS grew {self.rss_growth_pct:.1f} % after the warm-up (limit {max_rss_growth_pct} %)")
        if self.end.fds > self.after_warmup.fds:
            problems.append(f"open file descriptors grew from {self.after_warmup.fds} to {self.end.fds}")
        if self.end.tmp_entries > self.after_warmup.tmp_entries:
            problems.append(f"temporary files grew from {self.after_warmup.tmp_entries} to {self.end.tmp_entries}")
        return problems

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "warmup_requests": self.warmup,
            "by_kind": dict(sorted(self.kinds.items())),
            "good_failures": len(self.good_failures),
            "bad_not_refused": len(self.bad_not_refused),
            "seconds": round(self.seconds, 1),
            "requests_per_second": round(self.requests / self.seconds, 1) if self.seconds else None,
            "rss_mb": {
                "after_warmup": round(self.after_warmup.rss_mb, 1),
                "end": round(self.end.rss_mb, 1),
                "growth_pct": round(self.rss_growth_pct, 2),
                "min_after_warmup": round(min(self.rss_samples or [self.end.rss_mb]), 1),
                "max_after_warmup": round(max(self.rss_samples or [self.end.rss_mb]), 1),
                "peak_process": round(self.peak_rss_mb, 1),
            },
            "open_fds": {"after_warmup": self.after_warmup.fds, "end": self.end.fds},
            "tmp": {
                "entries_after_warmup": self.after_warmup.tmp_entries,
                "entries_end": self.end.tmp_entries,
                "bytes_end": self.end.tmp_bytes,
            },
        }


def run(
    handler: Callable[[dict, Any], Any],
    corpus: Corpus,
    *,
    count: int,
    tmp_dir: str,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Send ``count`` requests of the mix to ``handler`` (the Lambda entry) and measure around them."""
    warmup, requests = plan(corpus, count, seed)
    report = Report(warmup=min(warmup, count))
    started = time.perf_counter()
    for i, request in enumerate(requests):
        if i == warmup:
            report.after_warmup = Snapshot.take(tmp_dir)
        problem = check(request, handler, LambdaContext(aws_request_id=str(uuid.uuid4())))
        report.requests += 1
        report.kinds[request.kind] += 1
        if problem:
            (report.good_failures if request.good else report.bad_not_refused).append(f"{request.kind}: {problem}")
        if i >= warmup and (i - warmup) % 50 == 0:
            report.rss_samples.append(rss_mb())
        if progress and (i + 1) % 100 == 0:
            progress(f"{i + 1}/{count} requests, RSS {rss_mb():.0f} MB, {open_fds()} fds")
    report.seconds = time.perf_counter() - started
    report.after_warmup = report.after_warmup or Snapshot.take(tmp_dir)
    report.end = Snapshot.take(tmp_dir)
    report.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return report


# ------------------------------------------------------------------------------------------------ script


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_moto() -> tuple[subprocess.Popen, str]:
    """moto's S3 server in a subprocess on 127.0.0.1 (its memory is not the function's)."""
    import urllib.request

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto server did not start")


def _bake_test_model(directory: Path) -> Path:
    """A seeded official-format checkpoint baked into ``directory`` (subprocesses: torch stays out of this one)."""
    checkpoint = directory / "midas_test.pt"
    model_dir = directory / "model"
    subprocess.run([sys.executable, "-m", "scripts.make_test_checkpoint", str(checkpoint)], cwd=ROOT, check=True)
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
    moto, endpoint = _start_moto()
    try:
        import boto3

        os.environ["AWS_ENDPOINT_URL"] = endpoint
        s3 = boto3.client("s3")
        buckets = {name: f"midas-soak-{name}-{uuid.uuid4().hex[:6]}" for name in ("in", "out")}
        for bucket in buckets.values():
            s3.create_bucket(Bucket=bucket)
        os.environ.update(
            MODEL_DIR=str(model_dir),
            OUTPUT_BUCKET=buckets["out"],
            ALLOWED_INPUT_BUCKETS=buckets["in"],
            WRITE_RAW_DEPTH="true",
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
