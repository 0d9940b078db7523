"""Build layer/Dockerfile and run the image as Lambda runs it, under the base image's Runtime Interface Emulator.

Shared by the image tests and the in-container benchmark, so both measure the same thing:

- :func:`build_context`: the repo's tracked files (what a clone has) plus a baked model at layer/model/, in a
  directory of its own; the image is built from it exactly as from a checkout, and a developer's own layer/model/
  is never touched.
- :func:`build_image`: ``docker build -f layer/Dockerfile`` on such a context (MODEL_SOURCE=prebaked).
- :class:`FunctionContainer`: ``docker run`` with Lambda's constraints — read-only root filesystem, ``/tmp`` a
  512 MB tmpfs, a non-root user, memory capped at the function's MemorySize, optionally a CPU quota — and
  ``invoke(event)`` through the RIE's invocation API. Peak memory comes from the container's cgroup.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE_IMAGE = "public.ecr.aws/lambda/python:3.12"
# Lambda runs functions as a non-root user (sbx_user1051) with only /tmp writable.
LAMBDA_USER = "993:990"
TMP_SIZE = "512m"
RIE_PORT = 8080
INVOKE_PATH = "/2015-03-31/functions/function/invocations"


def docker(*args: str, check: bool = True, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run the docker CLI; on failure the exception names the command and what it printed."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} ... failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done


def engine_error() -> str | None:
    """Why no Docker engine answers, or None when one does."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    try:
        done = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    except OSError as exc:
        return f"docker CLI cannot run: {exc}"
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["docker info failed"])[-1]


def build_context(dest: Path, model_dir: Path) -> Path:
    """The repo's tracked files (as a clone has them) plus ``model_dir`` as layer/model/, under ``dest``."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():  # a file deleted in the work tree but not yet in git is not part of the build
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    shutil.copytree(model_dir, dest / "layer" / "model")
    return dest


def build_image(context: Path, tag: str, **build_args: str) -> float:
    """``docker build -f layer/Dockerfile`` (MODEL_SOURCE=prebaked unless given); returns the seconds it took."""
    args = {"MODEL_SOURCE": "prebaked", **build_args}
    flags = [f"--build-arg={k}={v}" for k, v in args.items()]
    started = time.perf_counter()
    # --force-rm: a failed step (a refused MODEL_SOURCE, a missing layer/model/) leaves no dead container behind
    build = ["build", "--network=host", "--force-rm", "-f", "layer/Dockerfile", *flags, "-t", tag, "."]
    docker(*build, cwd=context, timeout=1800)
    return time.perf_counter() - started


def image_size(tag: str) -> int:
    return int(docker("image", "inspect", "-f", "{{.Size}}", tag).stdout)


def layer_sizes(tag: str) -> list[tuple[int, str]]:
    """(bytes, instruction) per layer, newest first, as ``docker history`` reports them."""
    out = docker("history", "--no-trunc", "--human=false", "--format", "{{.Size}}\t{{.CreatedBy}}", tag).stdout
    rows = []
    for line in out.splitlines():
        size, _, created_by = line.partition("\t")
        rows.append((int(size), " ".join(created_by.split())))
    return rows


def lambda_constraints(memory_mb: int, cpus: float | None, env: dict[str, str]) -> list[str]:
    """``docker run`` flags for Lambda's constraints: read-only root, a tmpfs /tmp, the non-root user, memory capped
    at the MemorySize (and its CPU share, when given), AWS_LAMBDA_FUNCTION_MEMORY_SIZE set as Lambda sets it."""
    flags = ["--read-only", f"--tmpfs=/tmp:rw,size={TMP_SIZE}", f"--user={LAMBDA_USER}"]
    flags += [f"--memory={memory_mb}m", f"--memory-swap={memory_mb}m"]
    if cpus:
        flags.append(f"--cpus={cpus}")
    env = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb), **env}
    return flags + [f"--env={k}={v}" for k, v in env.items()]


@dataclass
class FunctionContainer:
    """One function container under the RIE; ``invoke`` posts an event and returns (response, seconds)."""

    image: str
    env: dict[str, str] = field(default_factory=dict)
    memory_mb: int = 2048
    cpus: float | None = None
    network: str | None = None
    name: str | None = None
    id: str = ""
    port: int = 0
    started_at: float = 0.0

    def start(self) -> FunctionContainer:
        flags = ["--detach", *lambda_constraints(self.memory_mb, self.cpus, self.env)]
        flags += [f"--publish=127.0.0.1::{RIE_PORT}"]
        if self.network:
            flags.append(f"--network={self.network}")
        if self.name:
            flags.append(f"--name={self.name}")
        self.started_at = time.perf_counter()
        self.id = docker("run", *flags, self.image).stdout.strip()
        mapping = docker("port", self.id, f"{RIE_PORT}/tcp").stdout.split()[0]
        self.port = int(mapping.rsplit(":", 1)[1])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{INVOKE_PATH}"

    def invoke(self, event: dict, timeout: float = 180) -> tuple[dict, float]:
        """Post ``event``; retries only while the RIE is not listening yet (the first call right after start)."""
        data = json.dumps(event).encode()
        deadline = time.monotonic() + timeout
        while True:
            started = time.perf_counter()
            request = urllib.request.Request(self.url, data=data, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as reply:
                    return json.loads(reply.read() or b"null"), time.perf_counter() - started
            except (ConnectionError, urllib.error.URLError) as exc:
                reason = getattr(exc, "reason", exc)
                if not isinstance(reason, ConnectionError) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def logs(self) -> str:
        done = docker("logs", self.id, check=False)
        return done.stdout + done.stderr

    def peak_memory_bytes(self) -> int:
        """The container cgroup's peak memory (cgroup v1 max_usage_in_bytes, or v2 memory.peak)."""
        probes = [
            f"/sys/fs/cgroup/memory/docker/{self.id}/memory.max_usage_in_bytes",
            f"/sys/fs/cgroup/system.slice/docker-{self.id}.scope/memory.peak",
        ]
        for probe in probes:
            path = Path(probe)
            if path.is_file():
                return int(path.read_text())
        raise RuntimeError("no cgroup memory accounting found for the container")

    def memory_bytes(self) -> int:
        """The container's current memory use as ``docker stats`` reports it (cache excluded)."""
        out = docker("stats", "--no-stream", "--format", "{{json .}}", self.id).stdout
        used = json.loads(out)["MemUsage"].split("/")[0].strip()
        units = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
        for unit, scale in sorted(units.items(), key=lambda u: -len(u[0])):
            if used.endswith(unit):
                return int(float(used[: -len(unit)]) * scale)
        raise RuntimeError(f"unexpected docker stats memory figure: {used}")

    def stop(self) -> None:
        if self.id:
            docker("rm", "--force", self.id, check=False)
            self.id = ""

    def __enter__(self) -> FunctionContainer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------------------------------------ S3 emulator
