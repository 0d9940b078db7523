"""The command line offers every point-cloud format of handler.pointcloud, by its name (``--ply``, ``--glb``): a
format added there is a flag of ``python -m handler predict`` and a rendering of the run."""

from __future__ import annotations

import pytest

from handler import __main__ as cli
from handler import pointcloud


def renderings(*flags: str) -> list[str]:
    return cli._renderings(cli._parser().parse_args(["predict", "photo.jpg", "--out", "out", *flags]))


def test_each_format_is_a_flag_in_the_order_of_the_formats():
    assert renderings() == ["heatmap", "pfm"]
    assert renderings(*(f"--{fmt}" for fmt in reversed(pointcloud.FORMATS))) == ["heatmap", "pfm", *pointcloud.FORMATS]
    assert renderings("--png16", "--glb") == ["heatmap", "pfm", "depth_png16", "glb"]


def test_a_format_added_to_the_formats_reaches_the_command_line(monkeypatch, capsys):
    monkeypatch.setitem(pointcloud.FORMATS, "xyz", (".xyz", "text/plain"))
    assert renderings("--xyz", "--ply") == ["heatmap", "pfm", "ply", "xyz"]
    with pytest.raises(SystemExit):
        cli._parser().parse_args(["predict", "--help"])
    shown = capsys.readouterr().out
    assert "--xyz" in shown and "also write <name>.xyz (text/plain)" in shown


def test_an_unknown_format_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        renderings("--xyz")
    assert "unrecognized arguments: --xyz" in capsys.readouterr().err
