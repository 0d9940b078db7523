"""`make screenshot` retakes the documents' screenshots of the web page with a real photograph, and every document
that shows one credits the photograph and says the depth comes from test weights."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from PIL import Image

from localdev.screenshot import SHOTS, VIEWPORT
from support import ROOT, doc_commands
from support.browser import CHROMIUM

MAX_BYTES = 300_000
CREDIT = "scikit-image sample data (BSD)"


def test_make_screenshot_runs_the_script():
    done = subprocess.run(["make", "-n", "screenshot"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "scripts/screenshot.py" in done.stdout, done.stdout + done.stderr


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt: chromium)")
def test_the_script_retakes_both_screenshots_small(baked_model_dir, tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "screenshot.py"), "--model-dir", str(baked_model_dir)]
        + ["--out", str(tmp_path)],
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in SHOTS.values():
        path = tmp_path / name
        assert path.stat().st_size < MAX_BYTES, f"{name}: {path.stat().st_size} bytes"
        with Image.open(path) as shot:
            assert shot.format == "PNG" and shot.mode == "P" and shot.width == VIEWPORT["width"]


@pytest.mark.parametrize("name", sorted(SHOTS.values()))
def test_the_committed_screenshot_is_small_and_credited_wherever_shown(name):
    path = ROOT / "docs" / name
    assert path.stat().st_size < MAX_BYTES
    with Image.open(path) as shot:
        assert shot.width == VIEWPORT["width"]
    shown = 0
    for doc in doc_commands.doc_files():
        paragraphs = re.split(r"\n\s*\n", doc.read_text(encoding="utf-8"))
        for i, paragraph in enumerate(paragraphs):
            if re.search(rf"!\[[^\]]*\]\((docs/)?{re.escape(name)}\)", paragraph):
                shown += 1
                caption = paragraphs[i + 1].replace("\n", " ")
                where = f"{doc.name}: the caption under {name}"
                assert CREDIT in caption and "test weights" in caption, f"{where}: {caption}"
    assert shown
