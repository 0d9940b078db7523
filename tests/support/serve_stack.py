"""scripts/serve_local.py (what `make serve` runs) started on free ports for the tests that need the stack."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from localdev.s3_emulator import free_port
from support import ROOT

START_TIMEOUT = 120  # seconds: the model load on a busy 2-core machine


@dataclass
class ServeStack:
    api: str
    s3: str
    api_port: int
    s3_port: int
    model_dir: Path
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def log_tail(self) -> str:
        return self.text()[-4000:]

    def banner_line(self, starts: str) -> str:
        return next(line.strip() for line in self.text().splitlines() if line.strip().startswith(starts))


def _ready(stack: ServeStack, *, untouched: bool) -> bool:
    try:
        if untouched:  # the banner is printed just before the API starts; a bare connection makes no request
            if "MiDaS depth API" not in stack.text():
                return False
            with socket.create_connection(("127.0.0.1", stack.api_port), timeout=1):
                pass
        else:
            with urllib.request.urlopen(f"{stack.api}/health", timeout=2):
                pass
        with socket.create_connection(("127.0.0.1", stack.s3_port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def serve_stack(model_dir: Path, log: Path, env: dict[str, str], *, untouched: bool = False) -> Iterator[ServeStack]:
    """The stack serving ``model_dir`` in the environment ``env``, logging to ``log``; ready once /health answers
    (``untouched``: once the API accepts connections, so that the test's own request is the first it answers) and
    the S3 emulator listens; stopped (its whole process group) on exit."""
    api_port, s3_port = free_port(), free_port()
    env = env | {"PORT": str(api_port), "S3_PORT": str(s3_port), "MODEL_DIR": str(model_dir)}
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "scripts/serve_local.py"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = ServeStack(
        f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{s3_port}", api_port, s3_port, Path(model_dir), log
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _ready(stack, untouched=untouched):
            if proc.poll() is not None:
                pytest.fail(f"serve_local.py exited with {proc.returncode}:\n{stack.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"serve_local.py not ready after {START_TIMEOUT} s:\n{stack.log_tail()}")
            time.sleep(0.5)
        yield stack
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
