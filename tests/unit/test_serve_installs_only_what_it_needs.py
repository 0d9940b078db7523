"""A first `make serve` (no venv yet) installs only what serving needs: requirements-serve.txt (runtime, bake, the S3
emulator, uvicorn) into .venv, never the test tools nor the SAM CLI and cfn-lint of .venv-tools; after `make setup`
it uses that venv as it is. Checked with `make -n` (what make would run) on venvs that do not exist."""

from __future__ import annotations

import subprocess

import pytest

from support import ROOT


def dry_run(target: str, venv: str, tools: str) -> str:
    done = subprocess.run(
        ["make", "-n", target, f"VENV={venv}", f"TOOLS_VENV={tools}", "IMAGE=photo.jpg"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("target", ["serve", "bake", "upload", "invoke-s3"])
def test_a_first_serve_installs_the_serving_requirements_only(target, tmp_path):
    venv, tools = tmp_path / "venv", tmp_path / "tools"
    commands = dry_run(target, str(venv), str(tools))
    assert f"{venv}/bin/pip install --quiet -r requirements-serve.txt" in commands
    assert "requirements-dev.txt" not in commands
    assert str(tools) not in commands and "aws-sam-cli" not in commands and "cfn-lint" not in commands


def test_the_serving_requirements_hold_what_make_serve_imports():
    lines = (ROOT / "requirements-serve.txt").read_text().splitlines()
    assert {"-r requirements.txt", "-r requirements-bake.txt"} <= set(lines)
    assert any(line.startswith("moto[server]==") for line in lines)
    assert any(line.startswith("uvicorn==") for line in lines)
    assert "-r requirements-serve.txt" in (ROOT / "requirements-dev.txt").read_text().splitlines()
