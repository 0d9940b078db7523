"""Every kind of GLB the project writes passes the Khronos glTF Validator with no error and no warning: a point cloud,
a mesh, a single point, from the API and from the CLI; an empty cloud or mesh is refused, never written.

The validator is the npm package gltf-validator, pinned in the Makefile (`make gltf-validator`, run by .ci/run),
driven by scripts/validate_gltf.mjs."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from handler.app import create_app
from handler.config import Settings
from handler.estimator import DepthEstimator
from handler.s3_store import S3Store
from support import ROOT, encode, scene

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="needs node (apt: nodejs) to run the Khronos glTF Validator")

KINDS = {  # name: (CLI flags, API geometry)
    "cloud": ([], {}),
    "mesh": (["--mesh", "--edge-threshold", "0.05"], {"mesh": True, "edge_threshold": 0.05}),
    "one-point": (["--max-points", "1"], {"max_points": 1}),
}
EMPTY = (["--mesh", "--max-points", "1"], {"mesh": True, "max_points": 1})


def validate(files: list[Path]) -> dict[str, dict]:
    done = subprocess.run(
        [NODE, str(ROOT / "scripts" / "validate_gltf.mjs"), *map(str, files)], capture_output=True, text=True
    )
    if done.returncode == 2:
        pytest.fail(f"{done.stderr.strip()} (the Makefile pins the version; .ci/run installs it)")
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def photo() -> bytes:
    return encode(scene(96, 64, seed=6))


def test_every_glb_of_the_api_and_the_cli_is_valid(depth_model, baked_model_dir, photo, tmp_path):
    client = TestClient(create_app(DepthEstimator(Settings(model_dir=str(baked_model_dir)), depth_model), S3Store()))
    image = base64.b64encode(photo).decode()
    files, points = [], {}
    for kind, (flags, geometry) in KINDS.items():
        answer = client.post("/depth", json={"image": image, "point_cloud": "glb", "geometry": geometry})
        assert answer.status_code == 200, answer.text
        (tmp_path / f"api-{kind}.glb").write_bytes(base64.b64decode(answer.json()["point_cloud_base64"]))
        points[f"api-{kind}"] = answer.json()["point_cloud"]["points"]

        (tmp_path / kind).mkdir()
        (tmp_path / kind / "photo.jpg").write_bytes(photo)
        command = [sys.executable, "-m", "handler", "predict", str(tmp_path / kind / "photo.jpg"), "--glb"]
        command += ["--out", str(tmp_path / kind), "--model-dir", str(baked_model_dir), *flags]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        files += [tmp_path / f"api-{kind}.glb", tmp_path / kind / "photo.jpg.glb"]
    assert points["api-one-point"] == 1 and points["api-mesh"] > 100

    reports = validate(files)
    assert sorted(reports) == sorted(map(str, files))
    for file, report in reports.items():
        assert (report["errors"], report["warnings"]) == (0, 0), f"{file}: {report['messages']}"

    # no valid GLB holds an empty mesh: refused by both
    answer = client.post("/depth", json={"image": image, "point_cloud": "glb", "geometry": EMPTY[1]})
    assert answer.status_code == 422 and answer.json()["error"] == "empty_point_cloud"
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "photo.jpg").write_bytes(photo)
    command = [sys.executable, "-m", "handler", "predict", str(tmp_path / "empty" / "photo.jpg"), "--glb"]
    command += ["--out", str(tmp_path / "empty" / "out"), "--model-dir", str(baked_model_dir), *EMPTY[0]]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "the mesh has no triangles" in done.stderr
    assert not list((tmp_path / "empty" / "out").glob("*.glb"))
