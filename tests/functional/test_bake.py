"""The bake: official-format checkpoint → strict MidasNet_small → verified ONNX + manifest (real torch, real ORT)."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from bake import BakeError, checkpoint, cli, onnx_export, pipeline, random_checkpoint
from handler import contract
from handler.contract import sha256_file
from support import ROOT, free_port


def run_bake(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bake_weights.py"), *args], capture_output=True, text=True
    )


def test_manifest_records_what_was_baked(baked_model_dir, checkpoint_path):
    manifest = json.loads((baked_model_dir / "manifest.json").read_text())
    assert manifest["model"] == "MiDaS_small"
    assert manifest["source"] == checkpoint_path.name == "midas_v21_small_256.pt"  # the name, not the path
    assert manifest["checkpoint_sha256"] == sha256_file(checkpoint_path)
    assert manifest["onnx_sha256"] == sha256_file(baked_model_dir / "model.onnx")
    assert manifest["opset"] >= 17
    assert manifest["preprocessing"] == contract.preprocessing()
    assert manifest["preprocessing"]["net_size"] == 256 and manifest["preprocessing"]["multiple_of"] == 32
    assert manifest["preprocessing"]["resize_method"] == "upper_bound"
    assert set(manifest["versions"]) >= {"torch", "onnx", "onnxruntime", "geffnet"}
    parity = manifest["parity"]
    assert [tuple(p["shape"]) for p in parity["inputs"]] == list(onnx_export.VERIFY_SHAPES)
    assert 0 < parity["max_rel_error"] <= parity["tolerance"] <= 1e-3
    optimized = manifest["optimized"]
    assert optimized["sha256"] == sha256_file(baked_model_dir / "model.optimized.onnx")
    assert optimized["data_sha256"] == sha256_file(baked_model_dir / "model.optimized.data")
    assert optimized["data_bytes"] > 60e6 > 1e6 > optimized["bytes"]  # the weights live apart from the graph
    assert optimized["onnxruntime"] == ort.__version__ and optimized["cpu_features"] == contract.cpu_features()
    assert optimized["probe_shape"] == list(contract.PROBE_SHAPE)
    assert sorted(p.name for p in baked_model_dir.iterdir()) == [
        "manifest.json",
        "model.onnx",
        "model.onnx.frame",
        "model.optimized.data",
        "model.optimized.onnx",
    ]


def test_the_optimised_graph_matches_torch_too(baked_model_dir, torch_model):
    """The graph the function loads (fused, NCHWc) against torch itself, at a size the probe did not use."""
    x = np.random.default_rng(8).uniform(-2.1, 2.6, size=(1, 3, 192, 256)).astype(np.float32)
    options = contract.session_options(pre_optimized=True)
    session = ort.InferenceSession(str(baked_model_dir / "model.optimized.onnx"), options)
    (actual,) = session.run(None, {"image": x})
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).numpy()
    assert np.max(np.abs(actual - expected)) <= 1e-3 * np.ptp(expected)


@pytest.mark.parametrize("shape", [(96, 128), (320, 224)])
def test_onnx_matches_torch_on_shapes_the_bake_did_not_check(baked_model_dir, torch_model, shape):
    x = np.random.default_rng(7).uniform(-2.1, 2.6, size=(1, 3, *shape)).astype(np.float32)
    session = ort.InferenceSession(str(baked_model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {"image": x})
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).numpy()
    assert actual.shape == expected.shape == (1, *shape)
    assert np.ptp(expected) > 0  # a map, not a constant
    assert np.max(np.abs(actual - expected)) <= 1e-3 * np.ptp(expected)


def test_wrapped_checkpoint_bakes_to_the_same_bytes(tmp_path, baked_model_dir):
    """Upstream also saves {"model": state_dict, "optimizer": ...}; same weights → same model.onnx bytes."""
    wrapped = random_checkpoint.write_checkpoint(tmp_path / "wrapped.pt", seed=0, wrapped=True)
    manifest = pipeline.bake(wrapped, str(wrapped), tmp_path / "model")
    assert (tmp_path / "model" / "model.onnx").read_bytes() == (baked_model_dir / "model.onnx").read_bytes()
    assert manifest["onnx_sha256"] == json.loads((baked_model_dir / "manifest.json").read_text())["onnx_sha256"]


def test_cli_bake_with_pinned_sha256_replaces_an_existing_output(tmp_path, checkpoint_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "stale.txt").write_text("from an older bake")
    digest = sha256_file(checkpoint_path)
    result = run_bake("--checkpoint", str(checkpoint_path), "--sha256", digest.upper(), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "model.onnx",
        "model.onnx.frame",
        "model.optimized.data",
        "model.optimized.onnx",
    ]
    assert digest in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging or backup directories left
    manifest = (out / "manifest.json").read_text()
    assert json.loads(manifest)["source"] == "midas_v21_small_256.pt"
    assert str(checkpoint_path.parent) not in manifest  # nothing of the build machine's directories


@pytest.mark.parametrize(
    ("source", "recorded"),
    [
        ("/home/me/Downloads/midas_v21_small_256.pt", "midas_v21_small_256.pt"),
        ("layer/checkpoints/midas_v21_small_256.pt", "midas_v21_small_256.pt"),
        ("midas.pt", "midas.pt"),
        (contract.OFFICIAL_CHECKPOINT_URL, contract.OFFICIAL_CHECKPOINT_URL),
        ("http://127.0.0.1:8080/v2_1/midas_v21_small_256.pt", "http://127.0.0.1:8080/v2_1/midas_v21_small_256.pt"),
    ],
)
def test_manifest_source_is_a_url_or_a_file_name(source, recorded):
    assert checkpoint.recorded_source(source) == recorded


# ------------------------------------------------------------------------------------------ failures


def _bad_checkpoint(tmp_path: Path, mutate) -> Path:
    state = random_checkpoint.make_state_dict(seed=1)
    mutate(state)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    return path


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda s: s.pop("scratch.output_conv.4.bias"), "missing 1 keys (scratch.output_conv.4.bias)"),
        (lambda s: s.update({"scratch.extra.weight": torch.zeros(1)}), "unexpected 1 keys (scratch.extra.weight)"),
        (
            lambda s: s.update({"scratch.layer1_rn.weight": torch.zeros(64, 32, 1, 1)}),
            "scratch.layer1_rn.weight (64, 32, 1, 1) != (64, 32, 3, 3)",
        ),
    ],
    ids=["missing-key", "extra-key", "wrong-shape"],
)
def test_strict_load_failures_name_the_keys(tmp_path, mutate, expected, capsys):
    path = _bad_checkpoint(tmp_path, mutate)
    out = tmp_path / "model"
    assert cli.main(["--checkpoint", str(path), "--output", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("bake_weights: error: checkpoint does not match MidasNet_small")
    assert expected in err and "\n" not in err
    assert not out.exists()


def test_wrong_sha256_names_both_digests(tmp_path, checkpoint_path, capsys):
    wrong = "0" * 64
    out = tmp_path / "model"
    assert cli.main(["--checkpoint", str(checkpoint_path), "--sha256", wrong, "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert wrong in err and sha256_file(checkpoint_path) in err
    assert not out.exists()


def test_garbage_file_is_not_a_checkpoint(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"<html>rate limited</html>" * 40)
    result = run_bake("--checkpoint", str(garbage), "--output", str(tmp_path / "model"))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "not a PyTorch checkpoint" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "model").exists()


def test_checkpoint_of_the_wrong_kind(tmp_path, capsys):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    assert cli.main(["--checkpoint", str(path), "--output", str(tmp_path / "model")]) == 1
    assert "holds no state dict of tensors" in capsys.readouterr().err


def test_missing_checkpoint_file(tmp_path, capsys):
    assert cli.main(["--checkpoint", str(tmp_path / "nope.pt"), "--output", str(tmp_path / "m")]) == 1
    assert f"checkpoint not found: {tmp_path / 'nope.pt'}" in capsys.readouterr().err


def test_bad_sha256_argument_is_a_usage_error(tmp_path):
    result = run_bake("--sha256", "abc", "--output", str(tmp_path / "m"))
    assert result.returncode == 2 and "64 hex digits" in result.stderr


def test_unwritable_output(tmp_path, checkpoint_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    out = blocker / "model"
    assert cli.main(["--checkpoint", str(checkpoint_path), "--output", str(out)]) == 1
    assert "is not writable" in capsys.readouterr().err


def test_parity_failure_is_reported(tmp_path, baked_model_dir, torch_model):
    with pytest.raises(BakeError, match=r"parity failed at 64x256: max abs error .* max rel error"):
        onnx_export.verify_parity(torch_model, baked_model_dir / "model.onnx", shapes=[(64, 256)], tolerance=0.0)


# ------------------------------------------------------------------------------------------ download


class _Server:
    """A local HTTP server standing in for the release host: full file, truncated body, or 404."""

    def __init__(self, payload: bytes):
        payload_ref = payload

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path.endswith("/missing.pt"):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload_ref)))
                self.end_headers()
                body = payload_ref[: len(payload_ref) // 2] if self.path.endswith("/truncated.pt") else payload_ref
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def release_server(checkpoint_path):
    server = _Server(checkpoint_path.read_bytes())
    yield server
    server.close()


def test_download_bakes_and_records_the_url(tmp_path, release_server, checkpoint_path, capsys):
    url = f"{release_server.url}/v2_1/midas_v21_small_256.pt"
    downloads, out = tmp_path / "downloads", tmp_path / "model"
    assert cli.main(["--url", url, "--download-dir", str(downloads), "--output", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == url
    assert manifest["checkpoint_sha256"] == sha256_file(checkpoint_path)
    assert [p.name for p in downloads.iterdir()] == ["midas_v21_small_256.pt"]
    assert "100.0%" in capsys.readouterr().err  # the progress bar reached the end


@pytest.mark.parametrize(
    ("path", "message"),
    [("truncated.pt", "is incomplete"), ("missing.pt", "HTTP 404")],
)
def test_failed_download_leaves_nothing(tmp_path, release_server, path, message, capsys):
    downloads, out = tmp_path / "downloads", tmp_path / "model"
    url = f"{release_server.url}/v2_1/{path}"
    assert cli.main(["--url", url, "--download-dir", str(downloads), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert_offline_ways_named(err)
    assert list(downloads.iterdir()) == [] and not out.exists()


def assert_offline_ways_named(stderr: str) -> None:
    """One line that names both ways forward without network: a local checkpoint, or the test checkpoint."""
    line = stderr.strip().splitlines()[-1]  # after the progress bar, if the download had started
    assert line.startswith("bake_weights: error: download of "), stderr
    assert "--checkpoint PATH" in line and "make bake BAKE_CHECKPOINT=PATH" in line
    assert "depth is meaningless" in line
    assert "make test-checkpoint (writes /tmp/midas_test.pt)" in line  # the README's offline path, word for word
    assert line.endswith("then make bake BAKE_CHECKPOINT=/tmp/midas_test.pt")


@pytest.mark.parametrize(
    "where",
    ["refused", "dns", "404"],
)
def test_unreachable_url_names_the_offline_ways(tmp_path, release_server, where):
    url = {
        "refused": f"http://127.0.0.1:{free_port()}/midas_v21_small_256.pt",
        "dns": "http://midas-bake-test.invalid/midas_v21_small_256.pt",  # .invalid never resolves (RFC 2606)
        "404": f"{release_server.url}/v2_1/missing.pt",
    }[where]
    downloads, out = tmp_path / "downloads", tmp_path / "model"
    result = run_bake("--url", url, "--download-dir", str(downloads), "--output", str(out))
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"bake_weights: error: download of {url} failed")
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert_offline_ways_named(result.stderr)
    assert "Traceback" not in result.stderr
    assert list(downloads.iterdir()) == [] and not out.exists()


def test_the_offline_ways_work(tmp_path):
    """The commands the hint names exist as written: `make test-checkpoint` writes, where the hint says, a checkpoint
    the bake loads strictly, and `make bake BAKE_CHECKPOINT=...` bakes that file."""
    if shutil.which("make") is None:
        pytest.skip("needs make")
    written = re.search(r"make test-checkpoint \(writes (\S+)\)", checkpoint.OFFLINE_HINT)
    assert written and f"BAKE_CHECKPOINT={written[1]}" in checkpoint.OFFLINE_HINT

    def recipe(*variables: str) -> str:  # the command `make test-checkpoint` runs, as make prints it
        dry = subprocess.run(
            ["make", "-n", "test-checkpoint", *variables], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert dry.returncode == 0, dry.stderr
        return next(line for line in dry.stdout.splitlines() if "make_test_checkpoint.py" in line)

    assert recipe().endswith(f'"{written[1]}"')  # the default path is the hint's
    demo = tmp_path / "midas_test.pt"  # the hint's file, written under tmp_path
    made = subprocess.run(recipe(f"TEST_CHECKPOINT={demo}"), shell=True, cwd=ROOT, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    checkpoint.build_model(checkpoint.load_state_dict(demo))  # the strict load a bake does
    for value in ("PATH", "/tmp/midas_test.pt"):
        assert f"make bake BAKE_CHECKPOINT={value}" in checkpoint.OFFLINE_HINT
    dry = subprocess.run(
        ["make", "-n", "bake", f"BAKE_CHECKPOINT={demo}"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    assert f'scripts/bake_weights.py --checkpoint "{demo}"' in dry.stdout  # quoted: paths may hold spaces
