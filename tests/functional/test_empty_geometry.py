"""A point cloud without points or a mesh without triangles is refused by the CLI and the API, never written."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from handler.app import create_app
from handler.config import Settings
from handler.estimator import DepthEstimator
from handler.s3_store import S3Store
from support import ROOT, encode, scene


@pytest.fixture(scope="module")
def photo() -> bytes:
    return encode(scene(64, 48, seed=5))


def test_cli_refuses_a_mesh_without_triangles_and_writes_nothing_of_that_image(tmp_path, baked_model_dir, photo):
    (tmp_path / "p.jpg").write_bytes(photo)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "handler", "predict", str(tmp_path / "p.jpg"), "--out", str(out)]
    command += ["--glb", "--mesh", "--max-points", "1", "--model-dir", str(baked_model_dir)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert f"error: {tmp_path / 'p.jpg'}: the mesh has no triangles" in done.stderr
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("geometry", "words"),
    [
        ({"mesh": True, "max_points": 1}, "the mesh has no triangles"),
        ({"scale": 0.0, "shift": -1.0}, "no point is left to write"),  # depth -1 everywhere,
    ],
)
@pytest.mark.parametrize("fmt", ["glb", "ply"])
def test_api_answers_422_naming_why(depth_model, baked_model_dir, photo, fmt, geometry, words):
    client = TestClient(create_app(DepthEstimator(Settings(model_dir=str(baked_model_dir)), depth_model), S3Store()))
    body = {"image": base64.b64encode(photo).decode(), "point_cloud": fmt, "geometry": geometry}
    response = client.post("/depth", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "empty_point_cloud" and words in response.json()["message"]
