"""The S3 upload trigger through the real Lambda entry, with events produced by the S3 emulator itself."""

from __future__ import annotations

import copy
import json
import uuid
from urllib.parse import quote, quote_plus

import numpy as np
import pytest

from handler import job
from handler.job import UNCHANGED
from handler.sources.settle import RecordsFailed
from support import encode, list_keys, load_event, read_pfm, s3_event, scene

AWKWARD_KEYS = [
    "uploads/my photo (1).jpg",
    "uploads/a+b=c&d.jpeg",
    "uploads/ünïcødé/日本語 写真.png",
    "uploads/nested/deep/er/x.webp",
]


def image_for(key: str, seed: int) -> bytes:
    fmt = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}[key.rsplit(".", 1)[1]]
    return encode(scene(96 + seed * 8, 64, seed=seed), fmt)


@pytest.fixture
def notified_bucket(s3, sqs, events_bucket):
    """An input bucket whose ObjectCreated notifications now go to a fresh SQS queue on the emulator."""
    bucket = events_bucket
    queue_url = sqs.create_queue(QueueName=f"{bucket}-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    return bucket, queue_url


def drain(sqs, queue_url: str, expected: int) -> list[dict]:
    """The SQS messages the emulator produced (S3 test events dropped)."""
    messages: list[dict] = []
    for _ in range(20):
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        messages += [m for m in batch if json.loads(m["Body"]).get("Event") != "s3:TestEvent"]
        if len(messages) >= expected:
            break
    assert len(messages) == expected, f"got {len(messages)} S3 notifications, expected {expected}"
    return messages


def upload_and_collect(s3, sqs, notified_bucket, keys) -> list[dict]:
    bucket, queue_url = notified_bucket
    for i, key in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=key, Body=image_for(key, i))
    return [json.loads(m["Body"]) for m in drain(sqs, queue_url, len(keys))]


def test_emulator_events_with_awkward_keys(entry, lambda_context, s3, sqs, notified_bucket, output_bucket):
    bucket, _ = notified_bucket
    events = upload_and_collect(s3, sqs, notified_bucket, AWKWARD_KEYS)
    results = [entry.lambda_handler(event, lambda_context) for event in events]
    for result in results:
        assert len(result["written"]) == 1 and not result["failed"], result
    for i, key in enumerate(AWKWARD_KEYS):
        stem = key  # the whole key: uploads/a.jpg → depth/uploads/a.jpg.png
        assert [result["written"][0]["heatmap"] for result in results if result["written"][0]["key"] == key] == [
            f"depth/{stem}.png"
        ]
        head = s3.head_object(Bucket=output_bucket, Key=f"depth/{stem}.png")
        assert head["ContentType"] == "image/png"
        assert head["Metadata"]["source-bucket"] == bucket
        assert head["Metadata"]["model-sha256"] == entry.estimator.model.manifest.data["onnx_sha256"]
        pfm = s3.get_object(Bucket=output_bucket, Key=f"depth/{stem}.pfm")["Body"].read()
        depth = read_pfm(pfm)
        assert depth.shape == (64, 96 + i * 8) and np.isfinite(depth).all()


def test_sqs_wrapped_notifications_report_per_message(entry, lambda_context, s3, sqs, notified_bucket, output_bucket):
    bucket, queue_url = notified_bucket
    keys = ["uploads/sqs-good.jpg", "uploads/sqs-broken.jpg"]
    s3.put_object(Bucket=bucket, Key=keys[0], Body=image_for(keys[0], 1))
    s3.put_object(Bucket=bucket, Key=keys[1], Body=b"this is not a jpeg")
    messages = drain(sqs, queue_url, 2)
    template = load_event("sqs-receive.json")["Records"][0]
    records = []
    for m in messages:
        record = copy.deepcopy(template)
        record.update(messageId=m["MessageId"], body=m["Body"])
        records.append(record)
    records.append({**copy.deepcopy(template), "messageId": "not-json", "body": "{oops"})
    result = entry.lambda_handler({"Records": records}, lambda_context)
    # the broken upload is recorded and its message settled; a body that is no notification keeps failing
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == ["not-json"]
    assert "depth/uploads/sqs-good.jpg.png" in list_keys(s3, output_bucket, "depth/uploads/sqs-")
    assert "depth/uploads/sqs-broken.jpg.png" not in list_keys(s3, output_bucket, "depth/uploads/sqs-")
    assert list_keys(s3, output_bucket, f"depth/failures/{bucket}/uploads/sqs-") == [
        f"depth/failures/{bucket}/uploads/sqs-broken.jpg.json"
    ]


