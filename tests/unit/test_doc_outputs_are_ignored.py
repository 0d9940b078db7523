"""What the documents' commands write, run from the repository root as they say, is ignored by git: a newcomer who
follows them verbatim gets no untracked heatmaps, JSON answers or point clouds in `git status`."""

from __future__ import annotations

import subprocess

import pytest

from support import ROOT, doc_commands

OUTPUT_FLAGS = ("-o", ">", "--out", "--download", "--event-out")
DEFAULT_OUTPUTS = ["out/photo.jpg.png"]  # make upload's default OUT


def written_by_the_documents() -> list[str]:
    paths = set(DEFAULT_OUTPUTS)
    for block in doc_commands.all_blocks():
        for words in doc_commands.commands(block.text):
            for flag, value in zip(words, words[1:], strict=False):
                if flag in OUTPUT_FLAGS and "$" not in value:
                    paths.add(value.rstrip("/") + ("/photo.jpg.png" if value.endswith("/") else ""))
            paths.update(w.split("=", 1)[1] + "/photo.jpg.png" for w in words if w.startswith("OUT="))
    return sorted(paths)


@pytest.mark.parametrize("path", written_by_the_documents())
def test_a_file_the_documents_write_is_ignored(path):
    done = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
    assert done.returncode == 0, f"{path}, which a documented command writes, is not in .gitignore"
