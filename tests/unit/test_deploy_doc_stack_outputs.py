"""deploy.md's table of stack outputs is the template's `Outputs`: every output, no other, and "always" exactly for
those without a condition (backfill.md and the other documents read outputs by these names)."""

from __future__ import annotations

import re

from support import ROOT
from support.template import read_template


def template_outputs() -> dict[str, dict]:
    return read_template()["Outputs"]


def documented_outputs() -> dict[str, str]:
    """output name -> its "when" cell, from the table under deploy.md's "Stack outputs"."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    section = text[text.index("## Stack outputs") :].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", section, re.MULTILINE))


def test_deploy_md_lists_every_stack_output_and_no_other():
    assert sorted(documented_outputs()) == sorted(template_outputs())


def test_deploy_md_says_which_outputs_exist_only_under_a_condition():
    documented = documented_outputs()
    for name, output in template_outputs().items():
        assert (documented[name] == "always") == ("Condition" not in output), f"{name}: {documented[name]!r}"


def test_the_outputs_other_documents_read_are_in_the_template():
    outputs = template_outputs()
    for doc in sorted((ROOT / "docs").glob("*.md")):
        for name in re.findall(r"OutputKey=='(\w+)'|\$\(out (\w+)\)", doc.read_text()):
            name = next(n for n in name if n)
            assert name in outputs, f"{doc.name} reads the stack output {name}, which the template does not declare"