# Function containers (docker run, sam local) reach it by name on a Docker network of their own; the host reaches
# it on a loopback port. It runs moto's server, the same emulator as the rest of the tests, in an image built
# FROM the Lambda base image (no other registry needed).
MOTO_DOCKERFILE = """\
FROM {base}
RUN pip install --no-cache-dir "moto[server]=={version}"
ENTRYPOINT ["moto_server", "-H", "0.0.0.0", "-p", "4566"]
"""


def moto_version() -> str:
    for line in (ROOT / "requirements-serve.txt").read_text().splitlines():
        if line.startswith("moto[server]=="):
            return line.split("==", 1)[1].split()[0]
    raise RuntimeError("requirements-serve.txt pins no moto[server]")


@dataclass
class S3Emulator:
    """A moto server container on ``network`` (as ``name``:4566, also reachable as ``localstack``:4566 like the
    LocalStack container the docs use) and on 127.0.0.1:``port`` for the host (0 = any free port)."""

    network: str
    name: str
    port: int = 0

    @property
    def inner_url(self) -> str:
        return f"http://{self.name}:4566"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Emulator:
        version = moto_version()
        tag = f"midas-s3-emulator:moto-{version}"
        if docker("image", "inspect", tag, check=False).returncode != 0:
            dockerfile = MOTO_DOCKERFILE.format(base=BASE_IMAGE, version=version)
            docker("build", "--network=host", "-t", tag, "-", input=dockerfile, timeout=900)
        docker("rm", "--force", self.name, check=False)
        self._remove_network()  # a fresh one: Docker allows several networks of one name, and then refuses both
        docker("network", "create", self.network)
        publish = f"--publish=127.0.0.1:{self.port or ''}:4566"
        flags = [f"--name={self.name}", f"--network={self.network}", "--network-alias=localstack", publish]
        docker("run", "--detach", *flags, tag)
        self.port = int(docker("port", self.name, "4566/tcp").stdout.split()[0].rsplit(":", 1)[1])
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the S3 emulator did not answer on {self.url}") from None
                time.sleep(0.2)

    def _remove_network(self) -> None:
        for network_id in docker("network", "ls", "-q", "--filter", f"name=^{self.network}$").stdout.split():
            attached = docker("network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{end}}", network_id)
            for container in attached.stdout.split():
                docker("rm", "--force", container, check=False)
            docker("network", "rm", network_id, check=False)

    def stop(self) -> None:
        docker("rm", "--force", self.name, check=False)
        self._remove_network()
