"""The function's app (handler.entry:http_app) served by uvicorn on 127.0.0.1, in a process of its own, under 8
concurrent clients: every answer is the right one, and the model loaded at start serves them all (never reloaded)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from support import ROOT, encode, free_port, function_env, scene

CLIENTS = 8


def fetch(url: str, body: bytes | None = None, content_type: str | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type} if content_type else {})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


@pytest.fixture(scope="module")
def server(baked_model_dir, s3_endpoint, input_bucket, output_bucket, tmp_path_factory):
    """``uvicorn --factory handler.entry:http_app`` with a deployment's environment; yields (URL, log path)."""
    port = free_port()
    log = tmp_path_factory.mktemp("uvicorn") / "server.log"
    env = {
        **os.environ,
        **function_env(
            model_dir=baked_model_dir,
            output_bucket=output_bucket,
            input_buckets=input_bucket,
            TRUST_LOOPBACK_CALLERS="true",  # as make serve: the S3 references come from 127.0.0.1
        ),
        "AWS_ENDPOINT_URL": s3_endpoint,
        "POWERTOOLS_LOG_LEVEL": "INFO",  # the one "model loaded" line is what the test counts
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "handler.entry:http_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                if fetch(f"{url}/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "uvicorn did not start: " + log.read_text()[-2000:]
            time.sleep(0.2)
        yield url, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_eight_concurrent_clients_share_one_model(server, estimator, s3, input_bucket, output_bucket):
    url, log = server
    images = [encode(scene(96 + 16 * i, 64 + 8 * i, seed=200 + i), "PNG" if i % 2 else "JPEG") for i in range(CLIENTS)]
    keys = [f"uploads/concurrency/{i}.img" for i in range(CLIENTS)]
    for key, data in zip(keys, images, strict=True):
        s3.put_object(Bucket=input_bucket, Key=key, Body=data)
    expected = [estimator.heatmap_png(estimator.estimate(data)) for data in images]
    before = json.loads(fetch(f"{url}/health")[2])
    start = threading.Barrier(CLIENTS)

    def client(i: int) -> list[str]:
        """Three requests (raw body, base64 JSON, S3 reference); returns what was wrong."""
        problems, data = [], images[i]
        start.wait()
        status, ctype, png = fetch(f"{url}/depth", data, "image/png" if i % 2 else "image/jpeg")
        if (status, ctype) != (200, "image/png") or png != expected[i]:
            problems.append(f"raw: {status} {ctype} {png[:100]!r}")
        payload = json.dumps({"image": base64.b64encode(data).decode(), "output": "inline"}).encode()
        status, _, body = fetch(f"{url}/depth", payload, "application/json")
        result = json.loads(body)
        if status != 200 or base64.b64decode(result.get("heatmap_png_base64", "")) != expected[i]:
            problems.append(f"base64: {status} {body[:200]!r}")
        payload = json.dumps({"s3": f"s3://{input_bucket}/{keys[i]}", "output": "s3"}).encode()
        status, _, body = fetch(f"{url}/depth", payload, "application/json")
        result = json.loads(body)
        if status != 200:
            problems.append(f"s3: {status} {body[:200]!r}")
        elif fetch(result["depth_map_url"])[2] != expected[i]:  # the presigned URL serves this client's heatmap
            problems.append(f"s3: wrong object {result['heatmap_s3']}")
        return problems

    with ThreadPoolExecutor(CLIENTS) as pool:
        problems = [p for found in pool.map(client, range(CLIENTS)) for p in found]
    assert problems == []

    after = json.loads(fetch(f"{url}/health")[2])
    assert after["images_processed"] == before["images_processed"] + 3 * CLIENTS  # one model ran them all
    assert after["model_load_seconds"] == before["model_load_seconds"]
    assert after["uptime_seconds"] >= before["uptime_seconds"]  # the same app instance, not a new one
    loads = [line for line in log.read_text().splitlines() if '"message":"model loaded"' in line]
    assert len(loads) == 1, loads
