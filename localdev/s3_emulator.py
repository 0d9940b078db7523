"""The local S3 (and SQS) emulator: moto's server on 127.0.0.1, in this process or in a child process of its own.

The function only ever makes plain ``boto3.client("s3")``: pointing ``AWS_ENDPOINT_URL`` at the URL these return is
all it takes (the callers set it).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import urllib.request

from localdev.localstack import free_port  # one finder of free ports (localstack.py stays standard-library only)

# The emulator's credentials and region: any value works; these are the ones `make serve`'s banner shows.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def start_moto(port: int = 0):
    """moto's server in a thread of this process on 127.0.0.1:``port`` (0 = any free port); returns (the server,
    its URL). It shares this process's moto state; ``server.stop()`` ends it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not one line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return server, f"http://{host}:{bound}"


def start_moto_process(host: str = "127.0.0.1") -> tuple[subprocess.Popen, str]:
    """moto's server in a child process on a free port of ``host``, an address of this machine (its memory is not
    this process's); returns (the process, its URL) once it answers."""
    port = free_port(host)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://{host}:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto server did not start")


def ensure_bucket(s3, name: str, region: str) -> None:
    """Create bucket ``name`` unless it exists."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=name)
    except ClientError:
        extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=name, **extra)
