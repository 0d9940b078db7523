"""What the CLI names its files, and that no run replaces one of its own inputs or writes one file twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from handler.s3_outputs import RENDERINGS
from support import ROOT, encode, scene


def predict(cwd: Path, *args: str, model_dir: Path) -> subprocess.CompletedProcess:
    """``python -m handler predict ARGS --model-dir MODEL_DIR`` run in ``cwd`` with this checkout's handler."""
    env = {"PATH": "/usr/bin:/bin", "POWERTOOLS_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "handler", "predict", *args, "--model-dir", str(model_dir)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


def listing(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_out_in_the_photos_own_folder_keeps_the_photo(tmp_path, baked_model_dir):
    """`predict p.png --out .` once replaced p.png with its heatmap: the outputs are p.png.png and p.png.pfm."""
    photo = encode(scene(64, 48, seed=3), "PNG")
    (tmp_path / "p.png").write_bytes(photo)
    done = predict(tmp_path, "p.png", "--out", ".", model_dir=baked_model_dir)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "p.png").read_bytes() == photo
    assert sorted(listing(tmp_path)) == ["p.png", "p.png.pfm", "p.png.png"]
    assert done.stdout.startswith("p.png -> p.png.png, p.png.pfm (64x48, ")


def test_every_output_is_the_file_name_plus_the_renderings_suffix(tmp_path, baked_model_dir):
    (tmp_path / "photo.jpg").write_bytes(encode(scene(40, 30)))
    args = ["photo.jpg", "--out", "out", "--png16", "--ply", "--glb", "--max-points", "500"]
    done = predict(tmp_path, *args, model_dir=baked_model_dir)
    assert done.returncode == 0, done.stderr
    expected = [f"photo.jpg{suffix}" for suffix, _ in RENDERINGS.values()]
    assert sorted(listing(tmp_path / "out")) == sorted(expected)
    assert sorted(expected) == sorted(
        ["photo.jpg.png", "photo.jpg.depth.png", "photo.jpg.pfm", "photo.jpg.ply", "photo.jpg.glb"]
    )


def test_an_output_that_is_an_input_is_refused_before_anything_is_written(tmp_path, baked_model_dir):
    """`predict a.png a.png.png --out .`: a.png's heatmap would be the second input."""
    (tmp_path / "a.png").write_bytes(encode(scene(32, 24, seed=1), "PNG"))
    (tmp_path / "a.png.png").write_bytes(encode(scene(32, 24, seed=2), "PNG"))
    before = listing(tmp_path)
    done = predict(tmp_path, "a.png", "a.png.png", "--out", ".", model_dir=baked_model_dir)
    assert done.returncode == 2
    assert done.stderr == "error: a.png.png would overwrite the input a.png.png; choose another --out directory\n"
    assert listing(tmp_path) == before


def test_the_same_file_name_from_two_folders_is_refused_before_anything_is_written(tmp_path, baked_model_dir):
    for folder, seed in (("x", 1), ("y", 2)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.jpg").write_bytes(encode(scene(32, 24, seed=seed)))
    done = predict(tmp_path, "x/a.jpg", "y/a.jpg", "--out", "out", model_dir=baked_model_dir)
    assert done.returncode == 2
    assert (
        done.stderr
        == "error: out/a.jpg.png would be written for both x/a.jpg and y/a.jpg; run them with different --out\n"
    )
    assert not (tmp_path / "out").exists()


def test_an_image_named_twice_is_one_image(tmp_path, baked_model_dir):
    (tmp_path / "b.jpg").write_bytes(encode(scene(32, 24)))
    done = predict(tmp_path, "b.jpg", "./b.jpg", "--out", "out", model_dir=baked_model_dir)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1
    assert sorted(listing(tmp_path / "out")) == ["b.jpg.pfm", "b.jpg.png"]
