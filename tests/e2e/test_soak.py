"""A short soak: scripts/soak.py itself (its mix of good and bad requests through the real Lambda entry, in a process
of its own) on smaller images: no good request fails, every bad one is refused, and after the warm-up RSS stays
within 5 %, no file descriptor and no temporary file is left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support import ROOT


def test_short_soak(baked_model_dir, tmp_path):
    report = tmp_path / "soak.json"
    command = [
        sys.executable,
        "scripts/soak.py",
        *("--count", "180", "--sizes", "64x48,320x240", "--model-dir", str(baked_model_dir), "--report", str(report)),
    ]
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}  # the script starts its own S3 emulator
    env["MALLOC_ARENA_MAX"] = "2"  # glibc's per-thread arenas otherwise let RSS climb before it levels off
    # (docs/hardening.md#soak has the figures)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    assert report.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(report.read_text())
    print(json.dumps(figures))  # shown with -s: the figures docs/hardening.md quotes
    assert figures["problems"] == [] and done.returncode == 0, figures
    assert figures["requests"] == 180 and figures["warmup_requests"] == 77  # 7 images x 11 kinds of request
    assert len(figures["by_kind"]) == 11 and figures["good_failures"] == figures["bad_not_refused"] == 0
    assert figures["open_fds"]["end"] == figures["open_fds"]["after_warmup"]
    assert figures["tmp"]["entries_end"] == figures["tmp"]["entries_after_warmup"] == 0
