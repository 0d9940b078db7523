"""The shell commands the documents show: every fenced ``bash``/``sh`` block of README.md and docs/*.md.

A block's tag is an HTML comment on the line just before its opening fence, ``<!-- doc-test: TAG -->``:

- ``serve`` (the default when there is no comment): run by tests/e2e/test_docs.py against a running ``make serve``
  stack, in a directory holding photos and the checkout;
- ``image``: needs Docker / SAM (the built image, ``sam local``); the image tests run these (``blocks("image")``);
- ``sam``: ``sam build`` and ``sam local invoke`` against moto's server (``make sam-invoke``); run by
  tests/e2e/test_sam_invoke_docs.py in a copy of the checkout;
- ``aws``: needs a real AWS account; not run, only checked (``bash -n``, and every make target, repository path and
  script it names must exist);
- ``setup``: setup, bake and test commands the suite itself embodies (running ``make test`` inside ``make test``
  would recurse); checked like ``aws``. The serve fixture runs what ``make serve`` runs.
- ``stack``: the stack deployed into LocalStack (``make stack``); tests/e2e/test_stack.py starts the block that is just
  ``make stack`` and runs the others against it.

Any other tag is an error, and so is a fence with no language or a shell language other than ``bash``/``sh``.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from support import ROOT

TAGS = ("serve", "image", "sam", "aws", "setup", "stack")
DEFAULT_TAG = "serve"
SHELL_LANGUAGES = ("bash", "sh")
# Fences that are not commands: output, payloads, configuration.
OTHER_LANGUAGES = ("text", "json", "yaml", "toml")

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_TAG = re.compile(r"^\s*<!--\s*doc-test:\s*(?P<tag>\S*)\s*-->\s*$")
_TAG_LIKE = re.compile(r"doc-test", re.IGNORECASE)


@dataclass(frozen=True)
class Block:
    """One fenced shell block: ``path`` relative to the repository root, ``line`` of its opening fence (1-based)."""

    path: str
    line: int
    text: str
    tag: str
    language: str

    @property
    def id(self) -> str:
        return f"{self.path}:L{self.line}"


@dataclass(frozen=True)
class Fence:
    path: str
    line: int
    language: str
    text: str
    tag: str | None  # the doc-test comment's tag, None without one


def doc_files() -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def fences(path: Path) -> tuple[list[Fence], list[str]]:
    """Every fenced block of one Markdown file, and the problems found on the way (unclosed fence, stray tag)."""
    rel = path.relative_to(ROOT).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Fence] = []
    problems: list[str] = []
    tagged_lines: set[int] = set()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence = len(match["indent"]), match["fence"]
        language = match["info"].strip().split(" ")[0].lower() if match["info"].strip() else ""
        closing = re.compile(rf"^ *{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j].lstrip())
            j += 1
        if j == len(lines):
            problems.append(f"{rel}:L{i + 1}: fence never closed")
        tag = None
        if i > 0:
            previous = _TAG.match(lines[i - 1])
            if previous:
                tag = previous["tag"]
                tagged_lines.add(i)
        found.append(Fence(rel, i + 1, language, "\n".join(body) + "\n", tag))
        i = j + 1
    for number, line in enumerate(lines, start=1):
        if _TAG_LIKE.search(line) and number not in tagged_lines and not _inside(found, number):
            problems.append(f"{rel}:L{number}: a doc-test comment must be the line just before a fence: {line.strip()}")
    return found, problems


def _inside(found: list[Fence], number: int) -> bool:
    return any(f.line <= number <= f.line + f.text.count("\n") + 1 for f in found)


def all_blocks() -> list[Block]:
    """Every bash/sh block of the documents, in document order, with its tag (``serve`` when untagged)."""
    out = []
    for path in doc_files():
        for f in fences(path)[0]:
            if f.language in SHELL_LANGUAGES:
                out.append(Block(f.path, f.line, f.text, f.tag or DEFAULT_TAG, f.language))
    return out


def blocks(tag: str) -> list[Block]:
    """The bash/sh blocks with this tag (one of ``TAGS``)."""
    if tag not in TAGS:
        raise ValueError(f"unknown doc-test tag {tag!r}; known: {', '.join(TAGS)}")
    return [b for b in all_blocks() if b.tag == tag]


def problems() -> list[str]:
    """Everything wrong with the documents' fences: unknown tags, tags on non-shell blocks, unlabelled fences."""
    out = []
    for path in doc_files():
        found, found_problems = fences(path)
        out += found_problems
        for f in found:
            where = f"{f.path}:L{f.line}"
            if f.language in SHELL_LANGUAGES:
                if f.tag is not None and f.tag not in TAGS:
                    out.append(f"{where}: unknown doc-test tag {f.tag!r} (known: {', '.join(TAGS)})")
            elif f.language in OTHER_LANGUAGES:
                if f.tag is not None:
                    out.append(f"{where}: a doc-test tag on a {f.language} block (only bash/sh blocks are tested)")
            else:
                out.append(
                    f"{where}: fence language {f.language or '(none)'!r}: use bash or sh for commands, "
                    f"or one of {', '.join(OTHER_LANGUAGES)}"
                )
    return out


