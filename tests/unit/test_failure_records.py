"""Where a permanent failure is recorded: one key per bucket and object, under the output prefix (the role's write
scope and the recursion guard), never an output's key, never over S3's 1 024 bytes."""

from __future__ import annotations

import hashlib

from handler import s3_outputs
from handler.config import Settings

SETTINGS = Settings(output_bucket="out", allowed_input_buckets="midas-in")


def test_a_failure_record_is_named_after_its_bucket_and_key():
    key = s3_outputs.failure_key(SETTINGS, "midas-in", "uploads/a photo.jpg")
    assert key == "depth/failures/midas-in/uploads/a photo.jpg.json"
    assert s3_outputs.is_own_output(SETTINGS, "out", key)
    stem = "failures/midas-in/uploads/a photo.jpg"
    renderings = [s3_outputs.output_key("depth/", stem, r) for r in s3_outputs.RENDERINGS]
    assert key not in renderings  # ".json" is no rendering's suffix


def test_long_keys_and_dot_segments_are_named_by_digest():
    long_key = "uploads/" + "é" * 505 + ".jpg"
    digest = hashlib.sha256(long_key.encode()).hexdigest()
    assert s3_outputs.failure_key(SETTINGS, "midas-in", long_key) == f"depth/failures/midas-in/sha256-{digest}.json"
    dotted = "uploads/../escape.jpg"
    assert s3_outputs.failure_key(SETTINGS, "midas-in", dotted).startswith("depth/failures/midas-in/sha256-")
    for bucket in ("..", "a/b", ""):  # no bucket names: a hand-made event's
        assert s3_outputs.failure_key(SETTINGS, bucket, "uploads/a.jpg").startswith("depth/failures/sha256-")
    for key in (long_key, dotted):
        assert len(s3_outputs.failure_key(SETTINGS, "midas-in", key).encode()) <= s3_outputs.MAX_KEY_BYTES