def test_an_sqs_record_without_a_message_id_does_not_fail_the_others(entry, lambda_context):
    template = load_event("sqs-receive.json")["Records"][0]
    nameless = {k: v for k, v in copy.deepcopy(template).items() if k != "messageId"} | {"body": "{oops"}
    test_event = {**copy.deepcopy(template), "messageId": "test", "body": json.dumps({"Event": "s3:TestEvent"})}
    result = entry.lambda_handler({"Records": [nameless, test_event]}, lambda_context)
    assert result == {"batchItemFailures": [{"itemIdentifier": ""}]}  # Lambda retries the batch: nothing is lost


KEY_ENCODINGS = {  # how each sender writes s3.object.key in its notifications
    "aws": lambda key: quote_plus(key, safe="/"),  # form-encoded, slashes kept (as sam local generate-event)
    "moto": quote_plus,  # form-encoded, slashes too
    "localstack": quote,  # percent-encoded: a space is %20, a plus %2B
}


@pytest.mark.parametrize("sender", KEY_ENCODINGS)
def test_every_senders_key_encoding_names_the_object(sender, entry, lambda_context, s3, input_bucket, output_bucket):
    key = f"uploads/enc-{sender}/a+b=c&d é 100%.jpg"
    s3.put_object(Bucket=input_bucket, Key=key, Body=image_for(key, 4))
    event = s3_event(input_bucket, key)
    event["Records"][0]["s3"]["object"]["key"] = KEY_ENCODINGS[sender](key)
    assert event["Records"][0]["s3"]["object"]["key"] != key
    written = entry.lambda_handler(event, lambda_context)["written"]
    assert [(w["key"], w["heatmap"]) for w in written] == [(key, f"depth/uploads/enc-{sender}/a+b=c&d é 100%.jpg.png")]
    assert list_keys(s3, output_bucket, f"depth/uploads/enc-{sender}/") == [
        f"depth/uploads/enc-{sender}/a+b=c&d é 100%.jpg.pfm",
        f"depth/uploads/enc-{sender}/a+b=c&d é 100%.jpg.png",
    ]


def test_committed_sam_event_key_is_decoded(entry, lambda_context, s3, input_bucket, output_bucket):
    event = load_event("s3-put.json")
    assert event["Records"][0]["s3"]["object"]["key"] == "uploads/my%20photo%20%281%29.jpg"  # sam's encoding
    event["Records"][0]["s3"]["bucket"]["name"] = input_bucket
    s3.put_object(Bucket=input_bucket, Key="uploads/my photo (1).jpg", Body=image_for("x.jpg", 2))
    result = entry.lambda_handler(event, lambda_context)
    assert result["written"][0]["heatmap"] == "depth/uploads/my photo (1).jpg.png"
    assert "depth/uploads/my photo (1).jpg.png" in list_keys(s3, output_bucket, "depth/uploads/my photo")


def test_bad_record_does_not_lose_the_others(entry, lambda_context, s3, input_bucket, output_bucket):
    good = ["uploads/batch/one.jpg", "uploads/batch/two.png"]
    for i, key in enumerate(good):
        s3.put_object(Bucket=input_bucket, Key=key, Body=image_for(key, i))
    s3.put_object(Bucket=input_bucket, Key="uploads/batch/bad.jpg", Body=b"\xff\xd8\xff garbage")
    event = s3_event(
        input_bucket, good[0], "uploads/batch/bad.jpg", "uploads/batch/missing.jpg", good[1], "uploads/batch/readme.txt"
    )
    summary = entry.lambda_handler(event, lambda_context)  # both failures are for good: recorded, not retried
    reasons = {f["key"]: f["reason"].split(":")[0] for f in summary["failed"]}
    assert reasons == {"uploads/batch/bad.jpg": "invalid_image", "uploads/batch/missing.jpg": "s3_object_not_found"}
    written = list_keys(s3, output_bucket, "depth/uploads/batch/")
    assert written == [
        f"depth/uploads/batch/{name}" for name in ("one.jpg.pfm", "one.jpg.png", "two.png.pfm", "two.png.png")
    ]


