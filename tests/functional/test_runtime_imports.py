"""What the function imports, in a fresh process of this venv (which has torch and OpenCV installed for the tests and
the bake): never torch or OpenCV, on any path; and an S3 event never the web stack (FastAPI, Starlette, Mangum),
which only the first HTTP event loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support import ROOT, api_event, function_env, list_keys, s3_event

FORBIDDEN = ("torch", "torchvision", "cv2", "timm", "geffnet", "onnx")  # onnx: the bake's, not onnxruntime
WEB = ("fastapi", "starlette", "mangum")

PROBE = """
import json, sys
from pathlib import Path

def loaded(names):
    return sorted({m.split(".")[0] for m in sys.modules} & set(names))

events = json.loads(Path(sys.argv[1]).read_text())
import handler.entry as entry
from localdev.function import LambdaContext  # the local runs' Lambda context (stdlib only)
seen = {"import": loaded(FORBIDDEN + WEB)}
entry.lambda_handler(events["s3"], LambdaContext())
seen["s3"] = loaded(FORBIDDEN + WEB)
response = entry.lambda_handler(events["http"], LambdaContext())
seen["http"] = loaded(FORBIDDEN + WEB)
seen["status"] = response["statusCode"]
import handler.__main__, handler.pointcloud, handler.sources.s3_batch  # the CLI and the rest of the package
seen["all"] = loaded(FORBIDDEN + WEB)
print("SEEN " + json.dumps(seen))
"""


def test_no_torch_or_opencv_and_s3_events_skip_the_web_stack(
    tmp_path, baked_model_dir, s3_endpoint, s3, input_bucket, output_bucket, jpeg_640x480
):
    key = "uploads/imports.jpg"
    s3.put_object(Bucket=input_bucket, Key=key, Body=jpeg_640x480)
    events = tmp_path / "events.json"
    http = api_event("v2", "POST", "/depth", jpeg_640x480, "image/jpeg")
    events.write_text(json.dumps({"s3": s3_event(input_bucket, key), "http": http}))
    env = {
        **os.environ,
        **function_env(model_dir=baked_model_dir, output_bucket=output_bucket, input_buckets=input_bucket),
        "AWS_ENDPOINT_URL": s3_endpoint,
        "POWERTOOLS_LOG_LEVEL": "ERROR",
        "PYTHONPATH": str(ROOT),
    }
    code = f"FORBIDDEN, WEB = {FORBIDDEN!r}, {WEB!r}\n" + PROBE
    done = subprocess.run(
        [sys.executable, "-c", code, str(events)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(next(line[5:] for line in done.stdout.splitlines() if line.startswith("SEEN ")))
    assert seen["import"] == seen["s3"] == []  # the S3 path: neither torch/OpenCV nor the web stack
    assert f"depth/{key}.png" in list_keys(s3, output_bucket, "depth/")  # and it did write the heatmap
    assert seen["status"] == 200 and seen["http"] == sorted(WEB)  # the first HTTP event brought the web stack
    assert seen["all"] == sorted(WEB)  # nothing else: no torch, no OpenCV, no onnx, anywhere in the package


def test_the_probe_would_see_torch(tmp_path):
    """The check can fail: the same listing in a process that does import torch (as the bake does) names it."""
    code = "import sys, torch, cv2; print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'cv2'}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "['cv2', 'torch']"
