"""A progressive-JPEG scan bomb through the real entry: refused with a JSON 413 on the HTTP API, recorded as a
permanent failure (not retried) by the upload trigger — never decoded."""

from __future__ import annotations

import json
import uuid

from support import assert_clean_error, call, jpeg_scan_bomb, png_with_chunks, s3_event

BOMB = jpeg_scan_bomb(4096, 5000)  # ~200 KB, 16.8 MP, 5 010 scans


def test_http_refuses_a_scan_bomb_with_a_named_413(entry, lambda_context):
    answer = call(entry.lambda_handler, lambda_context, "v2", "POST", "/depth", BOMB, "image/jpeg")
    assert_clean_error(answer, 413, "image_too_complex", "more than 64 scans")
    answer = call(entry.lambda_handler, lambda_context, "v2", "POST", "/depth", png_with_chunks(30_000), "image/png")
    assert_clean_error(answer, 413, "image_too_complex", "chunks")


def test_upload_trigger_records_a_scan_bomb_without_retrying_it(entry, lambda_context, s3, input_bucket, output_bucket):
    key = f"uploads/{uuid.uuid4().hex[:8]}/bomb.jpg"
    s3.put_object(Bucket=input_bucket, Key=key, Body=BOMB)
    summary = entry.lambda_handler(s3_event(input_bucket, key), lambda_context)  # no RecordsFailed: not retried
    [failed] = summary["failed"]
    assert failed["reason"].startswith("image_too_complex: the JPEG has more than 64 scans")
    record = json.loads(s3.get_object(Bucket=output_bucket, Key=failed["failure"])["Body"].read())
    assert record["key"] == key and record["error"] == "image_too_complex"
