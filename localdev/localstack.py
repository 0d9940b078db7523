"""LocalStack community without Docker, the one launcher: its Python package in .venv-localstack (Python 3.13) as a
host process on 127.0.0.1, for the tests' S3/SQS pass (``make test``), ``make localstack`` and ``make stack``
(:mod:`localdev.stack`, which listens on docker0 too and installs the repository's plugin).

    scripts/localstack.sh start        start it in the background on LOCALSTACK_PORT (default 4566), wait for health
    scripts/localstack.sh stop         stop the one `start` started on LOCALSTACK_PORT (default 4566)
    scripts/localstack.sh run CMD...   start one on a free port (or LOCALSTACK_PORT), run CMD with AWS_ENDPOINT_URL
                                       and test credentials pointing at it, always stop it; exit with CMD's status
    scripts/localstack.sh install      only make the venv (start and run do it first)

scripts/localstack.sh is its command line (it runs this file as a script: standard library only, any python3). The
venv (LOCALSTACK_VENV, default .venv-localstack) is made on first use with LOCALSTACK_PYTHON (default: a python3.13
on PATH or in pyenv) and needs PyPI once. If it cannot be made, every command fails: a test pass against LocalStack
is never skipped silently.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSION = "2026.3.0"
# Pins under which this release runs on Python 3.13 (newer cbor2, pyOpenSSL and cryptography break its start).
PACKAGES = (f"localstack-core[runtime]=={VERSION}", "cbor2<6", "pyopenssl<24.3", "cryptography<44", "service_identity")
DEFAULT_PORT = 4566
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": REGION}
# The tests' pass and `make localstack`: S3, SQS and EventBridge, whose health is waited for.
TEST_SERVICES = ("s3", "sqs", "events")
START_SECONDS = 180  # the first start on a busy machine compiles and imports a lot


class LocalStackError(RuntimeError):
    """LocalStack could not be installed, started or found."""


def venv_dir() -> Path:
    return Path(os.environ.get("LOCALSTACK_VENV") or ROOT / ".venv-localstack")


def _python313() -> str:
    if given := os.environ.get("LOCALSTACK_PYTHON"):
        return given
    # (a pyenv shim exists even where its version is not selected: run it to know)
    if shutil.which("python3.13") and subprocess.run(["python3.13", "-c", ""], capture_output=True).returncode == 0:
        return "python3.13"
    pyenv = subprocess.run(["pyenv", "root"], capture_output=True, text=True) if shutil.which("pyenv") else None
    if pyenv and pyenv.returncode == 0:
        for candidate in sorted(glob.glob(f"{pyenv.stdout.strip()}/versions/3.13*/bin/python3.13")):
            if os.access(candidate, os.X_OK):
                return candidate
    raise LocalStackError(
        f"no Python 3.13 to make {venv_dir()} with: install one, or set LOCALSTACK_PYTHON=/path/to/python3.13"
    )


def install() -> Path:
    """LocalStack's venv with :data:`PACKAGES`, made on first use (a stamp names the version)."""
    venv = venv_dir()
    stamp = venv / f".installed-{VERSION}"
    if stamp.exists():
        return venv
    python = _python313()
    print(f"localstack: installing localstack-core {VERSION} into {venv} ({python})", file=sys.stderr)
    shutil.rmtree(venv, ignore_errors=True)
    if subprocess.run([python, "-m", "venv", str(venv)]).returncode != 0:
        raise LocalStackError(f"{python} -m venv {venv} failed")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *PACKAGES]
    if subprocess.run(pip).returncode != 0:
        raise LocalStackError(f"pip could not install {' '.join(PACKAGES)} into {venv} (LocalStack needs PyPI once)")
    stamp.touch()
    return venv


