"""Backfills with S3 Batch Operations through the real Lambda entry, against the S3 emulator.

The events are the ones AWS documents for both invocation schemas (the Powertools test events, retargeted to the
emulator's buckets), and generated tasks of the same shape. A 1 000-object prefix is backfilled in batches of tasks,
every task answered with a result code and a result string (the job's completion report); a second run writes
nothing, and a failed task is told apart as temporary (S3 unreachable: Batch Operations retries it) or permanent.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest

from handler.job import UNCHANGED
from handler.s3_store import S3Store
from handler.sources import s3_batch
from support import BATCH_SCHEMAS, ROOT, batch_event, encode, list_keys, load_event, scene

TINY = encode(scene(32, 24, seed=3))  # the model's cost is the same for any size; small images keep S3 fast


@pytest.mark.parametrize("schema", BATCH_SCHEMAS)
def test_the_documented_events_retargeted(schema, entry, lambda_context, s3, input_bucket, output_bucket):
    """The fixture's own task, pointed at an upload of the emulator: written, then unchanged."""
    event = load_event(f"third_party/powertools/{BATCH_SCHEMAS[schema]}")
    key = f"uploads/batch-doc-{schema}/photo 1+1.jpg"
    s3.put_object(Bucket=input_bucket, Key=key, Body=TINY)
    (task,) = event["tasks"]
    task["s3Key"] = quote(key, safe="/")
    task["s3BucketArn" if schema == "1.0" else "s3Bucket"] = (
        f"arn:aws:s3:::{input_bucket}" if schema == "1.0" else input_bucket
    )
    answer = entry.lambda_handler(event, lambda_context)
    assert answer == {
        "invocationSchemaVersion": schema,
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": event["invocationId"],
        "results": [
            {
                "taskId": task["taskId"],
                "resultCode": "Succeeded",
                "resultString": f"written: depth/{key}.pfm, depth/{key}.png",
            }
        ],
    }
    assert entry.lambda_handler(event, lambda_context)["results"][0]["resultString"] == UNCHANGED


@pytest.mark.parametrize("schema", BATCH_SCHEMAS)
def test_each_task_gets_its_own_code_and_reason(schema, entry, lambda_context, s3, input_bucket, output_bucket):
    prefix = f"uploads/batch-mixed-{uuid.uuid4().hex[:6]}/"
    s3.put_object(Bucket=input_bucket, Key=prefix + "good.JPG", Body=TINY)
    s3.put_object(Bucket=input_bucket, Key=prefix + "broken.jpg", Body=b"not a jpeg")
    s3.put_object(Bucket=input_bucket, Key=prefix + "notes.txt", Body=b"text")
    s3.put_object(Bucket=input_bucket, Key="private/secret.jpg", Body=TINY)
    keys = [prefix + "good.JPG", prefix + "broken.jpg", prefix + "missing.jpg", prefix + "notes.txt"]
    answer = entry.lambda_handler(batch_event(schema, input_bucket, keys), lambda_context)
    codes = [(r["resultCode"], r["resultString"].split(":")[0]) for r in answer["results"]]
    assert codes == [
        ("Succeeded", "written"),
        ("PermanentFailure", "invalid_image"),
        ("PermanentFailure", "s3_object_not_found"),
        ("Succeeded", "not an image key (by extension)"),
    ]
    elsewhere = entry.lambda_handler(batch_event(schema, input_bucket, ["private/secret.jpg"]), lambda_context)
    assert [r["resultCode"] for r in elsewhere["results"]] == ["PermanentFailure"]
    assert elsewhere["results"][0]["resultString"].startswith("key_not_allowed")
    other = entry.lambda_handler(batch_event(schema, output_bucket, [prefix + "good.JPG"]), lambda_context)
    assert other["results"][0]["resultString"].startswith("bucket_not_allowed")


