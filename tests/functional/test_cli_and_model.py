"""The CLI (python -m handler predict), the model's start-up checks and the settings' validation."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from handler.config import Settings
from handler.contract import sha256_file
from handler.errors import ModelUnavailable
from handler.model import DepthModel, cpu_share
from support import ROOT, encode, read_pfm, scene
from support.model_dirs import copy_model, edit_manifest, tamper


def run_cli(*args: str, env_model_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "POWERTOOLS_LOG_LEVEL": "WARNING"}
    if env_model_dir:
        env["MODEL_DIR"] = str(env_model_dir)
    return subprocess.run(
        [sys.executable, "-m", "handler", *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_writes_heatmaps_and_pfm_and_carries_on(tmp_path, baked_model_dir, estimator):
    images = tmp_path / "in"
    images.mkdir()
    (images / "a.jpg").write_bytes(encode(scene(160, 120, seed=1)))
    (images / "b.png").write_bytes(encode(scene(90, 70, seed=2), "PNG"))
    (images / "broken.jpg").write_bytes(b"nope")
    out = tmp_path / "out"
    args = ["predict", str(images / "a.jpg"), str(images / "broken.jpg"), str(images / "missing.jpg")]
    result = run_cli(*args, str(images / "b.png"), "--out", str(out), "--model-dir", str(baked_model_dir))
    assert result.returncode == 1
    assert f"error: {images / 'broken.jpg'}: not an image" in result.stderr
    assert f"error: {images / 'missing.jpg'}: No such file or directory" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg.pfm", "a.jpg.png", "b.png.pfm", "b.png.png"]
    heat = cv2.imread(str(out / "a.jpg.png"))
    assert heat.shape == (120, 160, 3)
    depth = read_pfm((out / "b.png.pfm").read_bytes())
    expected = estimator.estimate((images / "b.png").read_bytes()).inverse_depth
    np.testing.assert_allclose(depth, expected, rtol=0, atol=1e-4 * np.ptp(expected))


def test_cli_model_dir_from_environment_and_png16(tmp_path, baked_model_dir):
    (tmp_path / "x.jpg").write_bytes(encode(scene(64, 32)))
    result = run_cli(
        "predict", str(tmp_path / "x.jpg"), "--out", str(tmp_path), "--png16", env_model_dir=baked_model_dir
    )
    assert result.returncode == 0, result.stderr
    assert cv2.imread(str(tmp_path / "x.jpg.depth.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_cli_without_a_model(tmp_path):
    result = run_cli("predict", "x.jpg", "--out", str(tmp_path), "--model-dir", str(tmp_path / "none"))
    assert result.returncode == 2 and "no manifest.json" in result.stderr and "Traceback" not in result.stderr
    assert f"{tmp_path / 'none'} (--model-dir)" in result.stderr and "`make bake`" in result.stderr


def test_cli_same_stems_get_distinct_outputs(tmp_path, baked_model_dir):
    """a.tif and a.bmp (same stem), b.png: every image keeps its own outputs, named by its whole file name."""
    images = {  # name: (width, height, format): each its own size, so a heatmap shows whose it is
        "a.tif": (64, 48, "TIFF"),
        "a.bmp": (80, 40, "BMP"),
        "b.png": (96, 32, "PNG"),
    }
    for seed, (name, (width, height, fmt)) in enumerate(images.items()):
        (tmp_path / name).write_bytes(encode(scene(width, height, seed=seed), fmt))
    out = tmp_path / "out"
    inputs = [str(tmp_path / name) for name in images]
    result = run_cli("predict", *inputs, "--out", str(out), "--png16", "--model-dir", str(baked_model_dir))
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"{name}{s}" for name in images for s in (".png", ".pfm", ".depth.png"))
    lines = result.stdout.splitlines()
    assert len(lines) == len(images)
    for line, name in zip(lines, images, strict=True):
        width, height, _ = images[name]
        paths = [out / f"{name}{s}" for s in (".png", ".pfm", ".depth.png")]
        assert line.startswith(f"{tmp_path / name} -> {paths[0]}, {paths[1]}, {paths[2]} ({width}x{height}, "), line
        assert cv2.imread(str(paths[0])).shape == (height, width, 3)  # each heatmap is its own image's
        assert read_pfm(paths[1].read_bytes()).shape == (height, width)


# ------------------------------------------------------------------------------------------------ model dir


def checkout_copy(root: Path, model: Path | None) -> Path:
    """The handler package in a checkout of its own, with ``layer/model/`` holding ``model`` (or nothing)."""
    shutil.copytree(ROOT / "handler", root / "handler", ignore=shutil.ignore_patterns("__pycache__"))
    if model is not None:
        shutil.copytree(model, root / "layer" / "model")
    return root


def run_in(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "POWERTOOLS_LOG_LEVEL": "WARNING", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "handler", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.skipif(Path("/opt/ml/model/manifest.json").exists(), reason="this machine has an image's model")
def test_cli_default_model_is_the_checkouts_layer_model(tmp_path, baked_model_dir):
    (tmp_path / "p.jpg").write_bytes(encode(scene(48, 32)))
    with_model = checkout_copy(tmp_path / "baked", baked_model_dir)
    result = run_in(with_model, "predict", str(tmp_path / "p.jpg"), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "p.jpg.png").is_file()

    without = checkout_copy(tmp_path / "fresh", None)
    result = run_in(without, "predict", str(tmp_path / "p.jpg"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"no manifest.json in {without / 'layer' / 'model'} (the checkout's layer/model/)" in result.stderr
    assert "nor in /opt/ml/model (the image's model)" in result.stderr
    assert "`make bake`" in result.stderr and "BAKE_CHECKPOINT=" in result.stderr


def test_model_dir_order(tmp_path, baked_model_dir, monkeypatch):
    """--model-dir, then $MODEL_DIR (only there), then the checkout's layer/model/ if baked, then /opt/ml/model."""
    from handler import config

    checkout = tmp_path / "layer" / "model"
    monkeypatch.setattr(config, "CHECKOUT_MODEL_DIR", checkout)
    monkeypatch.delenv("MODEL_DIR", raising=False)
    assert config.local_model_dir(str(baked_model_dir)) == str(baked_model_dir)
    with pytest.raises(ModelUnavailable, match=r"/opt/ml/model \(the image's model\)"):
        config.local_model_dir()
    shutil.copytree(baked_model_dir, checkout)
    assert config.local_model_dir() == str(checkout)
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(ModelUnavailable, match=r"elsewhere \(\$MODEL_DIR\); bake") as raised:
        config.local_model_dir()  # a named place is the only place: no fallback to the checkout's model
    assert str(checkout) not in str(raised.value)
    assert config.local_model_dir(str(baked_model_dir)) == str(baked_model_dir)  # --model-dir beats $MODEL_DIR
    assert Settings().model_dir == str(tmp_path / "elsewhere")
    monkeypatch.delenv("MODEL_DIR")
    assert Settings().model_dir == "/opt/ml/model"  # the function itself never looks in the checkout


