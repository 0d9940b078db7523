"""The documents name the CPU their figures come from in one place, docs/performance.md's "The machine" paragraph;
every other figure refers to it (a second CPU name elsewhere made readers compare figures of two machines)."""

from __future__ import annotations

import re

from support import ROOT

CPU_NAMES = re.compile(r"\b(EPYC|Xeon|Ryzen|Core\(TM\)|Graviton|Neoverse)\b", re.IGNORECASE)


def test_cpu_models_are_named_only_in_the_machine_paragraph():
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        if doc.name == "performance.md":
            start = text.index("**The machine.**")
            text = text[:start] + text[start:].split("\n\n", 1)[1]
        found += [f"{doc.relative_to(ROOT)}: {line.strip()}" for line in text.splitlines() if CPU_NAMES.search(line)]
    assert not found, "CPU named outside docs/performance.md's machine paragraph:\n" + "\n".join(found)


def test_the_machine_paragraph_names_the_cpu():
    text = (ROOT / "docs" / "performance.md").read_text()
    paragraph = text[text.index("**The machine.**") :].split("\n\n", 1)[0]
    assert "AMD EPYC" in paragraph
