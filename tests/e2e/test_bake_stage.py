"""layer/Dockerfile's bake stage baking a checkpoint file from the build context (MODEL_SOURCE=bake).

That path installs CPU torch from PyTorch's index inside the build, which this machine cannot reach, so the real
image build cannot exercise it here (tests/e2e/test_image.py builds the image for real in prebaked mode). Instead the
bake stage's RUN script runs as Docker would run it (/bin/sh -c, its ENV and ARGs in the environment, WORKDIR as
cwd) in a directory holding what its COPY instructions bring, with the bake's own dependencies from .venv; only the
absolute /model and /tmp/checkpoints (and /build in ENV) are moved into that directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from handler import contract
from support import ROOT

DOCKERFILE = ROOT / "layer" / "Dockerfile"
# Set by the Lambda base image (public.ecr.aws/lambda/python:3.12), used in the Dockerfile.
BASE_IMAGE_ENV = {"LAMBDA_TASK_ROOT": "/var/task", "LAMBDA_RUNTIME_DIR": "/var/runtime"}


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
    """Docker's variable substitution: $X, ${X}, ${X:-default} and ${X:+alternative}."""

    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(4)
        if m.group(2) == ":-":
            return env.get(name) or m.group(3)
        if m.group(2) == ":+":
            return m.group(3) if env.get(name) else ""
        return env[name]

    return re.sub(r"\$\{(\w+)(?:(:[-+])([^}]*))?\}|\$(\w+)", one, value)


def parse_stages(instructions: list[dict]) -> list[Stage]:
    stages: list[Stage] = []
    global_args: dict[str, str] = {}  # ARGs before the first FROM: what FROM lines may use
    for ins in instructions:
        cmd, value = ins["cmd"], ins["value"]
        if cmd == "ARG" and not stages:
            name, _, default = value[0].partition("=")
            global_args[name] = default
            continue
        if cmd == "FROM":
            base = _expand(value[0], global_args)
            stages.append(Stage(base=base, name=value[2] if len(value) == 3 else None))
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


def _clean_env(**extra: str) -> dict[str, str]:
    """A child environment with nothing of this test process's Python setup (no PYTHONPATH, no venv)."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    return {**keep, **extra}


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
        # the stage's ENV as Docker gives it to RUN, absolute paths (PYTHONPATH=/build) moved under the sandbox
        stage_env = {k: str(self.root) + v if v.startswith("/") else v for k, v in self.stage.env.items()}
        env = _clean_env(**stage_env, **{**self.stage.args, **args}, HOME=str(self.root / "home"))
        env["PATH"] = f"{python_bin}:{env['PATH']}"
        return subprocess.run(["/bin/sh", "-c", script], cwd=self.workdir, env=env, capture_output=True, text=True)


@pytest.fixture
def bake_sandbox(stages, tmp_path) -> BakeSandbox:
    (bake,) = [s for s in stages if s.name == "bake"]
    # The repo's own layer/model and layer/checkpoints (from a local `make bake`) are left out: each test puts
    # in what its case needs.
    replay_copies(bake, tmp_path, {}, skip=("model", "checkpoints", ".model.*"))
    return BakeSandbox(bake, tmp_path)


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
    assert manifest["source"] == "midas_v21_small_256.pt"  # the file name only, never a build-machine path
    assert manifest["checkpoint_sha256"] == digest
    # Same checkpoint, same exporter: the image gets byte-for-byte the model the tests bake, its weights once (the
    # frame and the optimised graph's weights rebuild model.onnx).
    assert not (bake_sandbox.root / "model" / "model.onnx").exists()
    rebuilt = contract.rebuild_portable(bake_sandbox.root / "model", manifest["optimized"])
    assert rebuilt == (baked_model_dir / "model.onnx").read_bytes()


def test_both_stages_start_from_the_lambda_base_image_by_tag_unless_a_digest_is_given(stages):
    assert [(s.name, s.base) for s in stages] == [
        ("bake", "public.ecr.aws/lambda/python:3.12"),
        ("runtime", "public.ecr.aws/lambda/python:3.12"),
    ]
    digest = "sha256:" + "ab" * 32
    assert _expand("python:3.12${D:+@}${D}", {"D": digest}) == f"python:3.12@{digest}"
    assert _expand("python:3.12${D:+@}${D}", {"D": ""}) == "python:3.12"