# ------------------------------------------------------------------------------------------------ model


def test_the_bakes_optimised_graph_is_used_and_equals_the_portable_model(tmp_path, baked_model_dir, depth_model):
    manifest = json.loads((baked_model_dir / "manifest.json").read_text())
    optimized = manifest["optimized"]
    assert optimized["sha256"] == sha256_file(baked_model_dir / optimized["file"]) != manifest["onnx_sha256"]
    assert depth_model.variant == "optimized" and not depth_model.variant_note
    model_dir = copy_model(baked_model_dir, tmp_path / "m")
    edit_manifest(model_dir, lambda m: m.pop("optimized"))
    portable = DepthModel.load(model_dir)
    assert portable.variant == "portable" and portable.variant_note == "the bake wrote no optimised graph"
    x = np.random.default_rng(7).standard_normal((1, 3, 192, 256), dtype=np.float32)
    ours, theirs = depth_model.infer(x), portable.infer(x)
    assert np.max(np.abs(ours - theirs)) <= 1e-5 * np.ptp(theirs)


@pytest.mark.parametrize(
    ("spoil", "note"),
    [
        (lambda d: tamper(d / "model.optimized.onnx"), "does not match manifest"),
        (lambda d: tamper(d / "model.optimized.data"), "model.optimized.data sha256"),
        (lambda d: (d / "model.optimized.data").unlink(), "model.optimized.data is missing"),
        (lambda d: edit_manifest(d, lambda m: m["optimized"].pop("sha256")), "entry is malformed (KeyError"),
        (lambda d: edit_manifest(d, lambda m: m["optimized"].update(probe_output="!")), "entry is malformed"),
        (lambda d: edit_manifest(d, lambda m: m["optimized"].update(onnxruntime="1.0.0")), "ONNX Runtime 1.0.0"),
        (lambda d: edit_manifest(d, lambda m: m["optimized"].update(cpu_features=["sse4_1"])), "vector features"),
        (
            lambda d: edit_manifest(
                d, lambda m: m["optimized"].update(probe_output=base64.b64encode(bytes(4 * 4096)).decode())
            ),
            "does not reproduce",
        ),
    ],
)
def test_an_optimised_graph_that_does_not_fit_falls_back_to_the_portable_model(tmp_path, baked_model_dir, spoil, note):
    """Another CPU, another ORT, a tampered file or other numbers: the verified model.onnx, and the reason why."""
    model_dir = copy_model(baked_model_dir, tmp_path / "m")
    spoil(model_dir)
    model = DepthModel.load(model_dir)
    assert model.variant == "portable" and note in model.variant_note


def test_model_refuses_a_tampered_onnx(tmp_path, baked_model_dir):
    """The portable model is verified whenever it is used: here the optimised graph does not fit, so it is."""
    model_dir = copy_model(baked_model_dir, tmp_path / "m")
    edit_manifest(model_dir, lambda m: m["optimized"].update(cpu_features=["sse4_1"]))
    tamper(model_dir / "model.onnx")
    with pytest.raises(ModelUnavailable, match="does not match manifest .*refusing to start"):
        DepthModel.load(model_dir)


def test_model_refuses_other_preprocessing(tmp_path, baked_model_dir):
    model_dir = copy_model(baked_model_dir, tmp_path / "m")
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["preprocessing"]["net_size"] = 384
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelUnavailable, match="other preprocessing"):
        DepthModel.load(model_dir)


def test_entry_import_fails_loudly_without_a_model(tmp_path):
    """A container without its model must fail the init phase with one clear log line."""
    code = "import handler.entry"
    env = {"PATH": "/usr/bin:/bin", "MODEL_DIR": str(tmp_path), "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode != 0
    log = next(json.loads(line) for line in result.stdout.splitlines() if line.startswith("{"))
    assert log["level"] == "CRITICAL" and log["message"].startswith("refusing to start: no manifest.json")


def test_threads_follow_available_cpus(depth_model):
    assert depth_model.threads == cpu_share().threads >= 1
