"""The soak's library: a mix of good and bad requests through the real Lambda entry, every answer checked, and the
process's RSS, open file descriptors and temporary files measured after the warm-up and at the end.

scripts/soak.py runs it in a process of its own against a moto server in a subprocess (so that the figures are the
function's alone); tests/e2e/test_soak.py runs that script on a shorter mix.
"""

from __future__ import annotations

import gc
import json
import os
import random
import resource
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from localdev.events import API_KINDS, api_event, b64, load_event, multipart, response_body, s3_event
from localdev.function import LambdaContext
from localdev.images import encode, png_claiming, scene

SIZES = [(64, 48), (320, 240), (640, 480), (1024, 768), (1600, 1200)]
FORMATS = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"), "WEBP": ("webp", "image/webp")}


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
    expect: Any  # HTTP status, or for S3/SQS events: "written" / "recorded" / the SQS message ids that must fail


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


def _json_event(kind: str, payload: dict, caller: str | None = None) -> dict:
    return api_event(kind, "POST", "/depth", json.dumps(payload), "application/json", caller=caller)


def request_kinds(corpus: Corpus, rng: random.Random) -> dict[str, Callable[[Image], Request]]:
    """Every kind of request the soak sends: name → a factory making one of that kind around an image."""

    def kind() -> str:
        return rng.choice(API_KINDS)

    def signed() -> str:  # the event kinds that carry a signed (IAM) caller: S3 references need one
        return rng.choice(["v2", "function-url"])

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
        return Request("json-s3-ref", _json_event(signed(), payload, "iam"), True, 200)

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
        records.append({**template, "messageId": "m3", "body": "not a notification"})
        # good messages written, the broken upload recorded under failures/, the one that is no notification reported
        return Request("sqs-batch", {"Records": records}, True, ["m3"])

    def bad_raw(image: Image) -> Request:
        data, status = rng.choice(
            [(b"\x00garbage" * 64, 400), (image[1][:300], 400), (png_claiming(50_000, 50_000), 413), (b"", 400)]
        )
        return Request("bad-raw", api_event(kind(), "POST", "/depth", data, image[2]), False, status)

    def bad_json(image: Image) -> Request:
        ref = {"s3": f"s3://{corpus.input_bucket}/{corpus.keys[image[0]]}"}
        payload, status, caller = rng.choice(
            [
                ({"image": "%%% not base64"}, 400, None),
                ({"image": b64(b"plain text")}, 400, None),
                ({"image": b64(image[1]), "unknown": 1}, 422, None),
                ({"s3": f"s3://{corpus.input_bucket}/uploads/soak/missing.jpg"}, 404, "iam"),
                ({"s3": "s3://not-an-allowed-bucket/uploads/a.jpg"}, 403, "iam"),
                ({"s3": f"s3://{corpus.input_bucket}/private/a.jpg"}, 403, "iam"),
                (ref, 403, "anonymous"),
                ({"image": "data:text/plain;base64,aGk="}, 415, None),
            ]
        )
        return Request("bad-json", _json_event(signed() if caller else kind(), payload, caller), False, status)

    def bad_s3_upload(image: Image) -> Request:
        name = rng.choice(["garbage.jpg", "bomb.png"])
        return Request("bad-s3-event", s3_event(corpus.input_bucket, corpus.keys[name]), False, "recorded")

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
    except RecordsFailed as exc:  # left to Lambda's retries: right for no request here
        return f"S3 event failed: {exc}"
    if request.expect == "written":  # or already written from these very bytes by this model: unchanged
        done = result.get("written") or [s for s in result.get("skipped", []) if s["reason"] == UNCHANGED]
        return None if done and not result.get("failed") else f"S3 event: {result}"
    if request.expect == "recorded":  # failed for good: recorded under failures/, not retried
        failed = result.get("failed") or []
        return None if failed and all("failure" in f for f in failed) else f"bad S3 event not recorded: {result}"
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