def test_s3_unreachable_is_a_temporary_failure(monkeypatch, estimator, input_bucket):
    """Batch Operations retries TemporaryFailure: S3 throttling, timeouts, an endpoint that does not answer."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # the discard port: nothing listens
    store = S3Store(connect_timeout=0.5, read_timeout=0.5, max_attempts=1)
    answer = s3_batch.handle(
        batch_event("2.0", input_bucket, ["uploads/any.jpg"]), None, estimator=estimator, store=store
    )
    (result,) = answer["results"]
    assert result["resultCode"] == "TemporaryFailure" and result["resultString"].startswith("s3_unavailable")
    assert "127.0.0.1" not in result["resultString"]


def test_a_malformed_task_fails_alone(entry, lambda_context, s3, input_bucket):
    key = f"uploads/batch-malformed-{uuid.uuid4().hex[:6]}.jpg"
    s3.put_object(Bucket=input_bucket, Key=key, Body=TINY)
    event = batch_event("2.0", input_bucket, [key, key])
    del event["tasks"][0]["s3Bucket"]
    codes = [r["resultCode"] for r in entry.lambda_handler(event, lambda_context)["results"]]
    assert codes == ["PermanentFailure", "Succeeded"]


@pytest.mark.parametrize("spoil", [{"tasks": None}, {"tasks": "abc"}, {"invocationId": None}])
def test_a_malformed_job_event_fails_the_invocation_by_name(entry, lambda_context, input_bucket, spoil):
    event = batch_event("1.0", input_bucket, ["uploads/a.jpg"]) | spoil
    with pytest.raises(ValueError, match="malformed S3 Batch Operations event: 'tasks' must be a list"):
        entry.lambda_handler(event, lambda_context)


def test_a_1000_object_prefix_is_backfilled_once_with_a_report_per_task(
    entry, lambda_context, s3, input_bucket, output_bucket, tmp_path
):
    prefix = f"uploads/backfill-{uuid.uuid4().hex[:6]}/"
    keys = [f"{prefix}{i // 100:02d}/photo {i:04d}.{('jpg', 'JPG', 'Jpeg', 'png')[i % 4]}" for i in range(1000)]
    with ThreadPoolExecutor(8) as pool:  # the emulator's puts, in parallel
        list(pool.map(lambda k: s3.put_object(Bucket=input_bucket, Key=k, Body=TINY), keys))
    s3.put_object(Bucket=input_bucket, Key=prefix + "README.txt", Body=b"not listed")

    # the manifest, as the script writes it: only images, keys URL-encoded
    manifest = tmp_path / "manifest.csv"
    script = [sys.executable, "scripts/make_manifest.py"]
    assert (
        subprocess.run([*script, "--bucket", input_bucket, "--prefix", prefix, "--out", manifest], cwd=ROOT).returncode
        == 0
    )
    rows = list(csv.reader(manifest.read_text().splitlines()))
    assert len(rows) == 1000 and {b for b, _ in rows} == {input_bucket} and all(" " not in k for _, k in rows)

    def run_job() -> list[dict]:
        """Batch Operations: every manifest line a task, several invocations at once, the report collected."""
        tasks = [rows[i : i + 25] for i in range(0, len(rows), 25)]

        def invoke(lines: list[list[str]]) -> list[dict]:
            event = batch_event("1.0", input_bucket, [])
            event["tasks"] = [
                {"taskId": f"t{n}", "s3Key": k, "s3VersionId": None, "s3BucketArn": f"arn:aws:s3:::{b}"}
                for n, (b, k) in enumerate(lines)
            ]
            answer = entry.lambda_handler(event, lambda_context)
            assert [r["taskId"] for r in answer["results"]] == [t["taskId"] for t in event["tasks"]]
            return answer["results"]

        with ThreadPoolExecutor(4) as pool:
            return [r for results in pool.map(invoke, tasks) for r in results]

    report = run_job()
    assert len(report) == 1000 and {r["resultCode"] for r in report} == {"Succeeded"}
    assert all(r["resultString"].startswith("written: depth/uploads/backfill-") for r in report)
    outputs = list_keys(s3, output_bucket, "depth/" + prefix)
    assert outputs == sorted(f"depth/{k}{s}" for k in keys for s in (".pfm", ".png"))  # each object once
    before = {o["Key"]: (o["ETag"], o["LastModified"]) for o in _listing(s3, output_bucket, "depth/" + prefix)}

    again = run_job()  # a re-run costs a HEAD and a 304 per object, and writes nothing
    assert {(r["resultCode"], r["resultString"]) for r in again} == {("Succeeded", UNCHANGED)}
    after = {o["Key"]: (o["ETag"], o["LastModified"]) for o in _listing(s3, output_bucket, "depth/" + prefix)}
    assert after == before


def _listing(s3, bucket: str, prefix: str) -> list[dict]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj for page in pages for obj in page.get("Contents", [])]
