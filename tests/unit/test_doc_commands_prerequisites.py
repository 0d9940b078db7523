"""Every command the documents show runs as written after the README's setup: each program a block calls is a shell
builtin or a standard utility, a prerequisite the README names, a function the block defines, or a path that is in
the checkout after `make setup` (`.venv/bin/python`, `.venv-tools/bin/sam`). A bare `sam` would not run: the SAM CLI
that `make setup` installs is not on PATH."""

from __future__ import annotations

import re

import pytest

from support import ROOT, doc_commands

# Shell keywords and builtins, and the POSIX / coreutils programs every Linux and macOS has.
SHELL = {
    *("if", "then", "else", "fi", "for", "do", "done", "while", "until", "break", "continue", "case", "esac"),
    *("export", "eval", "cd", "test", "[", "true", "false", "set", "read", "kill", "wait", "trap", "source"),
    *("echo", "printf", "cat", "cut", "tr", "sort", "uniq", "head", "tail", "grep", "awk", "sed", "seq", "sleep"),
    *("base64", "mkdir", "rm", "cp", "mv", "ls", "wc", "tee", "xargs", "date", "env", "find", "chmod", "touch"),
}
_PROGRAM = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.\-/]*$")  # skips words of multi-line quoted arguments


def prerequisites() -> set[str]:
    """The programs the README's "You need" paragraph names (in backticks)."""
    readme = (ROOT / "README.md").read_text()
    paragraph = readme[readme.index("You need ") :].split("\n\n", 1)[0]
    return set(re.findall(r"`([a-z0-9][a-z0-9.-]*)`", paragraph))


def programs(block: doc_commands.Block) -> list[str]:
    defined = set(re.findall(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(\)", block.text, re.MULTILINE))
    found = []
    for words in doc_commands.commands(block.text):
        words = doc_commands._strip_assignments(words)
        if words and _PROGRAM.match(words[0]) and words[0] not in defined:
            found.append(words[0])
    return found


def test_the_readme_names_the_programs_the_documents_call():
    assert {"python3", "make", "curl", "jq", "aws", "docker"} <= prerequisites()


@pytest.mark.parametrize("block", doc_commands.all_blocks(), ids=lambda b: b.id)
def test_every_program_a_block_calls_is_there_after_setup(block):
    known = SHELL | prerequisites()
    missing = []
    for program in programs(block):
        if "/" in program:
            if not (ROOT / program).exists():
                missing.append(f"{program} (not in the checkout after make setup)")
        elif program not in known:
            hint = " (make setup installs it as .venv-tools/bin/sam)" if program == "sam" else ""
            missing.append(f"{program} (neither a prerequisite the README names nor a standard utility){hint}")
    assert not missing, f"{block.id} calls {', '.join(missing)}"
