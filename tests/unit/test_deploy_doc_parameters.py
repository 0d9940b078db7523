"""deploy.md's table of parameters is the template's `Parameters`: every parameter, no other, each with its default."""

from __future__ import annotations

import re

from support import ROOT
from support.template import read_template


def template_defaults() -> dict[str, str]:
    return {name: str(spec["Default"]) for name, spec in read_template()["Parameters"].items()}


def documented_defaults() -> dict[str, str]:
    """parameter -> its default as the table under deploy.md's "Parameters" gives it ("(empty)" = ""); a row may
    name several parameters, with their defaults in the same order."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    section = text[text.index("\n## Parameters\n") :].split("\n## ", 2)[1]
    documented: dict[str, str] = {}
    for names, defaults in re.findall(r"^\| (`\w+`[^|]*) \| ([^|]+?) \|", section, re.MULTILINE):
        names = re.findall(r"`(\w+)`", names)
        values = [v.strip("`") for v in re.split(r" / |, ", defaults)]
        values = ["" if v == "(empty)" else v for v in values]
        if len(values) == 1:  # one default said once for every name of the row
            values *= len(names)
        assert len(values) == len(names), f"deploy.md's row of {names} gives {len(values)} defaults"
        for name, value in zip(names, values, strict=True):
            assert name not in documented, f"deploy.md lists {name} twice"
            documented[name] = value
    return documented


def test_deploy_md_lists_every_parameter_and_no_other():
    assert sorted(documented_defaults()) == sorted(template_defaults())


def test_deploy_md_gives_each_parameters_default():
    documented = documented_defaults()
    for name, default in template_defaults().items():
        assert documented[name] == default, f"{name}: deploy.md says {documented[name]!r}, the template {default!r}"
