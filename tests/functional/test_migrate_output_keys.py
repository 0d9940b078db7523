"""scripts/migrate_output_keys.py against the suite's S3 emulator: older outputs move to their current keys."""

from __future__ import annotations

import subprocess
import sys
import uuid

from handler import s3_outputs
from support import ROOT, list_keys


def migrate(*args: str) -> str:
    """scripts/migrate_output_keys.py as the docs run it (against this session's endpoint); its stdout."""
    done = subprocess.run(
        [sys.executable, "scripts/migrate_output_keys.py", *args], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def put_output(s3, bucket: str, key: str, source_key: str, body: bytes) -> None:
    meta = s3_outputs.s3_metadata(source_bucket="midas-in", source_key=source_key, source_etag="e", model_sha256="m")
    s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=meta)


def test_older_outputs_move_to_their_current_keys(s3):
    bucket = f"midas-migrate-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    put_output(s3, bucket, "depth/uploads/café terrace.png", "uploads/café terrace.jpg", b"heatmap-1")
    put_output(s3, bucket, "depth/uploads/café terrace.pfm", "uploads/café terrace.jpg", b"pfm-1")
    put_output(s3, bucket, "depth/uploads/a.png", "uploads/a.png", b"heatmap-a")  # the later of a.jpg / a.png won
    put_output(s3, bucket, "depth/uploads/new.jpg.png", "uploads/new.jpg", b"current")
    put_output(s3, bucket, "depth/uploads/redone.png", "uploads/redone.jpg", b"older")
    put_output(s3, bucket, "depth/uploads/redone.jpg.png", "uploads/redone.jpg", b"newer")
    put_output(s3, bucket, "depth/uploads/long.png", "x" * 500, b"digest")  # recorded as sha256:...
    put_output(s3, bucket, "depth/api/0123-inferno.png", "", b"api")
    before = list_keys(s3, bucket)

    out = migrate("--bucket", bucket, "--dry-run")
    assert list_keys(s3, bucket) == before
    assert "would rename 4, already current 2, left 1" in out

    out = migrate("--bucket", bucket)
    assert "move depth/uploads/café terrace.png -> depth/uploads/café terrace.jpg.png" in out
    assert "delete superseded depth/uploads/redone.png" in out and "left depth/uploads/long.png" in out
    assert list_keys(s3, bucket) == sorted(
        [
            "depth/api/0123-inferno.png",
            "depth/uploads/a.png.png",
            "depth/uploads/café terrace.jpg.pfm",
            "depth/uploads/café terrace.jpg.png",
            "depth/uploads/long.png",
            "depth/uploads/new.jpg.png",
            "depth/uploads/redone.jpg.png",
        ]
    )
    body = s3.get_object(Bucket=bucket, Key="depth/uploads/café terrace.jpg.png")
    assert body["Body"].read() == b"heatmap-1" and body["Metadata"]["source-key"] == "uploads/caf%C3%A9 terrace.jpg"
    assert s3.get_object(Bucket=bucket, Key="depth/uploads/redone.jpg.png")["Body"].read() == b"newer"

    assert "renamed 0, already current 5, left 1" in migrate("--bucket", bucket)  # a second run has nothing to do
