"""What a documented block wrote is what test_docs checks (every PNG a valid image of its photo's size): files the
block writes for its reader, not the packages a `make setup` inside the block's directory installs."""

from __future__ import annotations

from support import doc_commands


def test_block_files_are_the_blocks_outputs_not_what_setup_installs(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"jpeg")
    before = doc_commands.block_files(tmp_path)
    # what `make setup` run inside the block's directory leaves there: a venv whose packages ship PNGs
    icon = tmp_path / ".venv" / "lib" / "python3.11" / "site-packages" / "matplotlib" / "mpl-data" / "images" / "a.png"
    icon.parent.mkdir(parents=True)
    icon.write_bytes(b"\x89PNG icon")
    (tmp_path / ".venv-tools" / "bin").mkdir(parents=True)
    (tmp_path / ".venv-tools" / "bin" / "sam").write_text("#!/bin/sh\n")
    # what the block itself writes
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "photo.jpg.png").write_bytes(b"\\x89PNG")
    (tmp_path / "depth.png").write_bytes(b"\\x89PNG")
    after = doc_commands.block_files(tmp_path)
    written = sorted(p.relative_to(tmp_path).as_posix() for p, mtime in after.items() if before.get(p) != mtime)
    assert written == ["depth.png", "out/photo.jpg.png"]


def test_links_to_the_checkout_are_not_followed(tmp_path):
    target = tmp_path / "checkout"
    (target / "docs").mkdir(parents=True)
    (target / "docs" / "screenshot.png").write_bytes(b"\\x89PNG")
    work = tmp_path / "work"
    work.mkdir()
    (work / "docs").symlink_to(target / "docs")
    assert doc_commands.block_files(work) == {}
