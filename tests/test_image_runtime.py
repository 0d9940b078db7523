"""What the Lambda image would run, without Docker: its Python environment, its files, its start-up.

- ``.venv-runtime`` (``make runtime-venv``): requirements.txt alone on Python 3.12 like the base image, plus
  awslambdaric (the base image's runtime client). torch must not be importable there.
- The image's files: layer/Dockerfile's runtime stage is read and its COPY/ENV/CMD are replayed into a directory
  (task root with the handler package, the baked model at MODEL_DIR); nothing else of the repo is importable.
- Start-up as Lambda does it: ``python -m awslambdaric <CMD>`` against a stand-in for the Lambda Runtime API on
  127.0.0.1, fed API Gateway, S3 and SQS events; S3 results land in the real S3 endpoint (moto or LocalStack).
"""

from __future__ import annotations

import base64
import glob
import io
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
from PIL import Image

from conftest import encode, list_keys, scene

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "layer" / "Dockerfile"
EVENTS = ROOT / "events"
RUNTIME_VENV = ROOT / ".venv-runtime"
# Set by the Lambda base image (public.ecr.aws/lambda/python:3.12), used in the Dockerfile.
BASE_IMAGE_ENV = {"LAMBDA_TASK_ROOT": "/var/task", "LAMBDA_RUNTIME_DIR": "/var/runtime"}
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:midas-depth"
INVOKE_TIMEOUT = 180  # seconds; the first invocation includes the cold start on a busy 2-core machine


# ------------------------------------------------------------------------------------------------ the Dockerfile


# Docker's own Dockerfile parser (the `dockerfile` package wraps BuildKit's Go parser), run in .venv-tools.
_PARSE = (
    "import dockerfile, json, sys;"
    "print(json.dumps([{'cmd': c.cmd.upper(), 'flags': list(c.flags), 'value': list(c.value), 'json': c.json}"
    " for c in dockerfile.parse_file(sys.argv[1])]))"
)


@dataclass
class Stage:
    """One stage of layer/Dockerfile as Docker parses it."""

    base: str
    name: str | None
    args: dict[str, str] = field(default_factory=dict)  # ARG defaults
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    copies: list[tuple[str | None, list[str], str]] = field(default_factory=list)  # (from stage, sources, dest)
    runs: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env[m.group(1) or m.group(2)], value)


def parse_stages(instructions: list[dict]) -> list[Stage]:
    stages: list[Stage] = []
    for ins in instructions:
        cmd, value = ins["cmd"], ins["value"]
        if cmd == "FROM":
            stages.append(Stage(base=value[0], name=value[2] if len(value) == 3 else None))
            continue
        stage = stages[-1]
        scope = {**BASE_IMAGE_ENV, **stage.env}
        if cmd == "ARG":
            name, _, default = value[0].partition("=")
            stage.args[name] = default
        elif cmd == "ENV":
            for name, raw in zip(value[::2], value[1::2], strict=True):
                stage.env[name] = _expand(raw, scope)
        elif cmd == "WORKDIR":
            stage.workdir = value[0]
        elif cmd == "COPY":
            source_stage = next((f.split("=", 1)[1] for f in ins["flags"] if f.startswith("--from=")), None)
            paths = [_expand(v, scope) for v in value]
            stage.copies.append((source_stage, paths[:-1], paths[-1]))
        elif cmd == "RUN":
            assert not ins["json"], "RUN in shell form (so set -eu and the shell's exit status apply)"
            stage.runs.append(value[0])
        elif cmd == "CMD":
            assert ins["json"], "CMD in exec form"
            stage.cmd = value
    return stages


