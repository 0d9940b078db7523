"""Copies of a baked model directory, spoilt on purpose: the model's start-up checks are tested against them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def tamper(path: Path) -> None:
    with path.open("ab") as fh:
        fh.write(b"\0")


def flip_byte(path: Path, at: int) -> None:
    """Change one byte inside the file (appending would leave every tensor it holds intact)."""
    with path.open("r+b") as fh:
        fh.seek(at)
        byte = fh.read(1)
        fh.seek(at)
        fh.write(bytes([byte[0] ^ 0xFF]))


def edit_manifest(model_dir: Path, change) -> None:
    manifest = json.loads((model_dir / "manifest.json").read_text())
    change(manifest)
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
