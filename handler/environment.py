"""The one reader of the process environment: variable names matched in any case, as ``Settings`` reads them.

Dependency-free on purpose: the container reads the model's options through it before pydantic is imported (the
model then loads while the settings are validated), and ``Settings`` reads everything else through it.
"""

from __future__ import annotations

import os


def environment() -> dict[str, str]:
    """Every variable, by its lower-case name."""
    return {name.lower(): value for name, value in os.environ.items()}


def variable(name: str) -> str | None:
    """One variable's value (any case of ``name``), or None when it is not set."""
    return environment().get(name.lower())