@pytest.fixture(scope="session")
def tools_python() -> Path:
    """.venv-tools' interpreter (Docker's Dockerfile parser), made by the Makefile's own rule."""
    done = subprocess.run(["make", "-s", "tools-venv"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"make tools-venv failed:\n{done.stdout}\n{done.stderr}"
    return ROOT / ".venv-tools" / "bin" / "python"


@pytest.fixture(scope="session")
def stages(tools_python) -> list[Stage]:
    done = subprocess.run([tools_python, "-c", _PARSE, str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return parse_stages(json.loads(done.stdout))


@pytest.fixture(scope="session")
def stage(stages) -> Stage:
    """The runtime stage (the last one): what the image is."""
    return stages[-1]


def replay_copies(stage: Stage, root: Path, from_stage: dict[str, Path], skip: tuple[str, ...] = ()) -> None:
    """Do ``stage``'s COPY instructions into ``root`` (its / ), sources from the repo or from ``from_stage``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", *skip)
    for source_stage, sources, dest in stage.copies:
        base = root / stage.workdir.lstrip("/") if not dest.startswith("/") else root
        target = base / dest.lstrip("/")
        for source in sources:
            if source_stage is not None:  # COPY --from=<stage> <path>: that stage's output
                origin = from_stage[f"{source_stage}:{source.rstrip('/')}"]
                shutil.copytree(origin, target, dirs_exist_ok=True)
            elif (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, dirs_exist_ok=True, ignore=ignore)
            else:
                assert dest.endswith("/"), dest
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / source, target / Path(source).name)


@pytest.fixture(scope="session")
def image_root(stage, baked_model_dir, tmp_path_factory) -> Path:
    """The runtime stage's files replayed into a directory: the repo's COPY sources, the bake's /model."""
    root = tmp_path_factory.mktemp("image")
    replay_copies(stage, root, {"bake:/model": baked_model_dir})
    (root / "tmp").mkdir()
    return root


def image_env(stage: Stage, root: Path) -> dict[str, str]:
    """The image's ENV with its absolute paths moved under ``root`` (HOME=/tmp → <root>/tmp, …)."""
    env = {}
    for name, value in stage.env.items():
        env[name] = str(root / value.lstrip("/")) if value.startswith("/") else value
    env["LAMBDA_TASK_ROOT"] = str(root / BASE_IMAGE_ENV["LAMBDA_TASK_ROOT"].lstrip("/"))
    return env


# ------------------------------------------------------------------------------------------------ the runtime venv


def _machine_has_python312() -> bool:
    candidates = [shutil.which("python3.12") or ""]
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates += glob.glob(f"{pyenv_root}/versions/3.12*/bin/python3.12")
    for candidate in filter(None, candidates):
        done = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"], capture_output=True, text=True
        )
        if done.returncode == 0 and done.stdout.strip() == "True":
            return True
    return False


@pytest.fixture(scope="session")
def runtime_python() -> Path:
    """.venv-runtime's interpreter, made (or brought up to date) by the Makefile's own rule."""
    done = subprocess.run(["make", "-s", "runtime-venv"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"make runtime-venv failed:\n{done.stdout}\n{done.stderr}"
    return RUNTIME_VENV / "bin" / "python"


def _clean_env(**extra: str) -> dict[str, str]:
    """A child environment with nothing of this test process's Python setup (no PYTHONPATH, no venv)."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    return {**keep, **extra}


def _aws_env(s3_endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        "AWS_REGION": os.environ["AWS_DEFAULT_REGION"],
        "AWS_DEFAULT_REGION": os.environ["AWS_DEFAULT_REGION"],
    }


def _requirements(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_runtime_venv_has_requirements_txt_and_no_torch(runtime_python):
    probe = (
        "import importlib.metadata as md, importlib.util as u, json, re, sys;"
        "print(json.dumps({'python': list(sys.version_info[:2]),"
        " 'dists': {re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(): d.version for d in md.distributions()},"
        " 'torch_spec': u.find_spec('torch') is not None}))"
    )
    done = subprocess.run([runtime_python, "-c", probe], capture_output=True, text=True, env=_clean_env())
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    dists = info["dists"]

    assert not info["torch_spec"]
    imported = subprocess.run([runtime_python, "-c", "import torch"], capture_output=True, text=True, env=_clean_env())
    assert imported.returncode != 0 and "No module named 'torch'" in imported.stderr
    for build_only in ("torch", "torchvision", "geffnet", "onnx", "onnxscript"):
        assert build_only not in dists, f"{build_only} is in the runtime environment"
    for name, version in _requirements(ROOT / "requirements.txt").items():
        assert dists.get(name) == version, f"{name}: want {version}, installed {dists.get(name)}"
    assert "awslambdaric" in dists  # the base image's runtime client, not in requirements.txt
    if _machine_has_python312():
        assert info["python"] == [3, 12], "the Lambda base image runs Python 3.12"


def test_image_files_are_the_handler_package_and_the_model(stage, image_root, baked_model_dir):
    assert stage.base == "public.ecr.aws/lambda/python:3.12"
    assert stage.cmd == ["handler.entry.lambda_handler"]
    task_root = image_root / "var" / "task"
    assert (task_root / "requirements.txt").is_file()
    assert (task_root / "handler" / "entry.py").is_file()
    assert (task_root / "handler" / "static" / "index.html").is_file()
    assert not (task_root / "scripts").exists() and not (task_root / "tests").exists()
    model_dir = Path(image_env(stage, image_root)["MODEL_DIR"])
    assert model_dir == image_root / "opt" / "ml" / "model"
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(p.name for p in baked_model_dir.iterdir())


# ------------------------------------------------------------------------------------------------ the bake stage
# Its RUN scripts run here as Docker would run them (/bin/sh -c, ARGs in the environment, WORKDIR as cwd) in a
# directory holding what its COPY instructions bring; only the absolute /model and /tmp/checkpoints are moved into
# that directory. The pip install of torch (network) is the one branch not run here.


@dataclass
class BakeSandbox:
    stage: Stage
    root: Path

    @property
    def workdir(self) -> Path:
        return self.root / self.stage.workdir.lstrip("/")

    def run(self, index: int, **args: str) -> subprocess.CompletedProcess:
        script = self.stage.runs[index]
        for absolute in ("/tmp/checkpoints", "/model"):
            script = re.sub(rf"(?<![\w/.]){re.escape(absolute)}\b", str(self.root / absolute.lstrip("/")), script)
        python_bin = str(Path(sys.executable).parent)  # .venv: the bake's requirements (torch, geffnet, onnx)
        env = _clean_env(**{**self.stage.args, **args}, HOME=str(self.root / "home"))
        env["PATH"] = f"{python_bin}:{env['PATH']}"
        return subprocess.run(["/bin/sh", "-c", script], cwd=self.workdir, env=env, capture_output=True, text=True)


@pytest.fixture
def bake_sandbox(stages, tmp_path) -> BakeSandbox:
    (bake,) = [s for s in stages if s.name == "bake"]
    # The repo's own layer/model and layer/checkpoints (from a local `make bake`) are left out: each test puts
    # in what its case needs.
    replay_copies(bake, tmp_path, {}, skip=("model", "checkpoints", ".model.*"))
    return BakeSandbox(bake, tmp_path)


def test_bake_stage_refuses_an_unknown_model_source(bake_sandbox):
    install = next(i for i, run in enumerate(bake_sandbox.stage.runs) if "pip install" in run)
    done = bake_sandbox.run(install, MODEL_SOURCE="cached")
    assert done.returncode != 0 and "MODEL_SOURCE must be 'bake' or 'prebaked'" in done.stderr
    skipped = bake_sandbox.run(install, MODEL_SOURCE="prebaked")  # prebaked installs no torch at all
    assert skipped.returncode == 0, skipped.stderr
    assert "pip" not in skipped.stdout + skipped.stderr


def test_bake_stage_prebaked_ships_layer_model_and_checks_the_pinned_checkpoint(bake_sandbox, baked_model_dir):
    model_step = len(bake_sandbox.stage.runs) - 1
    missing = bake_sandbox.run(model_step, MODEL_SOURCE="prebaked")
    assert missing.returncode != 0 and "run 'make bake' first" in missing.stderr

    shutil.copytree(baked_model_dir, bake_sandbox.workdir / "layer" / "model")
    digest = json.loads((baked_model_dir / "manifest.json").read_text())["checkpoint_sha256"]
    wrong = bake_sandbox.run(model_step, MODEL_SOURCE="prebaked", CHECKPOINT_SHA256="0" * 64)
    assert wrong.returncode != 0 and f"was baked from checkpoint {digest}, not {'0' * 64}" in wrong.stderr

    done = bake_sandbox.run(model_step, MODEL_SOURCE="prebaked", CHECKPOINT_SHA256=digest.upper())
    assert done.returncode == 0, done.stderr
    model = bake_sandbox.root / "model"
    assert sorted(p.name for p in model.iterdir()) == ["manifest.json", "model.onnx"]
    assert (model / "model.onnx").read_bytes() == (baked_model_dir / "model.onnx").read_bytes()
    assert all(p.stat().st_mode & 0o444 == 0o444 for p in model.iterdir())  # readable by Lambda's non-root user


def test_bake_stage_bakes_a_checkpoint_file_from_the_build_context(bake_sandbox, checkpoint_path, baked_model_dir):
    model_step = len(bake_sandbox.stage.runs) - 1
    checkpoints = bake_sandbox.workdir / "layer" / "checkpoints"
    checkpoints.mkdir()
    shutil.copy2(checkpoint_path, checkpoints / "midas_v21_small_256.pt")
    digest = json.loads((baked_model_dir / "manifest.json").read_text())["checkpoint_sha256"]
    args = {"MODEL_SOURCE": "bake", "CHECKPOINT_FILE": "layer/checkpoints/midas_v21_small_256.pt"}

    wrong = bake_sandbox.run(model_step, **args, CHECKPOINT_SHA256="f" * 64)
    assert wrong.returncode != 0 and "sha256 mismatch" in wrong.stderr
    assert not (bake_sandbox.root / "model").exists()

    done = bake_sandbox.run(model_step, **args, CHECKPOINT_SHA256=digest)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((bake_sandbox.root / "model" / "manifest.json").read_text())
    assert manifest["source"] == "layer/checkpoints/midas_v21_small_256.pt"
    assert manifest["checkpoint_sha256"] == digest
    # Same checkpoint, same exporter: the image gets byte-for-byte the model the tests bake.
    assert (bake_sandbox.root / "model" / "model.onnx").read_bytes() == (baked_model_dir / "model.onnx").read_bytes()


# ------------------------------------------------------------------------------------------------ entry in the venv

_DRIVER = """
import json, sys, uuid

class Context:
    function_name = "midas-depth"
    function_version = "$LATEST"
    memory_limit_in_mb = 2048
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:midas-depth"
    log_group_name = "/aws/lambda/midas-depth"
    log_stream_name = "local"
    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())
    def get_remaining_time_in_millis(self):
        return 30000

import handler
from handler.entry import lambda_handler

results = []
for path in sys.argv[1:]:
    try:
        results.append({"response": lambda_handler(json.load(open(path)), Context())})
    except Exception as exc:
        results.append({"error": type(exc).__name__, "message": str(exc)})
print("RESULT " + json.dumps({"results": results, "handler_file": handler.__file__,
                               "torch_imported": "torch" in sys.modules}))
"""


def _event_object(event: dict) -> tuple[str, str]:
    """(bucket, decoded key) of the first record of an S3 event."""
    s3 = event["Records"][0]["s3"]
    return s3["bucket"]["name"], unquote_plus(s3["object"]["key"])


@pytest.fixture(scope="session")
def event_upload(s3):
    """Puts a JPEG where events/s3-put.json (and the SQS event wrapping it) says one was uploaded."""
    bucket, key = _event_object(json.loads((EVENTS / "s3-put.json").read_text()))
    existing = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)
    image = encode(scene(320, 240, seed=5), "JPEG", quality=90)
    s3.put_object(Bucket=bucket, Key=key, Body=image)
    return bucket, key, (320, 240)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data)).size


def test_entry_in_runtime_venv_answers_api_and_s3_events(
    runtime_python, stage, image_root, s3_endpoint, s3, output_bucket, event_upload
):
    input_bucket, key, size = event_upload
    env = _clean_env(
        **image_env(stage, image_root),
        **_aws_env(s3_endpoint),
        OUTPUT_BUCKET=output_bucket,
        OUTPUT_PREFIX="venv/",
        ALLOWED_INPUT_BUCKETS=input_bucket,
        POWERTOOLS_LOG_LEVEL="WARNING",
    )
    events = ["api-health.json", "api-depth-png.json", "s3-put.json", "sqs-s3-put.json"]
    done = subprocess.run(
        [runtime_python, "-c", _DRIVER, *[str(EVENTS / e) for e in events]],
        cwd=env["LAMBDA_TASK_ROOT"],
        env=env,
        capture_output=True,
        text=True,
        timeout=INVOKE_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])
    assert out["handler_file"] == str(image_root / "var" / "task" / "handler" / "__init__.py")
    assert out["torch_imported"] is False
    health, depth, s3_put, sqs = (r.get("response", r) for r in out["results"])

    assert health["statusCode"] == 200
    manifest = json.loads((image_root / "opt" / "ml" / "model" / "manifest.json").read_text())
    assert json.loads(health["body"])["onnx_sha256"] == manifest["onnx_sha256"]

    assert depth["statusCode"] == 200 and depth["isBase64Encoded"] is True
    assert depth["headers"]["content-type"] == "image/png"
    request = json.loads((EVENTS / "api-depth-png.json").read_text())
    assert _png_size(base64.b64decode(depth["body"])) == _png_size(base64.b64decode(request["body"]))

    stem = key.rsplit(".", 1)[0]
    assert s3_put["written"] == [{"bucket": input_bucket, "key": key, "heatmap": f"venv/{stem}.png"}]
    assert s3_put["failed"] == []
    heatmap = s3.get_object(Bucket=output_bucket, Key=f"venv/{stem}.png")["Body"].read()
    assert _png_size(heatmap) == size
    assert sqs == {"batchItemFailures": []}


# ------------------------------------------------------------------------------------------------ awslambdaric


class RuntimeApi:
    """A minimal stand-in for the Lambda Runtime API (2018-06-01) on 127.0.0.1: hands out queued events on
    GET .../invocation/next and records what the runtime posts to .../response, .../error and init/error."""

    def __init__(self) -> None:
        self.pending: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.results: dict[str, tuple[str, bytes, dict[str, str]]] = {}
        self.init_errors: list[bytes] = []
        self.cond = threading.Condition()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while (size := int(self.rfile.readline().strip().split(b";")[0], 16)) > 0:
                        data += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                    return data
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self._reply(404, b'{"errorType":"NotFound"}')
                request_id, body = api.pending.get()  # long poll, as the real API does
                deadline = int((time.time() + INVOKE_TIMEOUT) * 1000)
                self._reply(
                    200,
                    body,
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline),
                        "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                        "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]};Sampled=0",
                    },
                )

            def do_POST(self) -> None:
                body = self._body()
                match = re.fullmatch(r"/2018-06-01/runtime/invocation/([^/]+)/(response|error)", self.path)
                if self.path == "/2018-06-01/runtime/init/error":
                    with api.cond:
                        api.init_errors.append(body)
                        api.cond.notify_all()
                elif match:
                    with api.cond:
                        api.results[match[1]] = (match[2], body, {k.lower(): v for k, v in self.headers.items()})
                        api.cond.notify_all()
                else:
                    return self._reply(404, b'{"errorType":"NotFound"}')
                self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def invoke(self, event: dict, alive) -> tuple[str, dict, dict[str, str]]:
        """Queue ``event``, wait for the runtime's answer: ("response" | "error", JSON body, lower-case headers)."""
        request_id = str(uuid.uuid4())
        self.pending.put((request_id, json.dumps(event).encode()))
        deadline = time.monotonic() + INVOKE_TIMEOUT
        with self.cond:
            while request_id not in self.results:
                assert not self.init_errors, f"init failed: {self.init_errors[0][:2000]!r}"
                assert alive(), "the runtime process exited"
                assert time.monotonic() < deadline, "no answer from the runtime"
                self.cond.wait(0.5)
            kind, body, headers = self.results[request_id]
        return kind, json.loads(body), headers

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Ric:
    api: RuntimeApi
    process: subprocess.Popen
    log: Path

    def invoke(self, event: dict) -> tuple[str, dict, dict[str, str]]:
        try:
            return self.api.invoke(event, lambda: self.process.poll() is None)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- runtime output ---\n{self.log.read_text()[-6000:]}") from None


@pytest.fixture(scope="module")
def ric(runtime_python, stage, image_root, s3_endpoint, output_bucket, event_upload, tmp_path_factory):
    """``python -m awslambdaric <CMD>`` started as the base image's entrypoint does, against RuntimeApi."""
    api = RuntimeApi()
    log = tmp_path_factory.mktemp("ric") / "runtime.log"
    env = _clean_env(
        **image_env(stage, image_root),
        **_aws_env(s3_endpoint),
        AWS_LAMBDA_RUNTIME_API=api.address,
        AWS_EXECUTION_ENV="AWS_Lambda_python3.12",
        AWS_LAMBDA_FUNCTION_NAME="midas-depth",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="2048",
        AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/midas-depth",
        AWS_LAMBDA_LOG_STREAM_NAME="2026/11/23/[$LATEST]0",
        _HANDLER=stage.cmd[0],
        OUTPUT_BUCKET=output_bucket,
        OUTPUT_PREFIX="ric/",
        ALLOWED_INPUT_BUCKETS=event_upload[0],
        POWERTOOLS_LOG_LEVEL="INFO",
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [runtime_python, "-m", "awslambdaric", *stage.cmd],
            cwd=env["LAMBDA_TASK_ROOT"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Ric(api, process, log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        api.close()


def test_awslambdaric_serves_an_api_gateway_event_with_a_binary_response(ric):
    kind, response, _ = ric.invoke(json.loads((EVENTS / "api-depth-png.json").read_text()))
    assert kind == "response", response
    assert response["statusCode"] == 200 and response["isBase64Encoded"] is True
    assert response["headers"]["content-type"] == "image/png"
    assert _png_size(base64.b64decode(response["body"])) == (96, 64)
    assert ric.api.init_errors == []
    logs = [json.loads(line) for line in ric.log.read_text().splitlines() if line.startswith("{")]
    assert any(entry.get("message") == "model loaded" for entry in logs)  # the init phase loaded the real model


def test_awslambdaric_serves_an_s3_event_and_writes_the_heatmap(ric, s3, output_bucket, event_upload):
    bucket, key, size = event_upload
    kind, response, _ = ric.invoke(json.loads((EVENTS / "s3-put.json").read_text()))
    assert kind == "response", response
    stem = key.rsplit(".", 1)[0]
    assert response["written"] == [{"bucket": bucket, "key": key, "heatmap": f"ric/{stem}.png"}]
    assert f"ric/{stem}.png" in list_keys(s3, output_bucket, "ric/")
    assert _png_size(s3.get_object(Bucket=output_bucket, Key=f"ric/{stem}.png")["Body"].read()) == size


def test_awslambdaric_reports_a_failed_s3_record_as_an_invocation_error(ric):
    event = json.loads((EVENTS / "s3-put.json").read_text())
    event["Records"][0]["s3"]["object"]["key"] = "uploads/never+uploaded.jpg"
    kind, error, _ = ric.invoke(event)
    assert kind == "error"  # so Lambda retries it and then sends it to the on-failure destination
    assert error["errorType"] == "RecordsFailed"
    assert "uploads/never uploaded.jpg" in error["errorMessage"]


def test_awslambdaric_serves_an_sqs_batch_with_partial_failures(ric):
    event = json.loads((EVENTS / "sqs-s3-put.json").read_text())
    good = event["Records"][0]
    bad = json.loads(json.dumps(good))
    missing = json.loads(good["body"])
    missing["Records"][0]["s3"]["object"]["key"] = "uploads/missing.jpg"
    bad.update(messageId=str(uuid.uuid4()), body=json.dumps(missing))
    event["Records"] = [good, bad]
    kind, response, _ = ric.invoke(event)
    assert kind == "response", response
    assert response == {"batchItemFailures": [{"itemIdentifier": bad["messageId"]}]}


# ------------------------------------------------------------------------------------------------ make invoke-s3


def test_local_s3_invoke_uploads_runs_the_function_and_says_where_the_heatmap_went(
    s3_endpoint, s3, baked_model_dir, input_bucket, output_bucket, tmp_path
):
    image = tmp_path / "street scene.jpg"
    image.write_bytes(encode(scene(200, 150, seed=9), "JPEG", quality=90))
    event_file = tmp_path / "event.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "local_s3_invoke.py"),
            str(image),
            *("--bucket", input_bucket, "--output-bucket", output_bucket),
            *("--key", "uploads/local invoke/street scene.jpg", "--model-dir", str(baked_model_dir)),
            *("--download", str(tmp_path / "out"), "--event-out", str(event_file)),
        ],
        env={**os.environ, "AWS_ENDPOINT_URL": s3_endpoint, "POWERTOOLS_LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=INVOKE_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out_key = "depth/uploads/local invoke/street scene.png"
    assert f"heatmap: s3://{output_bucket}/{out_key}" in done.stdout
    assert s3.head_object(Bucket=input_bucket, Key="uploads/local invoke/street scene.jpg")["ContentLength"] > 0
    assert _png_size(s3.get_object(Bucket=output_bucket, Key=out_key)["Body"].read()) == (200, 150)
    assert _png_size((tmp_path / "out" / out_key).read_bytes()) == (200, 150)
    saved = json.loads(event_file.read_text())["Records"][0]["s3"]
    assert saved["object"]["key"] == "uploads/local+invoke/street+scene.jpg"  # encoded as S3 encodes it
    assert saved["bucket"]["name"] == input_bucket


def test_local_s3_invoke_fails_clearly_without_a_model(tmp_path):
    image = tmp_path / "a.jpg"
    image.write_bytes(encode(scene(32, 32), "JPEG"))
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "local_s3_invoke.py"), str(image), "--model-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "no baked model" in done.stderr and "make bake" in done.stderr
