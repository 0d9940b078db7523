"""Uploads through EventBridge, on the emulator: the template's own rule (its pattern, read from infra/template.yaml)
on a bucket with EventBridge notifications, delivered straight to the entry or through an SQS queue that several
worker threads drain as Lambda's event source mapping does; and the metrics each image leaves in the logs.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote_plus

import pytest
import yaml

from handler.job import UNCHANGED
from support import ROOT, api_event, encode, eventbridge_event, list_keys, scene, sqs_event

TEMPLATE = ROOT / "infra" / "template.yaml"
TINY = encode(scene(32, 24, seed=5))


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt, ...) read as their long forms."""


def _tag(loader, suffix, node):
    value = (
        loader.construct_scalar(node)
        if isinstance(node, yaml.ScalarNode)
        else loader.construct_sequence(node, deep=True)
        if isinstance(node, yaml.SequenceNode)
        else loader.construct_mapping(node, deep=True)
    )
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _tag)


def upload_rule_pattern(bucket: str) -> dict:
    """The template's UploadRule pattern for ``bucket`` with the default upload prefix."""
    template = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # noqa: S506 (a SafeLoader subclass)
    pattern = copy.deepcopy(template["Resources"]["UploadRule"]["Properties"]["EventPattern"])
    assert pattern["detail"]["bucket"]["name"][0]["Fn::Sub"].startswith("${NamePrefix}-input-")
    assert pattern["detail"]["object"]["key"] == [{"prefix": {"Ref": "UploadPrefix"}}]
    pattern["detail"]["bucket"]["name"] = [bucket]
    pattern["detail"]["object"]["key"] = [{"prefix": template["Parameters"]["UploadPrefix"]["Default"]}]
    return pattern


@pytest.fixture
def routed_bucket(s3, sqs, events_bucket):
    """``events_bucket`` with EventBridge notifications on, and the template's rule sending its uploads to a fresh
    queue (with a dead-letter queue after 3 receives), as queue mode deploys it."""
    import boto3

    events = boto3.client("events")
    s3.put_bucket_notification_configuration(
        Bucket=events_bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    run = uuid.uuid4().hex[:8]
    dlq = sqs.create_queue(QueueName=f"dlq-{run}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
    queue = sqs.create_queue(QueueName=f"ingest-{run}", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"uploads-{run}"
    events.put_rule(Name=rule, EventPattern=json.dumps(upload_rule_pattern(events_bucket)))
    events.put_targets(Rule=rule, Targets=[{"Id": "ingest-queue", "Arn": arn}])
    yield events_bucket, queue, dlq
    events.remove_targets(Rule=rule, Ids=["ingest-queue"])
    events.delete_rule(Name=rule)
    s3.put_bucket_notification_configuration(Bucket=events_bucket, NotificationConfiguration={})


def drain_with_workers(entry, lambda_context, sqs, queue: str, workers: int = 4) -> int:
    """Lambda's SQS poller, in threads: batches of 10 to the entry; processed messages deleted, failed ones made
    visible again at once (so that the redrive policy, not a clock, decides when they leave). Returns the batches."""
    batches = []
    # One receive at a time, as Lambda's poller hands out batches: moto's queue is not safe under concurrent
    # receives (two workers can get the same message, and the first one's receipt handle is then invalid).
    receiving = threading.Lock()

    def worker() -> None:
        idle = 0
        deadline = time.monotonic() + 300
        # An empty receive does not mean an empty queue: a message another worker just made visible again, or one
        # the emulator is moving to the dead-letter queue, can be missed. Stop only once the queue itself is empty.
        while time.monotonic() < deadline and (idle < 3 or count_messages(sqs, queue)):
            with receiving:
                got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=120)
            messages = got.get("Messages", [])
            if not messages:
                idle += 1
                time.sleep(0.2)
                continue
            idle = 0
            batches.append(len(messages))
            failed = {
                f["itemIdentifier"]
                for f in entry.lambda_handler(sqs_event(messages), lambda_context)["batchItemFailures"]
            }
            for m in messages:
                if m["MessageId"] in failed:
                    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
                else:
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])

    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(worker) for _ in range(workers)]:
            future.result()
    return len(batches)


def count_messages(sqs, queue: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=names)["Attributes"]
    return sum(int(attributes[n]) for n in names)


def wait_for_count(sqs, queue: str, expected: int, timeout: float = 60) -> int:
    """The queue's message count once it reaches ``expected`` (or stops growing for 5 s, or ``timeout`` passes)."""
    deadline, last, since = time.monotonic() + timeout, -1, time.monotonic()
    while True:
        count = count_messages(sqs, queue)
        if count != last:
            last, since = count, time.monotonic()
        if count >= expected or time.monotonic() - since > 5 or time.monotonic() > deadline:
            return count
        time.sleep(0.25)


