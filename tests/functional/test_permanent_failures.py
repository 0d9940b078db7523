"""Uploads that can never succeed as they are (not an image, over the pixel cap, outside the upload prefix, an output
key over S3's 1 024 bytes) through the real entry on a real S3/SQS endpoint: recorded once under the output bucket's
``failures/``, counted as ``ImagesRefused``, and not retried; a failure that cannot be recorded is still retried.
"""

from __future__ import annotations

import json
import uuid

import pytest

from handler import job
from handler.config import Settings
from handler.estimator import DepthEstimator
from handler.s3_store import S3Store
from handler.sources import s3_notification
from handler.sources.settle import RecordsFailed
from support import encode, eventbridge_event, list_keys, png_claiming, s3_event, scene, sqs_event

TINY = encode(scene(32, 24, seed=7))


def failure_record(s3, output_bucket: str, bucket: str, key: str) -> dict:
    body = s3.get_object(Bucket=output_bucket, Key=f"depth/failures/{bucket}/{key}.json")["Body"].read()
    return json.loads(body)


def test_permanently_bad_uploads_are_recorded_once_and_not_retried(
    entry, lambda_context, s3, input_bucket, output_bucket, capsys
):
    run = uuid.uuid4().hex[:8]
    good, broken, huge = f"uploads/{run}/good.jpg", f"uploads/{run}/broken.jpg", f"uploads/{run}/huge.png"
    outside = f"private/{run}/a.jpg"
    too_long = f"uploads/{run}/" + "é" * 497 + ".jpg"  # fits S3 as a key; depth/ + key + .png does not
    s3.put_object(Bucket=input_bucket, Key=good, Body=TINY)
    s3.put_object(Bucket=input_bucket, Key=broken, Body=b"\xff\xd8\xff not really a jpeg")
    s3.put_object(Bucket=input_bucket, Key=huge, Body=png_claiming(10_000, 10_000))
    s3.put_object(Bucket=input_bucket, Key=outside, Body=TINY)
    s3.put_object(Bucket=input_bucket, Key=too_long, Body=TINY)
    capsys.readouterr()

    summary = entry.lambda_handler(s3_event(input_bucket, good, broken, huge, outside, too_long), lambda_context)

    assert [w["heatmap"] for w in summary["written"]] == [f"depth/{good}.png"]
    reasons = {f["key"]: f["reason"].split(":")[0] for f in summary["failed"]}
    assert reasons == {
        broken: "invalid_image",
        huge: "too_many_pixels",
        outside: "key_not_allowed",
        too_long: "invalid_request",
    }
    for key in (broken, huge, outside):
        [listed] = [f for f in summary["failed"] if f["key"] == key]
        assert listed["failure"] == f"depth/failures/{input_bucket}/{key}.json"
        record = failure_record(s3, output_bucket, input_bucket, key)
        assert record["bucket"] == input_bucket and record["key"] == key
        assert record["error"] == reasons[key] and record["reason"] == listed["reason"]
    # the key too long for outputs is too long for its record's name too: named by its digest, the key inside
    [listed] = [f for f in summary["failed"] if f["key"] == too_long]
    assert listed["failure"].startswith(f"depth/failures/{input_bucket}/sha256-")
    record = json.loads(s3.get_object(Bucket=output_bucket, Key=listed["failure"])["Body"].read())
    assert record["key"] == too_long and "S3 allows 1024" in record["reason"]
    # a user lists every failure under one prefix
    assert len(list_keys(s3, output_bucket, f"depth/failures/{input_bucket}/")) >= 4
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert metrics[-1]["ImagesRefused"] == [1.0] * 4 and metrics[-1]["ImagesWritten"] == [1.0]


def test_eventbridge_event_of_a_broken_upload_is_recorded_not_raised(
    entry, lambda_context, s3, input_bucket, output_bucket
):
    key = f"uploads/eb-{uuid.uuid4().hex[:8]}/broken+1.jpg"  # a "+": tried decoded first, then as sent
    s3.put_object(Bucket=input_bucket, Key=key, Body=b"GIF89a not what the extension says")
    summary = entry.lambda_handler(eventbridge_event(input_bucket, key), lambda_context)
    [failed] = summary["failed"]
    assert failed["key"] == key and failed["reason"].startswith("unsupported_media_type: GIF")
    assert failure_record(s3, output_bucket, input_bucket, key)["error"] == "unsupported_media_type"
    # the decoded key (a space instead of "+") named no object: that attempt left no record
    assert list_keys(s3, output_bucket, f"depth/failures/{input_bucket}/{key.rsplit('/', 1)[0]}/") == [
        f"depth/failures/{input_bucket}/{key}.json"
    ]


def test_queue_mode_settles_a_broken_upload_on_its_first_receive(
    entry, lambda_context, s3, sqs, input_bucket, output_bucket
):
    """The message is deleted after one receive (its record holds what it held): no dead-letter queue trip."""
    run = uuid.uuid4().hex[:8]
    dlq = sqs.create_queue(QueueName=f"refused-dlq-{run}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
    queue = sqs.create_queue(QueueName=f"refused-{run}", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    key = f"uploads/{run}/broken.jpg"
    s3.put_object(Bucket=input_bucket, Key=key, Body=b"\xff\xd8\xff truncated")
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(s3_event(input_bucket, key)))
    [message] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    answer = entry.lambda_handler(sqs_event([message]), lambda_context)
    assert answer == {"batchItemFailures": []}  # Lambda deletes it
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    assert failure_record(s3, output_bucket, input_bucket, key)["error"] == "invalid_image"
    assert sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", []) == []


def test_a_failure_that_cannot_be_recorded_is_left_to_retries(baked_model_dir, depth_model, s3, input_bucket):
    """No record, no drop: with the output bucket gone, the broken upload fails the invocation (Lambda retries it)."""
    key = f"uploads/{uuid.uuid4().hex[:8]}/broken.jpg"
    s3.put_object(Bucket=input_bucket, Key=key, Body=b"\xff\xd8\xff truncated")
    gone = f"midas-gone-{uuid.uuid4().hex[:8]}"
    settings = Settings(model_dir=str(baked_model_dir), output_bucket=gone, allowed_input_buckets=input_bucket)
    estimator = DepthEstimator(settings, depth_model)
    store = S3Store()
    outcome = job.run(input_bucket, key, estimator=estimator, store=store)
    assert outcome.status == "failed" and not outcome.permanent
    assert outcome.reason.startswith("invalid_image") and "not recorded (s3_object_not_found" in outcome.reason
    with pytest.raises(RecordsFailed, match="1 of 1 records failed"):
        s3_notification.handle(s3_event(input_bucket, key), None, estimator=estimator, store=store)


def test_an_object_named_with_encoded_dots_is_written_through_eventbridge_as_through_a_notification(
    entry, lambda_context, s3, input_bucket, output_bucket
):
    """``uploads/%2e%2e/d.jpg`` is a name, not a path: decoding it to ``uploads/../d.jpg`` refused it for good."""
    key = f"uploads/{uuid.uuid4().hex[:8]}/%2e%2e/d.jpg"
    s3.put_object(Bucket=input_bucket, Key=key, Body=TINY)
    written = entry.lambda_handler(eventbridge_event(input_bucket, key), lambda_context)["written"]
    assert [w["heatmap"] for w in written] == [f"depth/{key}.png"]
    s3.delete_object(Bucket=output_bucket, Key=f"depth/{key}.png")
    written = entry.lambda_handler(s3_event(input_bucket, key), lambda_context)["written"]  # the notification's way
    assert [w["heatmap"] for w in written] == [f"depth/{key}.png"]
