"""`make serve`'s server (uvicorn, handler.entry:http_app) streams request bodies: one sent without Content-Length
(chunked) is refused with 413 as soon as it passes the largest body a route accepts, not read (and spooled to disk)
to its end first. A chunked upload under the limit is served as before."""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import subprocess
import sys
import time

import pytest

from support import ROOT, encode, free_port, function_env, scene

MAX_IMAGE_BYTES = 1024 * 1024
MAX_JSON_BYTES = 512 * 1024
LIMIT = MAX_IMAGE_BYTES + 64 * 1024  # the multipart envelope on top of the image: the largest body of any route
CHUNK = 64 * 1024
SERVER_READ = 320 * 1024
BOUNDARY = "streamedbodylimit"


@pytest.fixture(scope="module")
def server(baked_model_dir, tmp_path_factory):
    """``uvicorn --factory handler.entry:http_app`` (what make serve runs) with small body limits; yields its port."""
    port = free_port()
    log = tmp_path_factory.mktemp("uvicorn") / "server.log"
    env = {
        **os.environ,
        **function_env(model_dir=baked_model_dir, output_bucket="", input_buckets=""),
        "MAX_IMAGE_BYTES": str(MAX_IMAGE_BYTES),
        "MAX_JSON_BYTES": str(MAX_JSON_BYTES),
    }
    command = [sys.executable, "-m", "uvicorn", "handler.entry:http_app", "--factory", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen([*command, "--host", "127.0.0.1"], cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "uvicorn did not start: " + log.read_text()[-2000:]
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def chunked_upload(port: int, image: bytes, *, pad_to: int = 0) -> tuple[int, dict, int]:
    """POST /predict as multipart/form-data in 64 KiB chunks without Content-Length: ``image`` as the file, padded
    with zeros to ``pad_to`` bytes. Stops sending once the server answers (or closes); returns the status, the JSON
    body and how many body bytes were sent."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    body_size = max(len(image), pad_to)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            + f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n".encode()
        )

        def parts():
            yield head
            for start in range(0, body_size, CHUNK):
                piece = image[start : start + CHUNK]
                yield piece + bytes(min(CHUNK, body_size - start) - len(piece))
            yield f"\r\n--{BOUNDARY}--\r\n".encode()

        try:
            for part in parts():
                if select.select([sock], [], [], 0)[0]:  # the server answered: no point sending more
                    break
                sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                sent += len(part)
            else:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read()), sent


def test_a_chunked_body_over_the_limit_is_refused_once_it_passes_it(server):
    status, body, sent = chunked_upload(server, encode(scene(64, 48)), pad_to=64 * 1024 * 1024)
    assert status == 413 and body["error"] == "payload_too_large", body
    assert f"request body exceeds {LIMIT} bytes" in body["message"] and "s3://" in body["message"]
    refused_after = int(body["message"].split("refused after ")[1].split()[0])
    # the read that passed the limit, and no more: uvicorn hands the app what arrived since it last asked (asyncio
    # reads at most 256 KiB at a time)
    assert LIMIT < refused_after <= LIMIT + SERVER_READ
    assert sent < 16 * 1024 * 1024  # of 64 MiB: the socket's buffers hold a few MB, the server read no further


def test_a_chunked_upload_under_the_limit_is_answered(server):
    status, body, sent = chunked_upload(server, encode(scene(640, 480)))
    assert status == 200, body
    assert body["width"] == 640 and body["depth_map_url"].startswith("data:image/png;base64,")