def test_redelivery_of_an_unchanged_object_writes_nothing(entry, lambda_context, s3, input_bucket, output_bucket):
    key = "uploads/redo/photo.jpg"
    s3.put_object(Bucket=input_bucket, Key=key, Body=image_for(key, 3))
    event = s3_event(input_bucket, key)  # the sam payload's eTag: not this object's (a conditional GET tells)
    first = entry.lambda_handler(event, lambda_context)
    assert [w["heatmap"] for w in first["written"]] == ["depth/uploads/redo/photo.jpg.png"]
    heads = {
        k: s3.head_object(Bucket=output_bucket, Key=k) for k in list_keys(s3, output_bucket, "depth/uploads/redo/")
    }
    etag = s3.head_object(Bucket=input_bucket, Key=key)["ETag"].strip('"')
    with_etag = s3_event(input_bucket, key)
    with_etag["Records"][0]["s3"]["object"]["eTag"] = etag  # as S3 sends it: the HEAD of the heatmap decides
    for again in (event, with_etag):
        second = entry.lambda_handler(again, lambda_context)
        assert second["written"] == [] and second["failed"] == []
        assert [s["reason"] for s in second["skipped"]] == [UNCHANGED]
    assert list(heads) == ["depth/uploads/redo/photo.jpg.pfm", "depth/uploads/redo/photo.jpg.png"]
    for k, head in heads.items():  # not rewritten
        now = s3.head_object(Bucket=output_bucket, Key=k)
        assert (now["ETag"], now["LastModified"]) == (head["ETag"], head["LastModified"])
        assert now["Metadata"]["source-etag"] == etag


def test_a_changed_object_or_recipe_is_processed_again(
    entry, lambda_context, estimator, s3, input_bucket, output_bucket
):
    key = "uploads/redo/changed.jpg"
    heatmap = f"depth/{key}.png"
    s3.put_object(Bucket=input_bucket, Key=key, Body=image_for(key, 3))
    assert entry.lambda_handler(s3_event(input_bucket, key), lambda_context)["written"]
    s3.put_object(Bucket=input_bucket, Key=key, Body=image_for(key, 5))  # overwritten: another ETag
    new_etag = s3.head_object(Bucket=input_bucket, Key=key)["ETag"].strip('"')
    assert entry.lambda_handler(s3_event(input_bucket, key), lambda_context)["written"]
    assert s3.head_object(Bucket=output_bucket, Key=heatmap)["Metadata"]["source-etag"] == new_etag
    # the same object, another recipe: the entry writes heatmap + PFM, this estimator the heatmap alone
    assert not estimator.settings.write_raw_depth
    assert job.run(input_bucket, key, estimator=estimator, store=entry.store, etag=new_etag).status == "written"
    assert job.run(input_bucket, key, estimator=estimator, store=entry.store, etag=new_etag).reason == UNCHANGED


def test_skips_own_outputs_non_images_and_deletions(entry, lambda_context, s3, input_bucket, output_bucket):
    """Even a trigger misconfigured on the output bucket must not recurse on the function's own outputs."""
    before = list_keys(s3, output_bucket)
    own = s3_event(output_bucket, "depth/uploads/x.jpg.png")
    assert entry.lambda_handler(own, lambda_context)["skipped"][0]["reason"] == "one of this function's own outputs"
    other = s3_event(input_bucket, "uploads/notes/readme.md", "uploads/notes/archive.zip")
    assert [s["reason"] for s in entry.lambda_handler(other, lambda_context)["skipped"]] == [
        "not an image key (by extension)"
    ] * 2
    removed = s3_event(input_bucket, "uploads/gone.jpg", event_name="ObjectRemoved:Delete")
    reason = entry.lambda_handler(removed, lambda_context)["skipped"][0]["reason"]
    assert reason == "not an upload (eventName is not ObjectCreated:*)"
    assert list_keys(s3, output_bucket) == before