def free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: past connections do not count
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port of ``host`` (an address of this machine) that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class LocalStack:
    """LocalStack community as a host process (start, stop), from ``venv``, on 127.0.0.1:``port`` and the
    ``also_on`` addresses; ``services`` empty: every service. Its state (FILESYSTEM_ROOT, the log, the pid) lives in
    ``state``, made fresh at start (a temporary directory unless given) and removed at stop."""

    venv: Path
    port: int = DEFAULT_PORT
    services: tuple[str, ...] = ()
    also_on: tuple[str, ...] = ()
    name: str = "midas-localstack"
    state: Path | None = None
    process: subprocess.Popen | None = None
    stop_seconds: float = 30  # SIGTERM, then SIGKILL: it may ignore SIGTERM while its services shut down
    settings: dict[str, str] = field(default_factory=dict)  # more of LocalStack's settings, over the defaults

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.state / "localstack.log"

    def environment(self) -> dict[str, str]:
        """The caller's environment less its AWS and LocalStack settings, and LocalStack's own."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCALSTACK_")) and k != "HOSTNAME"}
        env.update(
            GATEWAY_SERVER="hypercorn",
            GATEWAY_LISTEN=",".join(f"{host}:{self.port}" for host in ("127.0.0.1", *self.also_on)),
            FILESYSTEM_ROOT=str(self.state / "root"),
            OVERRIDE_IN_DOCKER="0",
            DNS_ADDRESS="0",
            DISABLE_EVENTS="1",  # no usage analytics sent out
            SKIP_SSL_CERT_DOWNLOAD="1",  # plain HTTP only: no certificate fetched
        )
        if self.services:
            env["SERVICES"] = ",".join(self.services)
        return env | self.settings

    def start(self) -> LocalStack:
        """Start it in a session of its own (no terminal signals reach it) and wait until it answers."""
        for host in ("127.0.0.1", *self.also_on):
            if not free(host, self.port):
                raise LocalStackError(f"{host}:{self.port} is taken (a LocalStack running?): choose another port")
        if self.state is None:
            self.state = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        else:
            shutil.rmtree(self.state, ignore_errors=True)
            self.state.mkdir(parents=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(self.venv / "bin" / "python"), "-m", "localstack.runtime.main"],
                cwd=self.state,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the launcher, which stops LocalStack in order
            )
        (self.state / "pid").write_text(f"{self.process.pid}\n")
        deadline = time.monotonic() + START_SECONDS
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop(keep_state=True)
                raise LocalStackError(f"LocalStack did not start on {self.endpoint}:\n{self.log_tail()}")
            time.sleep(0.25)
        return self

    def healthy(self) -> bool:
        """Answering, with each of ``services`` up."""
        try:
            with urllib.request.urlopen(f"{self.endpoint}/_localstack/health", timeout=2) as reply:
                services = json.load(reply).get("services", {})
        except (OSError, ValueError):
            return False
        return all(services.get(name) in ("available", "running") for name in self.services)

    def log_tail(self, lines: int = 40) -> str:
        if not self.state or not self.log.is_file():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, keep_state: bool = False) -> None:
        """SIGTERM, then SIGKILL after ``stop_seconds``, to the process :meth:`start` started (here or, by the pid
        in ``state``, in an earlier run of this launcher); then its state is removed."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(self.stop_seconds)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        elif self.state and (self.state / "pid").is_file():
            _end(int((self.state / "pid").read_text()), self.stop_seconds)
        if self.state and not keep_state:
            shutil.rmtree(self.state, ignore_errors=True)


def _end(pid: int, seconds: float) -> None:
    """SIGTERM to ``pid`` (not this process's child: no wait() reaps it), SIGKILL if it outlives ``seconds``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.25)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _background(port: int) -> LocalStack:
    """The LocalStack of `start` and `stop` on ``port``: its state in a directory named after the port."""
    state = Path(tempfile.gettempdir()) / f"midas-localstack-{port}"
    return LocalStack(venv_dir(), port, TEST_SERVICES, state=state, stop_seconds=10)


def _started(localstack: LocalStack) -> LocalStack:
    localstack.start()
    pid, log = localstack.process.pid, localstack.log
    print(f"localstack: S3 and SQS on {localstack.endpoint} (pid {pid}, log {log})", file=sys.stderr)
    return localstack


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else ""
    port_given = os.environ.get("LOCALSTACK_PORT")
    if command not in ("start", "stop", "install", "run") or (command == "run" and len(args) < 2):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        if command == "stop":
            localstack = _background(int(port_given or DEFAULT_PORT))
            if not (localstack.state / "pid").is_file():
                print(f"localstack: none started on port {localstack.port}", file=sys.stderr)
            localstack.stop()
            return 0
        install()
        if command == "start":
            localstack = _started(_background(int(port_given or DEFAULT_PORT)))
            exports = " ".join(f"{k}={v}" for k, v in CREDENTIALS.items())
            print(f"export AWS_ENDPOINT_URL={localstack.endpoint} {exports}")
            print(f"# stop it: {f'LOCALSTACK_PORT={localstack.port} ' if port_given else ''}scripts/localstack.sh stop")
        elif command == "run":
            return _run(int(port_given or free_port()), args[1:])
        return 0
    except LocalStackError as exc:
        print(f"localstack: error: {exc}", file=sys.stderr)
        return 1


def _run(port: int, command: list[str]) -> int:
    """``command`` against a LocalStack of its own; LocalStack stopped whatever happens (Ctrl-C, SIGTERM too)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    localstack = LocalStack(venv_dir(), port, TEST_SERVICES, stop_seconds=10)
    try:
        _started(localstack)
        env = os.environ | CREDENTIALS | {"AWS_ENDPOINT_URL": localstack.endpoint}
        return subprocess.run(command, env=env).returncode
    except OSError as exc:  # no such command
        print(f"localstack: {command[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 127
    except KeyboardInterrupt:
        return 130
    finally:
        localstack.stop()


if __name__ == "__main__":
    sys.exit(main())
