"""The SAM template (``infra/template.yaml``) as plain data, for the tests that read its names and values offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, ...) read as None: only literal names and values are read."""


_CloudFormationLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def read_template() -> dict[str, Any]:
    """The template, its short-tag values left out (None)."""
    return yaml.load(TEMPLATE.read_text(), Loader=_CloudFormationLoader)
