"""Hardening: bad input, limits, S3 faults, security.

Bad input goes through the real Lambda entry as API Gateway (REST v1, HTTP API v2, Function URL) events and as
S3 / SQS events; each must be its documented 4xx JSON error (or a logged skip / a reported failure on the S3 path),
leave nothing in the output bucket and leave the process healthy. S3 faults use S3 endpoints of each test's own:
a moto server that the test stops mid-run (or slows down, or restarts), and moto enforcing IAM (access denied).
"""

from __future__ import annotations

import copy
import json
import random
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass

import pytest
from mangum import Mangum
from pydantic import ValidationError

from handler.app import create_app
from handler.config import Settings
from handler.errors import TooManyPixels
from handler.estimator import DepthEstimator
from handler.job import UNCHANGED
from handler.s3_store import S3Store
from handler.sources import s3_notification, sqs
from handler.sources.settle import RecordsFailed
from support import (
    API_KINDS,
    assert_clean_error,
    b64,
    call,
    encode,
    jpeg_claiming,
    list_keys,
    load_event,
    multipart,
    png_claiming,
    s3_event,
    scene,
    start_moto,
)

# ------------------------------------------------------------------------------------------------ inputs


JPEG = encode(scene(96, 64, seed=5))
PNG = encode(scene(80, 60, seed=6), "PNG")
BAD_IMAGES = {  # name → (bytes, error code the API answers)
    "garbage.jpg": (b"\x00\x13garbage bytes \xff\xfe" * 40, "invalid_image"),
    "empty.png": (b"", "invalid_image"),
    "truncated.jpg": (JPEG[: len(JPEG) // 2], "invalid_image"),
    "truncated.png": (PNG[: len(PNG) // 2], "invalid_image"),
    "bomb.png": (png_claiming(50_000, 50_000), "too_many_pixels"),
    "bomb.jpg": (jpeg_claiming(50_000, 50_000), "too_many_pixels"),
}
STATUS = {"invalid_image": 400, "too_many_pixels": 413}
WORDS = {"invalid_image": (), "too_many_pixels": ("50000x50000", "the limit is 16777216 pixels on the HTTP API")}


# ------------------------------------------------------------------------------------------------ helpers


def health(handler, context) -> dict:
    answer = call(handler, context, "v2", "GET", "/health")
    assert answer.status == 200
    return answer.json()


@pytest.fixture(scope="module")
def bad_objects(s3, input_bucket) -> dict[str, str]:
    """The bad images (and a good one, and a text file) uploaded to the allowed input bucket: name → key."""
    keys = {}
    for name, (data, _) in {**BAD_IMAGES, "good.jpg": (JPEG, None), "notes.txt": (b"hello", None)}.items():
        keys[name] = f"uploads/hardening/{uuid.uuid4().hex[:6]}/{name}"
        s3.put_object(Bucket=input_bucket, Key=keys[name], Body=data)
    return keys


# ------------------------------------------------------------------------------------------------ bad input: API


@dataclass
class Bad:
    """One bad request: path, body (or a function of the uploaded objects and buckets), expected error."""

    path: str
    body: object
    content_type: str | None
    status: int
    code: str
    words: tuple[str, ...] = ()
    query: str = ""


def _json(payload) -> bytes:
    return json.dumps(payload).encode()


BIG_JSON = 10 * 1024 * 1024 + 1  # one byte over API Gateway's (and MAX_JSON_BYTES') 10 MB
BAD_REQUESTS = {
    **{
        f"raw-{name}": Bad(
            "/depth", data, "image/jpeg" if "jpg" in name else "image/png", STATUS[code], code, WORDS[code]
        )
        for name, (data, code) in BAD_IMAGES.items()
    },
    "json-bomb": Bad(
        "/depth", _json({"image": b64(jpeg_claiming(50_000, 50_000))}), "application/json", 413, "too_many_pixels"
    ),
    "json-truncated-png": Bad("/depth", _json({"image": b64(PNG[:200])}), "application/json", 400, "invalid_image"),
    "json-invalid-base64": Bad(
        "/depth", _json({"image": "%%%not/base64!!"}), "application/json", 400, "invalid_base64"
    ),
    "json-empty-image": Bad("/depth", _json({"image": ""}), "application/json", 400, "invalid_base64"),
    "json-base64-of-text": Bad(
        "/depth", _json({"image": b64(b"%PDF-1.7 not an image")}), "application/json", 400, "invalid_image"
    ),
    "json-data-url-wrong-type": Bad(
        "/depth",
        _json({"image": "data:text/html;base64," + b64(b"<b>hi</b>")}),
        "application/json",
        415,
        "unsupported_media_type",
        ("text/html",),
    ),
    "json-data-url-not-base64": Bad(
        "/depth", _json({"image": "data:image/png,abc"}), "application/json", 400, "invalid_base64"
    ),
    "json-unknown-field": Bad(
        "/depth",
        _json({"image": b64(JPEG), "url": "x"}),
        "application/json",
        422,
        "validation_error",
        ("1 unknown field",),
    ),
    "json-several-mb-unknown-field": Bad(
        "/depth", _json({"image": b64(JPEG), "padding": "x" * 4_000_000}), "application/json", 422, "validation_error"
    ),
    "json-several-mb-not-an-image": Bad(
        "/depth", _json({"image": b64(random.Random(0).randbytes(3_000_000))}), "application/json", 400, "invalid_image"
    ),
    "json-over-10-mb": Bad(
        "/depth", b'{"image": "' + b"A" * BIG_JSON + b'"}', "application/json", 413, "payload_too_large", ("s3://",)
    ),
    "json-deeply-nested": Bad(
        "/depth", b'{"image": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "application/json", 400, "invalid_request"
    ),
    "json-not-utf8": Bad("/depth", b'{"image": "\xff\xfe"}', "application/json", 400, "invalid_request"),
    "json-array": Bad("/depth", b"[1, 2]", "application/json", 422, "validation_error"),
    "bad-colormap-query": Bad("/depth", PNG, "image/png", 422, "validation_error", ("colormap",), "colormap=rainbow"),
    "no-content-type": Bad("/depth", JPEG, None, 415, "unsupported_media_type"),
    "gif": Bad("/depth", encode(scene(8, 8), "GIF"), "image/gif", 415, "unsupported_media_type"),
    "multipart-without-image": Bad(
        "/predict", *multipart([("photo", "a.jpg", JPEG)]), 422, "validation_error", ("'image'",)
    ),
    "multipart-image-as-text": Bad("/predict", *multipart([("image", None, b"abc")]), 422, "validation_error"),
    "multipart-two-images": Bad(
        "/predict", *multipart([("image", "a.jpg", JPEG), ("image", "b.jpg", JPEG)]), 400, "invalid_request"
    ),
    "multipart-garbage-image": Bad("/predict", *multipart([("image", "a.jpg", b"garbage")]), 400, "invalid_image"),
    "multipart-bomb": Bad(
        "/predict", *multipart([("image", "b.png", png_claiming(50_000, 50_000))]), 413, "too_many_pixels"
    ),
    "multipart-no-boundary": Bad("/predict", b"--x\r\n\r\n", "multipart/form-data", 400, "invalid_request"),
    "predict-with-json": Bad(
        "/predict", _json({"image": b64(JPEG)}), "application/json", 415, "unsupported_media_type"
    ),
    "s3-missing-key": Bad(
        "/depth",
        lambda o, b: {"s3": f"s3://{b}/uploads/hardening/missing.jpg"},
        "application/json",
        404,
        "s3_object_not_found",
    ),
    "s3-bucket-not-allowed": Bad(
        "/depth",
        lambda o, b: {"s3": {"bucket": "someone-elses-bucket", "key": o["good.jpg"]}},
        "application/json",
        403,
        "bucket_not_allowed",
    ),
    "s3-dotdot-key": Bad(
        "/depth",
        lambda o, b: {"s3": {"bucket": b, "key": "hardening/../../etc/passwd"}},
        "application/json",
        422,
        "validation_error",
        ("'..'",),
    ),
    "s3-dotdot-uri": Bad(
        "/depth", lambda o, b: {"s3": f"s3://{b}/a/../b.jpg"}, "application/json", 422, "validation_error"
    ),
    **{
        f"s3-{name}": Bad(
            "/depth", lambda o, b, n=name: {"s3": f"s3://{b}/{o[n]}"}, "application/json", STATUS[code], code
        )
        for name, (_, code) in BAD_IMAGES.items()
    },
    "s3-text-object": Bad(
        "/depth", lambda o, b: {"s3": f"s3://{b}/{o['notes.txt']}"}, "application/json", 400, "invalid_image"
    ),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_request_through_the_entry(name, entry, lambda_context, s3, output_bucket, input_bucket, bad_objects):
    bad = BAD_REQUESTS[name]
    kind = API_KINDS[list(BAD_REQUESTS).index(name) % len(API_KINDS)]
    caller = "iam" if name.startswith("s3-") else None  # S3 references need a signed caller (not REST's v1 events)
    kind = "v2" if caller and kind == "v1" else kind
    body = bad.body(bad_objects, input_bucket) if callable(bad.body) else bad.body
    body = _json(body) if isinstance(body, dict) else body
    before_keys, before = list_keys(s3, output_bucket), health(entry.lambda_handler, lambda_context)

    answer = call(
        entry.lambda_handler, lambda_context, kind, "POST", bad.path, body, bad.content_type, bad.query, caller=caller
    )

    assert_clean_error(answer, bad.status, bad.code, *bad.words)
    assert len(answer.body) < 4096, "an error must not echo the request"
    after = health(entry.lambda_handler, lambda_context)
    assert after["images_processed"] == before["images_processed"], "a bad input must be refused before inference"
    assert list_keys(s3, output_bucket) == before_keys, "a refused request must leave nothing in the output bucket"


def test_api_missing_bucket_through_api_gateway(depth_model, baked_model_dir, lambda_context, s3_endpoint):
    """A bucket that is allowed by configuration but does not exist: 404 (a deployment of its own)."""
    gone = f"midas-gone-{uuid.uuid4().hex[:8]}"
    settings = Settings(model_dir=str(baked_model_dir), allowed_input_buckets=gone)
    handler = Mangum(create_app(DepthEstimator(settings, depth_model), S3Store()), lifespan="off")
    answer = call(
        handler, lambda_context, "v2", "POST", "/depth", _json({"s3": f"s3://{gone}/uploads/a.jpg"}), "application/json"
    )
    assert_clean_error(answer, 404, "s3_object_not_found", f"bucket {gone} does not exist")


def test_still_healthy_and_identical_after_bad_input(entry, lambda_context, estimator):
    """After every bad request above, the same container still answers good requests with the same bytes."""
    answer = call(entry.lambda_handler, lambda_context, "v2", "POST", "/depth", JPEG, "image/jpeg")
    assert answer.status == 200 and answer.headers["content-type"] == "image/png"
    assert answer.body == estimator.heatmap_png(estimator.estimate(JPEG))
    assert health(entry.lambda_handler, lambda_context)["status"] == "ok"


# ------------------------------------------------------------------------------------------------ bad input: S3


def wrap_in_sqs(*s3_events: dict) -> dict:
    """Each S3 notification as the body of one SQS message (what S3 → SQS → Lambda delivers)."""
    template = load_event("sqs-receive.json")["Records"][0]
    records = []
    for i, event in enumerate(s3_events):
        record = copy.deepcopy(template)
        record.update(messageId=f"msg-{i}", body=json.dumps(event))
        records.append(record)
    return {"Records": records}


@pytest.fixture
def s3_batch(s3, input_bucket, output_bucket, bad_objects):
    """One record per case: two good uploads, every bad image, a missing key, a missing bucket, a '..' key, a
    non-image key, one of the function's own outputs, a deletion and a record without its s3 section.
    → (key prefix, [(event, expected status, expected reason)])."""
    prefix = f"uploads/batch-{uuid.uuid4().hex[:6]}"
    good = {f"{prefix}/good-a.jpg": JPEG, f"{prefix}/good-b.png": PNG}
    for key, data in good.items():
        s3.put_object(Bucket=input_bucket, Key=key, Body=data)
    malformed = s3_event(input_bucket, "x.jpg")
    del malformed["Records"][0]["s3"]  # a hand-made event: no s3 section
    cases = [
        *[(s3_event(input_bucket, key), "written", "") for key in good],
        *[(s3_event(input_bucket, bad_objects[n]), "failed", code) for n, (_, code) in BAD_IMAGES.items()],
        (s3_event(input_bucket, f"{prefix}/missing.jpg"), "failed", "s3_object_not_found"),
        (s3_event(f"midas-gone-{uuid.uuid4().hex[:8]}", "uploads/a.jpg"), "failed", "bucket_not_allowed"),
        (s3_event(input_bucket, f"{prefix}/../escape.jpg"), "failed", "'..' segments"),
        (s3_event(input_bucket, bad_objects["notes.txt"]), "skipped", "not an image key"),
        (s3_event(output_bucket, "depth/uploads/own.png"), "skipped", "own outputs"),
        (s3_event(input_bucket, f"{prefix}/gone.jpg", event_name="ObjectRemoved:Delete"), "skipped", "not an upload"),
        (malformed, "failed", "malformed_record"),
    ]
    return prefix, cases


def test_s3_event_with_good_and_bad_records(entry, lambda_context, s3, output_bucket, s3_batch):
    prefix, cases = s3_batch
    event = {"Records": [e["Records"][0] for e, _, _ in cases]}
    before = list_keys(s3, output_bucket)

    with pytest.raises(RecordsFailed) as raised:
        entry.lambda_handler(event, lambda_context)

    summary = raised.value.summary  # every record is accounted for: written, skipped (logged) or failed
    assert sum(len(v) for v in summary.values()) == len(cases)
    failed_reasons = [f["reason"] for f in summary["failed"]]
    skipped_reasons = [s["reason"] for s in summary["skipped"]]
    for record_event, status, reason in cases:
        key = urllib.parse.unquote_plus(record_event["Records"][0].get("s3", {}).get("object", {}).get("key", ""))
        entries = [e for e in summary[status] if e["key"] == key]
        assert len(entries) == 1, (key, status, summary)
        assert reason in entries[0].get("reason", ""), entries
    # only the malformed record is retried; the failures of the objects themselves are recorded instead
    assert str(raised.value).startswith(f"1 of {len(cases)} records failed: s3:/// (malformed_record")
    assert len(failed_reasons) == 10 and len(skipped_reasons) == 3
    recorded = sorted(f["failure"] for f in summary["failed"] if "failure" in f)
    assert len(recorded) == 9 and all(k.startswith("depth/failures/") and k.endswith(".json") for k in recorded)
    new = sorted(set(list_keys(s3, output_bucket)) - set(before) - set(recorded))
    assert new == [f"depth/{prefix}/{stem}.{ext}" for stem in ("good-a.jpg", "good-b.png") for ext in ("pfm", "png")]


def test_sqs_batch_with_good_and_bad_messages(entry, lambda_context, s3, output_bucket, s3_batch):
    prefix, cases = s3_batch
    event = wrap_in_sqs(*(e for e, _, _ in cases))
    before = list_keys(s3, output_bucket)

    result = entry.lambda_handler(event, lambda_context)

    # redelivered: the malformed record's message alone (the other failures are recorded under failures/)
    expected = [f"msg-{i}" for i, (_, _, reason) in enumerate(cases) if reason == "malformed_record"]
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == expected
    new = {k for k in set(list_keys(s3, output_bucket)) - set(before) if not k.startswith("depth/failures/")}
    assert new == {f"depth/{prefix}/{stem}.{ext}" for stem in ("good-a.jpg", "good-b.png") for ext in ("pfm", "png")}


# ------------------------------------------------------------------------------------------------ limits


def test_response_over_lambdas_6_mb_is_refused_before_anything_is_written(entry, lambda_context, s3, output_bucket):
    """A 4000x3000 photo with the 16-bit depth inline is ~10 MB of base64: 413 pointing to output "s3"; with it, 200."""
    big = encode(scene(4000, 3000, seed=7), quality=85)  # ~0.25 MB in, ~7.5 MB of PNGs out
    before = list_keys(s3, output_bucket)
    payload = {"image": b64(big), "include_depth": True}  # default output: both (inline + S3)
    answer = call(entry.lambda_handler, lambda_context, "v2", "POST", "/depth", _json(payload), "application/json")
    assert_clean_error(answer, 413, "payload_too_large", "6 MB", '"s3"')
    assert list_keys(s3, output_bucket) == before

    payload["output"] = "s3"
    answer = call(entry.lambda_handler, lambda_context, "v2", "POST", "/depth", _json(payload), "application/json")
    assert answer.status == 200, answer.body[:300]
    body = answer.json()
    assert body["width"] == 4000 and "heatmap_png_base64" not in body and body["depth_s3"]["key"].endswith(".depth.png")


def test_pixel_cap_comes_from_the_environment(monkeypatch, baked_model_dir, depth_model):
    monkeypatch.setenv("MAX_IMAGE_PIXELS", "1000")
    settings = Settings(model_dir=str(baked_model_dir))
    assert settings.max_image_pixels == 1000
    with pytest.raises(TooManyPixels, match="40x30 = 1200 pixels"):
        DepthEstimator(settings, depth_model).estimate(encode(scene(40, 30), "PNG"))


def test_json_cap_cannot_exceed_api_gateway(baked_model_dir):
    with pytest.raises(ValidationError, match="10485760"):
        Settings(model_dir=str(baked_model_dir), max_json_bytes=20 * 1024 * 1024)


# ------------------------------------------------------------------------------------------------ S3 faults


class OwnS3:
    """A moto server of the test's own on 127.0.0.1 (moto's state is per process: it serves the session's buckets).

    ``on_request(method, path)`` runs before each request is served, so a test can stop the server while it is
    serving request N (N is still answered; every later request finds the endpoint gone), delay it, or restart it.
    """

    def __init__(self) -> None:
        self.port = 0
        self.server = None
        self.seen: list[tuple[str, str]] = []
        self.on_request = lambda method, path: None
        self.start()

    def start(self) -> None:
        self.server, _ = start_moto(self.port)
        self.port = self.server.get_host_and_port()[1]
        wsgi = self.server._server  # werkzeug's server: it looks its .app up for every request
        app = wsgi.app

        def hooked(environ, start_response):
            method, path = environ["REQUEST_METHOD"], urllib.parse.unquote(environ["PATH_INFO"])
            self.seen.append((method, path))
            self.on_request(method, path)
            return app(environ, start_response)

        wsgi.app = hooked

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def store(self, monkeypatch, **client_options) -> S3Store:
        """An S3Store (the function's) whose client talks to this server, with the environment's credentials."""
        import boto3

        with monkeypatch.context() as mp:
            mp.setenv("AWS_ENDPOINT_URL", self.url)
            mp.setattr(boto3, "DEFAULT_SESSION", None)  # a fresh default session: it reads the credentials anew
            store = S3Store(**client_options)
            assert store.client.meta.endpoint_url == self.url
        return store


@pytest.fixture
def own_s3():
    server = OwnS3()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fault_s3(own_s3, input_bucket, output_bucket):
    """A client of the test's own moto server, holding the session's bucket names: the fault tests bring their own
    data there, so they hold whichever emulator the session uses (moto in this process shares its state with the
    server; LocalStack's objects are not on it)."""
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("s3", endpoint_url=own_s3.url)
    for bucket in (input_bucket, output_bucket):
        try:
            client.create_bucket(Bucket=bucket)
        except ClientError as exc:  # the session's moto already made it
            if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
    return client


FAST = {"connect_timeout": 1, "read_timeout": 1, "max_attempts": 2}


@pytest.mark.parametrize("delivery", ["s3", "sqs"])
def test_endpoint_gone_mid_batch_then_redelivered(
    delivery, own_s3, monkeypatch, estimator, fault_s3, input_bucket, output_bucket, lambda_context
):
    prefix = f"uploads/fault-{uuid.uuid4().hex[:6]}"
    keys = [f"{prefix}/{n}.jpg" for n in ("one", "two", "three")]
    for i, key in enumerate(keys):
        fault_s3.put_object(Bucket=input_bucket, Key=key, Body=encode(scene(120, 90, seed=20 + i)))
    store = own_s3.store(monkeypatch, **FAST)

    def gone_while_reading_two(method: str, path: str) -> None:
        if method == "GET" and path.endswith("/two.jpg"):
            own_s3.stop()  # this GET is still answered; the PUT of two and everything after it find no endpoint

    own_s3.on_request = gone_while_reading_two
    if delivery == "s3":
        event = s3_event(input_bucket, *keys)
        with pytest.raises(RecordsFailed) as raised:
            s3_notification.handle(event, None, estimator=estimator, store=store)
        message = str(raised.value)
        assert message.startswith("2 of 3 records failed") and message.count("s3_unavailable") == 2
        assert "127.0.0.1" not in message
    else:
        event = wrap_in_sqs(*(s3_event(input_bucket, key) for key in keys))
        result = sqs.handle(event, None, estimator=estimator, store=store)
        assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == ["msg-1", "msg-2"]
    own_s3.on_request = lambda method, path: None
    own_s3.start()  # the endpoint is back on the same address (its objects kept); Lambda re-delivers the same event
    assert list_keys(fault_s3, output_bucket, f"depth/{prefix}/") == [
        f"depth/{prefix}/one.jpg.png"
    ]  # no partial result
    first = fault_s3.get_object(Bucket=output_bucket, Key=f"depth/{prefix}/one.jpg.png")["Body"].read()
    if delivery == "s3":
        summary = s3_notification.handle(event, None, estimator=estimator, store=store)
        assert [w["key"] for w in summary["written"]] == keys[1:] and not summary["failed"]
        assert [(s["key"], s["reason"]) for s in summary["skipped"]] == [(keys[0], UNCHANGED)]  # one was done
    else:
        assert sqs.handle(event, None, estimator=estimator, store=store) == {"batchItemFailures": []}
    assert list_keys(fault_s3, output_bucket, f"depth/{prefix}/") == [
        f"depth/{prefix}/{n}.jpg.png" for n in ("one", "three", "two")
    ]
    assert fault_s3.get_object(Bucket=output_bucket, Key=f"depth/{prefix}/one.jpg.png")["Body"].read() == first


def test_api_endpoint_gone_mid_request_is_503_then_recovers(
    own_s3, monkeypatch, estimator, fault_s3, input_bucket, output_bucket, lambda_context
):
    key = f"uploads/fault-api-{uuid.uuid4().hex[:6]}/photo.jpg"
    fault_s3.put_object(Bucket=input_bucket, Key=key, Body=encode(scene(100, 80, seed=30)))
    handler = Mangum(create_app(estimator, own_s3.store(monkeypatch, **FAST)), lifespan="off")
    payload = _json({"s3": f"s3://{input_bucket}/{key}", "include_depth": True})
    before = list_keys(fault_s3, output_bucket)

    own_s3.on_request = lambda method, path: own_s3.stop() if method == "GET" else None  # gone after the read
    answer = call(handler, lambda_context, "v2", "POST", "/depth", payload, "application/json")
    assert_clean_error(answer, 503, "s3_unavailable", "retry later")

    own_s3.on_request = lambda method, path: None
    own_s3.start()  # back, with its objects: the failed request left nothing behind
    assert list_keys(fault_s3, output_bucket) == before
    answer = call(handler, lambda_context, "v2", "POST", "/depth", payload, "application/json")
    assert answer.status == 200, answer.body[:300]
    assert answer.json()["heatmap_s3"]["key"] in list_keys(fault_s3, output_bucket, "depth/api/")


def test_api_endpoint_down_is_503(own_s3, monkeypatch, estimator, input_bucket, lambda_context):
    handler = Mangum(create_app(estimator, own_s3.store(monkeypatch, **FAST)), lifespan="off")
    own_s3.stop()
    answer = call(
        handler,
        lambda_context,
        "v2",
        "POST",
        "/depth",
        _json({"s3": f"s3://{input_bucket}/uploads/a.jpg"}),
        "application/json",
    )
    assert_clean_error(answer, 503, "s3_unavailable", "could not be reached", "retry later")


def test_slow_s3_times_out_as_503_and_fails_the_record(
    own_s3, monkeypatch, estimator, fault_s3, input_bucket, lambda_context
):
    key = f"uploads/slow-{uuid.uuid4().hex[:6]}/photo.jpg"
    fault_s3.put_object(Bucket=input_bucket, Key=key, Body=encode(scene(64, 48, seed=31)))
    store = own_s3.store(monkeypatch, **FAST)
    handler = Mangum(create_app(estimator, store), lifespan="off")
    payload = _json({"s3": f"s3://{input_bucket}/{key}", "output": "inline"})

    own_s3.on_request = lambda method, path: time.sleep(0.2) if method == "GET" else None  # slow, within the timeout
    assert call(handler, lambda_context, "v2", "POST", "/depth", payload, "application/json").status == 200

    own_s3.on_request = lambda method, path: time.sleep(2.5) if method == "GET" else None  # over read_timeout=1
    own_s3.seen.clear()
    answer = call(handler, lambda_context, "v2", "POST", "/depth", payload, "application/json")
    assert_clean_error(answer, 503, "s3_unavailable", "did not answer in time", "retry later")
    assert own_s3.seen.count(("GET", f"/{input_bucket}/{key}")) == 2, "the read is retried once (max_attempts=2)"
    with pytest.raises(RecordsFailed, match="s3_unavailable"):
        s3_notification.handle(s3_event(input_bucket, key), None, estimator=estimator, store=store)


class MotoIam:
    """IAM enforcement on the process's moto state (moto's documented /moto-api/reset-auth switch, server mode)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _reset(self, count: str) -> None:
        request = urllib.request.Request(
            f"{self.url}/moto-api/reset-auth",
            data=count.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request) as response:
            assert response.status == 200

    def __enter__(self) -> MotoIam:
        self._reset("0")
        return self

    def __exit__(self, *exc) -> None:
        self._reset("inf")


@dataclass
class Restricted:
    store: S3Store
    enforced: MotoIam
    allowed_key: str
    secret_key: str


@pytest.fixture
def restricted(own_s3, monkeypatch, fault_s3, input_bucket, output_bucket):
    """The function's S3Store with the credentials of an IAM user that may read only ``<input>/uploads/allowed/*`` and
    read ``<output>/depth/*`` (the HEAD that tells an unchanged result) and put/delete only ``<output>/depth/*.pfm``
    (so a record's heatmap, written last, is denied after its .pfm was written).
    IAM is enforced only inside ``with restricted.enforced:`` (the session's own clients are not that user)."""
    import boto3

    run = uuid.uuid4().hex[:6]
    allowed, secret = f"uploads/allowed/{run}/photo.jpg", f"uploads/secret/{run}/photo.jpg"
    for i, key in enumerate((allowed, secret)):
        fault_s3.put_object(Bucket=input_bucket, Key=key, Body=encode(scene(64, 48, seed=40 + i)))
    iam = boto3.client("iam", endpoint_url=own_s3.url)
    user = f"midas-fn-{run}"
    iam.create_user(UserName=user)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{input_bucket}/uploads/allowed/*"},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{output_bucket}/depth/*"},
            {
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject"],
                "Resource": f"arn:aws:s3:::{output_bucket}/depth/*.pfm",
            },
        ],
    }
    iam.put_user_policy(UserName=user, PolicyName="least", PolicyDocument=json.dumps(policy))
    access = iam.create_access_key(UserName=user)["AccessKey"]
    with monkeypatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", access["AccessKeyId"])
        mp.setenv("AWS_SECRET_ACCESS_KEY", access["SecretAccessKey"])
        store = own_s3.store(mp, **FAST)
    return Restricted(store, MotoIam(own_s3.url), allowed, secret)


def test_access_denied_is_403_and_fails_the_record_without_leftovers(
    restricted, own_s3, depth_model, baked_model_dir, fault_s3, input_bucket, output_bucket, lambda_context
):
    settings = Settings(
        model_dir=str(baked_model_dir),
        output_bucket=output_bucket,
        allowed_input_buckets=input_bucket,
        write_raw_depth=True,
    )
    estimator = DepthEstimator(settings, depth_model)
    handler = Mangum(create_app(estimator, restricted.store), lifespan="off")
    before = list_keys(fault_s3, output_bucket)
    ref = {"s3": f"s3://{input_bucket}/{restricted.secret_key}"}
    with restricted.enforced:
        denied = call(handler, lambda_context, "v2", "POST", "/depth", _json(ref), "application/json")
        with pytest.raises(RecordsFailed) as raised:
            s3_notification.handle(
                s3_event(input_bucket, restricted.allowed_key, restricted.secret_key),
                None,
                estimator=estimator,
                store=restricted.store,
            )
    assert_clean_error(denied, 403, "s3_access_denied", restricted.secret_key)
    failed = {f["key"]: f["reason"] for f in raised.value.summary["failed"]}
    assert set(failed) == {restricted.allowed_key, restricted.secret_key}
    assert all(reason.startswith("s3_access_denied") for reason in failed.values()), failed
    assert ".png was denied" in failed[restricted.allowed_key]
    # the allowed record's .pfm was written, its heatmap (.png) denied: the .pfm was deleted again (no partial result)
    pfm = f"/{output_bucket}/depth/{restricted.allowed_key}.pfm"
    assert ("PUT", pfm) in own_s3.seen and ("DELETE", pfm) in own_s3.seen
    assert list_keys(fault_s3, output_bucket) == before


def test_unexpected_s3_error_is_502(entry, lambda_context, s3, input_bucket, output_bucket):
    """An archived (GLACIER) object: S3 answers InvalidObjectState, which is neither missing nor denied."""
    key = f"uploads/archived-{uuid.uuid4().hex[:6]}/photo.jpg"
    s3.put_object(Bucket=input_bucket, Key=key, Body=JPEG, StorageClass="GLACIER")
    answer = call(
        entry.lambda_handler,
        lambda_context,
        "v2",
        "POST",
        "/depth",
        _json({"s3": f"s3://{input_bucket}/{key}"}),
        "application/json",
    )
    assert_clean_error(answer, 502, "s3_error", "InvalidObjectState")
    with pytest.raises(RecordsFailed, match="s3_error"):
        entry.lambda_handler(s3_event(input_bucket, key), lambda_context)


# ------------------------------------------------------------------------------------------------ security


def test_no_endpoint_fetches_a_url(entry, lambda_context, canary):
    url, hits = canary
    payloads = [
        {"image": f"{url}/photo.jpg"},
        {"image": f"data:image/jpeg;base64,{url}/photo.jpg"},
        {"s3": f"{url}/photo.jpg"},
        {"s3": {"bucket": url, "key": "photo.jpg"}},
        {"image": b64(JPEG), "url": f"{url}/photo.jpg"},
    ]
    for payload in payloads:
        answer = call(entry.lambda_handler, lambda_context, "v2", "POST", "/depth", _json(payload), "application/json")
        assert 400 <= answer.status < 500 and answer.json()["status"] == "error", (payload, answer.body)
    upload, content_type = multipart([("image", f"{url}/photo.jpg", url.encode())])
    assert call(entry.lambda_handler, lambda_context, "v1", "POST", "/predict", upload, content_type).status == 400
    assert hits == []


def test_presigned_urls_expire(entry, lambda_context):
    payload = {"image": b64(JPEG), "output": "s3", "include_depth": True}
    answer = call(entry.lambda_handler, lambda_context, "v2", "POST", "/depth", _json(payload), "application/json")
    body = answer.json()
    for location in (body["heatmap_s3"], body["depth_s3"]):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(location["url"]).query)
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Signature"]
        assert query["X-Amz-Expires"] == [str(entry.estimator.settings.presigned_url_ttl)] == ["3600"]
    with pytest.raises(ValidationError, match="presigned_url_ttl"):
        Settings(presigned_url_ttl=8 * 24 * 3600)  # SigV4 URLs cannot live longer than 7 days