@pytest.mark.parametrize(
    "where, key, reason",
    [
        ("someone-elses-bucket", "uploads/a.jpg", "bucket_not_allowed: not one of this function's input buckets"),
        ("output", "uploads/a.jpg", "bucket_not_allowed: not one of this function's input buckets"),
        ("input", "private/hr/badge-photo.jpg", "key_not_allowed: outside the upload prefix uploads/"),
        ("input", "Uploads/a.jpg", "key_not_allowed: outside the upload prefix uploads/"),
    ],
)
def test_records_outside_the_input_bucket_or_upload_prefix_are_refused_unread(
    entry, lambda_context, s3, input_bucket, output_bucket, where, key, reason
):
    bucket = {"input": input_bucket, "output": output_bucket}.get(where, where)
    if where == "input":
        s3.put_object(Bucket=input_bucket, Key=key, Body=image_for(key, 1))  # it exists: still not read
    before = list_keys(s3, output_bucket)
    [record] = entry.lambda_handler(s3_event(bucket, key), lambda_context)["failed"]  # for good: not retried
    assert record["bucket"] == bucket and record["key"] == key and record["reason"].startswith(reason)
    assert record["failure"] == f"depth/failures/{bucket}/{key}.json"  # the only object written: the record
    assert list_keys(s3, output_bucket) == sorted({*before, record["failure"]})


@pytest.mark.parametrize(
    "spoil",
    [
        lambda r: r.update(eventName=7),
        lambda r: r.update(eventName=None),
        lambda r: r["s3"]["bucket"].update(name=["a"]),
        lambda r: r["s3"]["object"].update(key={"k": 1}),
        lambda r: r.pop("s3"),
    ],
    ids=["int eventName", "null eventName", "list bucket", "object key", "no s3"],
)
def test_a_malformed_record_fails_alone(entry, lambda_context, s3, input_bucket, output_bucket, spoil):
    key = f"uploads/malformed-neighbour-{uuid.uuid4().hex[:8]}.jpg"  # a new object each time: written, not unchanged
    s3.put_object(Bucket=input_bucket, Key=key, Body=image_for(key, 2))
    event = s3_event(input_bucket, key, key)
    spoil(event["Records"][0])
    with pytest.raises(RecordsFailed) as failed:
        entry.lambda_handler(event, lambda_context)
    summary = failed.value.summary
    assert [f["reason"].split(":")[0] for f in summary["failed"]] == ["malformed_record"]
    assert [w["heatmap"] for w in summary["written"]] == [f"depth/{key}.png"]


def test_uploads_that_differ_only_by_extension_keep_their_own_outputs(
    entry, lambda_context, s3, input_bucket, output_bucket
):
    keys = ["uploads/same-name.jpg", "uploads/same-name.png", "uploads/same-name.JPG"]
    for i, key in enumerate(keys):
        s3.put_object(Bucket=input_bucket, Key=key, Body=image_for(key.lower(), i))
    written = entry.lambda_handler(s3_event(input_bucket, *keys), lambda_context)["written"]
    assert [w["heatmap"] for w in written] == [f"depth/{k}.png" for k in keys]
    heatmaps = {k: s3.get_object(Bucket=output_bucket, Key=f"depth/{k}.png")["Body"].read() for k in keys}
    assert len(set(heatmaps.values())) == 3  # three images, three heatmaps: none overwrote another
    for key in keys:
        meta = s3.head_object(Bucket=output_bucket, Key=f"depth/{key}.png")["Metadata"]
        assert meta["source-key"] == key


def test_long_unicode_keys_fit_s3_limits(entry, lambda_context, s3, input_bucket, output_bucket):
    """Metadata over S3's 2 KB becomes a digest; an output key over 1024 bytes fails the record up front."""
    long_key = (
        "uploads/long/" + "写真" * 150 + ".jpg"
    )  # 905 UTF-8 bytes: fits S3, its percent-encoding (2.7 KB) does not
    s3.put_object(Bucket=input_bucket, Key=long_key, Body=image_for("x.jpg", 1))
    result = entry.lambda_handler(s3_event(input_bucket, long_key), lambda_context)
    meta = s3.head_object(Bucket=output_bucket, Key=result["written"][0]["heatmap"])["Metadata"]
    assert meta["source-key"].startswith("sha256:") and sum(len(k) + len(v) for k, v in meta.items()) < 2048
    too_long = "uploads/long/" + "é" * 501 + ".jpg"  # 1022 bytes as an input key; depth/ + key + .png: over 1024
    s3.put_object(Bucket=input_bucket, Key=too_long, Body=image_for("x.jpg", 1))
    [failed] = entry.lambda_handler(s3_event(input_bucket, too_long), lambda_context)["failed"]
    assert "S3 allows 1024" in failed["reason"]  # recorded under failures/, not retried
    assert not [k for k in list_keys(s3, output_bucket, "depth/uploads/long/") if "é" in k]