# ------------------------------------------------------------------------------------------------ static checks

# Paths commands make rather than the repository holding them.
GENERATED = (
    ".venv",
    ".venv-runtime",
    ".venv-tools",
    ".venv-localstack",
    "layer/model",
    "layer/checkpoints",
    ".aws-sam",
    "artifacts",
)
_SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", "|&", ";;", "{", "}"}
_MAKE_OPTIONS_WITH_VALUE = {"-C", "-f", "-j", "-o", "-W", "-I", "--directory", "--file", "--jobs"}


def commands(text: str) -> list[list[str]]:
    """The simple commands of a block as word lists (continuations joined, comments and heredoc bodies dropped)."""
    joined = re.sub(r"\\\n", " ", text)
    out: list[list[str]] = []
    heredoc_end: str | None = None
    for line in joined.splitlines():
        if heredoc_end is not None:
            if line.strip() == heredoc_end:
                heredoc_end = None
            continue
        heredoc = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if heredoc:
            heredoc_end = heredoc.group(1)
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            words = list(lexer)
        except ValueError:  # an unbalanced quote: bash -n reports it
            continue
        current: list[str] = []
        for word in words:
            if word in _SEPARATORS:
                if current:
                    out.append(current)
                current = []
            else:
                current.append(word)
        if current:
            out.append(current)
    return out


def _strip_assignments(words: list[str]) -> list[str]:
    i = 0
    while i < len(words) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[i]):
        i += 1
    rest = words[i:]
    while rest and rest[0] in ("env", "time", "exec", "then", "do", "else", "!"):
        rest = rest[1:]
    return rest


def make_targets() -> set[str]:
    """The explicit targets the Makefile defines."""
    names: set[str] = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-/$() ]+?)\s*:(?!=)", line)
        if match and not line.startswith("\t"):
            names.update(n for n in match.group(1).split() if "$" not in n and not n.startswith("."))
    return names


def _top_level() -> set[str]:
    return {p.name for p in ROOT.iterdir() if p.name != ".git"} | {n.split("/")[0] for n in GENERATED}


def repo_paths(word: str) -> list[str]:
    """The repository paths a word names: itself, or the value of ``--opt=value`` / ``VAR=value`` / ``@file``."""
    candidates = [word]
    if "=" in word:
        candidates.append(word.split("=", 1)[1])
    if "@" in word:
        candidates.append(word.split("@", 1)[1])
    top = _top_level()
    out = []
    for c in candidates:
        c = c.removeprefix("./")
        nested = "/" in c and not re.match(r"^[a-z]+://", c) and "$" not in c
        root_file = c in top and "." in c  # files at the root: samconfig.toml, requirements.txt
        if (nested and c.split("/")[0] in top) or root_file:
            out.append(c)
    return out


def static_problems(block: Block) -> list[str]:
    """What does not exist among the make targets, scripts, modules and repository paths a block names."""
    problems: list[str] = []
    targets = make_targets()
    for words in commands(block.text):
        words = _strip_assignments(words)
        if not words:
            continue
        command, args = words[0], words[1:]
        if command in ("python", "python3", "pip", "pip3") and args[:2] != ["-m", "venv"]:
            problems.append(f"bare {command!r}: use .venv/bin/{command.rstrip('3')}")
        if command == "make":
            skip = False
            for arg in args:
                if skip:
                    skip = False
                elif arg in _MAKE_OPTIONS_WITH_VALUE:
                    skip = True
                elif not arg.startswith("-") and "=" not in arg and arg not in targets:
                    problems.append(f"make target {arg!r} is not in the Makefile")
        if command.endswith("/python") and "-m" in args:
            module = args[args.index("-m") + 1] if args.index("-m") + 1 < len(args) else ""
            if module and module.split(".")[0] in {"handler", "bake", "localdev", "scripts", "tests"}:
                base = ROOT / Path(*module.split("."))
                if not (base.with_suffix(".py").is_file() or (base / "__main__.py").is_file()):
                    problems.append(f"module {module!r} is not in the repository")
        for word in words:
            for path in repo_paths(word):
                if any(path == g or path.startswith(g + "/") for g in GENERATED):
                    continue
                if not (ROOT / path).exists():
                    problems.append(f"{path!r} is not in the repository")
    return problems


# ------------------------------------------------------------------------------------------------ what a block wrote


def block_files(folder: Path) -> dict[Path, int]:
    """The regular files in a block's directory that a block writes for its reader, with their mtimes: links to the
    checkout are not followed, and hidden directories are left out (what `make setup` or a build inside the block
    installs there, `.venv`, `.venv-tools`, `.aws-sam`, `.tools`: their PNGs are packages' files, not outputs)."""
    found = {}
    for dirpath, dirnames, names in os.walk(folder):
        dirnames[:] = [name for name in dirnames if not name.startswith(".")]
        for name in names:
            path = Path(dirpath) / name
            if not path.is_symlink():
                found[path] = path.stat().st_mtime_ns
    return found