def test_queue_mode_through_eventbridge_processes_every_upload_once(
    entry, lambda_context, s3, sqs, routed_bucket, output_bucket, monkeypatch
):
    bucket, queue, dlq = routed_bucket
    prefix = f"uploads/sim-{uuid.uuid4().hex[:6]}/"
    good = [f"{prefix}{i:03d}.{('jpg', 'JPG', 'Jpg', 'png', 'webp')[i % 5]}" for i in range(300)]
    broken = [f"{prefix}broken-{i}.jpg" for i in range(4)]
    ignored = [f"{prefix}notes.txt", f"elsewhere/{prefix}photo.jpg"]  # not an image; outside the upload prefix

    puts: list[str] = []
    lock = threading.Lock()
    original_put = entry.store.put

    def counting_put(bucket_name, key, *args, **kwargs):  # the real put, counted
        original_put(bucket_name, key, *args, **kwargs)
        with lock:
            puts.append(key)

    monkeypatch.setattr(entry.store, "put", counting_put)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=TINY), good))
    for key in broken:
        s3.put_object(Bucket=bucket, Key=key, Body=b"\xff\xd8\xff not really a jpeg")
    for key in ignored:
        s3.put_object(Bucket=bucket, Key=key, Body=TINY)
    # at-least-once delivery: 20 uploads arrive twice
    first = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    first += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    for m in first:
        sqs.send_message(QueueUrl=queue, MessageBody=m["Body"])
    # the rule sent nothing for elsewhere/ (LocalStack delivers EventBridge targets asynchronously: wait for them)
    assert wait_for_count(sqs, queue, 300 + 4 + 1 + 20) == 300 + 4 + 1 + 20

    batches = drain_with_workers(entry, lambda_context, sqs, queue)
    assert batches >= (300 + 4 + 1 + 20) // 10
    assert count_messages(sqs, queue) == 0
    heatmaps = [k for k in puts if k.endswith(".png") and not k.endswith(".png.pfm")]
    assert sorted(heatmaps) == sorted(f"depth/{k}.png" for k in good)  # every upload written exactly once
    assert list_keys(s3, output_bucket, f"depth/{prefix}") == sorted(
        f"depth/{k}{s}" for k in good for s in (".pfm", ".png")
    )
    # the broken uploads are recorded under failures/ on their first receive, not walked to the dead-letter queue
    assert list_keys(s3, output_bucket, f"depth/failures/{bucket}/{prefix}") == sorted(
        f"depth/failures/{bucket}/{k}.json" for k in broken
    )
    assert sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", []) == []


def test_eventbridge_events_straight_to_the_entry(entry, lambda_context, s3, input_bucket, output_bucket):
    key = f"uploads/eb-{uuid.uuid4().hex[:6]}/a b+c é.Jpg"
    s3.put_object(Bucket=input_bucket, Key=key, Body=TINY)
    encoded = entry.lambda_handler(eventbridge_event(input_bucket, quote_plus(key, safe="/")), lambda_context)
    assert [w["heatmap"] for w in encoded["written"]] == [f"depth/{key}.png"]  # form-encoded, as S3 notifications
    s3.delete_object(Bucket=output_bucket, Key=f"depth/{key}.png")
    written = entry.lambda_handler(eventbridge_event(input_bucket, key), lambda_context)["written"]  # as moto sends
    assert [w["heatmap"] for w in written] == [f"depth/{key}.png"]
    etag = s3.head_object(Bucket=input_bucket, Key=key)["ETag"].strip('"')
    again = eventbridge_event(input_bucket, key)
    again["detail"]["object"]["etag"] = etag  # as EventBridge sends it: one HEAD decides
    assert entry.lambda_handler(again, lambda_context)["skipped"][0]["reason"] == UNCHANGED
    txt = entry.lambda_handler(eventbridge_event(input_bucket, "uploads/notes.txt"), lambda_context)
    assert txt["skipped"][0]["reason"] == "not an image key (by extension)"
    deleted = entry.lambda_handler(eventbridge_event(input_bucket, key, "Object Deleted"), lambda_context)
    assert deleted["skipped"][0]["reason"] == "not an upload (detail-type is 'Object Deleted')"
    refused = entry.lambda_handler(eventbridge_event(input_bucket, "private/a.jpg"), lambda_context)  # not retried
    assert refused["failed"][0]["reason"].startswith("key_not_allowed")


def test_each_invocation_prints_its_metrics_in_the_embedded_metric_format(
    entry, lambda_context, s3, input_bucket, capsys
):
    key = f"uploads/metrics-{uuid.uuid4().hex[:6]}.jpg"
    s3.put_object(Bucket=input_bucket, Key=key, Body=TINY)
    capsys.readouterr()
    entry.lambda_handler(eventbridge_event(input_bucket, key), lambda_context)
    entry.lambda_handler(eventbridge_event(input_bucket, key), lambda_context)  # unchanged
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert len(lines) == 2
    written, unchanged = lines
    (directive,) = written["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "MidasDepth" and directive["Dimensions"] == [["service"]]
    names = {m["Name"] for m in directive["Metrics"]}
    assert {
        "ImagesWritten",
        "Megapixels",
        "LatencyS3Get",
        "LatencyDecode",
        "LatencyInference",
        "LatencyEncode",
        "LatencyS3Put",
        "LatencyTotal",
    } <= names
    assert written["ImagesWritten"] == [1.0] and written["Megapixels"] == [round(32 * 24 / 1e6, 3)]
    assert unchanged["ImagesUnchanged"] == [1.0] and "LatencyTotal" not in unchanged
    # an HTTP invocation records nothing: nothing printed on the API's hot path
    entry.lambda_handler(api_event("v2", "GET", "/health"), lambda_context)
    assert '{"_aws"' not in capsys.readouterr().out
