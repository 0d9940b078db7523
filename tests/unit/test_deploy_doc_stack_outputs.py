"""deploy.md's table of stack outputs is the template's `Outputs`: every output, no other, and "always" exactly for
those without a condition (backfill.md and the other documents read outputs by these names)."""

from __future__ import annotations

import re

import yaml

from support import ROOT


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, ...) read as plain values: only names are compared here."""


_CloudFormationLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def template_outputs() -> dict[str, dict]:
    template = yaml.load((ROOT / "infra" / "template.yaml").read_text(), Loader=_CloudFormationLoader)
    return template["Outputs"]


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
