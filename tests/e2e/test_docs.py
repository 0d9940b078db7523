"""Every command the documents show runs, so none can rot (tests/support/doc_commands.py finds and tags them).

``serve`` blocks run with bash (``set -euo pipefail``) against a real ``make serve`` stack: scripts/serve_local.py
as a subprocess on free ports (``PORT``, ``S3_PORT``), serving the suite's baked test model. Each block runs in a
directory of its own holding real photos (one over 1 MB, one named ``café terrace.jpg``) and links to the checkout,
with the documents' URLs (http://127.0.0.1:8000 for the API, http://127.0.0.1:9000 for the S3 emulator) pointed at
the stack's ports. A block must exit 0, and every PNG it writes must be a valid PNG of its photo's size.
``aws``, ``setup``, ``image`` and ``stack`` blocks are checked statically here (``bash -n``; the make targets,
scripts, modules and repository paths they name exist); tests/e2e/test_image.py runs the ``image`` blocks,
tests/e2e/test_stack.py the ``stack`` blocks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from support import doc_commands
from support.doc_commands import ROOT, Block
from support.serve_stack import ServeStack
from support.serve_stack import serve_stack as serve_stack_of

DOC_API = "http://127.0.0.1:8000"
DOC_S3 = "http://127.0.0.1:9000"
# Photos the serve blocks use: name -> size. photo.jpg is over 1 MB (its base64 would not fit in one argument).
PHOTOS = {
    "photo.jpg": (2400, 1800),
    "café terrace.jpg": (1024, 768),
    "photo1.jpg": (640, 480),
    "photo2.png": (800, 600),
}
# What a block's directory must not link from the checkout (outputs the blocks write go to the block's directory).
NOT_LINKED = {".git", "out", "artifacts", ".pytest_cache", ".ruff_cache", "layer", *PHOTOS}
BLOCK_TIMEOUT = 300

ALL = doc_commands.all_blocks()
SERVE = [b for b in ALL if b.tag == "serve"]


# ------------------------------------------------------------------------------------------------ fixtures


def photo_like(width: int, height: int, seed: int) -> Image.Image:
    """A photo-like scene: sky and ground gradients, a few shaded shapes, sensor noise, a slight blur."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = height * rng.uniform(0.35, 0.55)
    sky = np.stack([110 + 80 * yy / horizon, 150 + 60 * yy / horizon, 230 - 20 * yy / horizon], -1)
    ground = np.stack([90 + 60 * (yy - horizon) / height, 80 + 40 * (yy - horizon) / height, 50 + 0 * yy], -1)
    rgb = np.where((yy < horizon)[..., None], sky, ground) + 8 * np.sin(xx / width * 9)[..., None]
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        w, h = rng.uniform(0.05, 0.3) * width, rng.uniform(0.05, 0.4) * height
        x, y = rng.uniform(0, width - w), rng.uniform(horizon * 0.8, height - h)
        colour = tuple(int(c) for c in rng.integers(20, 235, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x, y, x + w, y + h], fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    noisy = np.asarray(image, np.float32) + rng.normal(0, 9, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for seed, (name, (width, height)) in enumerate(PHOTOS.items()):
        image = photo_like(width, height, seed)
        if name.endswith(".png"):
            image.save(folder / name, format="PNG")
        else:
            image.save(folder / name, format="JPEG", quality=95)
    assert (folder / "photo.jpg").stat().st_size >= 1_000_000, "photo.jpg must be over 1 MB"
    return folder


def clean_env() -> dict[str, str]:
    """The environment of a shell on a newcomer's machine: none of this session's AWS or function settings."""
    settings = {"MODEL_DIR", "OUTPUT_BUCKET", "OUTPUT_PREFIX", "ALLOWED_INPUT_BUCKETS", "WRITE_RAW_DEPTH", "PORT"}
    drop = settings | {"S3_PORT", "BAKE_CHECKPOINT", "BAKE_SHA256", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "OUT", "IMAGE"}
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in drop}


@pytest.fixture(scope="session")
def serve_stack(baked_model_dir, tmp_path_factory) -> Iterator[ServeStack]:
    """What `make serve` runs (scripts/serve_local.py), on free ports, serving the suite's baked model."""
    with serve_stack_of(baked_model_dir, tmp_path_factory.mktemp("serve") / "serve.log", clean_env()) as stack:
        yield stack


def block_dir(base: Path, photos: Path, model_dir: Path) -> Path:
    """A directory that looks like the checkout (links to it, layer/model = the test model) holding the photos."""
    base.mkdir(parents=True, exist_ok=True)
    for entry in ROOT.iterdir():
        if entry.name not in NOT_LINKED:
            (base / entry.name).symlink_to(entry)
    layer = base / "layer"
    layer.mkdir()
    for entry in (ROOT / "layer").iterdir():
        if entry.name != "model":
            (layer / entry.name).symlink_to(entry)
    (layer / "model").symlink_to(model_dir)
    for photo in photos.iterdir():
        shutil.copy2(photo, base / photo.name)
    return base


# ------------------------------------------------------------------------------------------------ documents


def test_documents_have_no_fence_problems():
    assert doc_commands.problems() == []


def test_unknown_tags_are_refused():
    with pytest.raises(ValueError, match="unknown doc-test tag"):
        doc_commands.blocks("docker")


def test_every_tag_is_used_and_the_front_door_is_the_two_commands():
    assert {b.tag for b in ALL} == set(doc_commands.TAGS)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    first = next(b for b in ALL if b.path == "README.md")
    assert [w[:2] for w in doc_commands.commands(first.text)] == [["make", "serve"], ["make", "test"]]
    assert readme.index("docs/screenshot.png") < readme.index("```")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    headings, in_fence = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.match(r"^ *(```|~~~)", line):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            headings.append(_slug(line.lstrip("#")))
    return set(headings)


def test_links_between_documents_resolve_and_every_doc_is_linked_from_the_readme():
    linked_from_readme = set()
    for doc in doc_commands.doc_files():
        text = doc.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            path = (doc.parent / file).resolve() if file else doc
            assert path.is_relative_to(ROOT) and path.exists(), f"{doc.name}: broken link {target}"
            if anchor and path.suffix == ".md":
                assert anchor in _anchors(path), f"{doc.name}: no heading #{anchor} in {path.name}"
            if doc.name == "README.md":
                linked_from_readme.add(path)
    assert set(doc_commands.doc_files()[1:]) <= linked_from_readme


def test_documents_describe_only_the_repository():
    for doc in doc_commands.doc_files():
        text = doc.read_text(encoding="utf-8")
        for outside in ("MIDAS.md", "../shared", "/work/"):
            assert outside not in text, f"{doc.name} mentions {outside}"


# ------------------------------------------------------------------------------------------------ static checks


@pytest.mark.parametrize("block", ALL, ids=[b.id for b in ALL])
def test_block_is_valid_bash_naming_only_what_exists(block: Block):
    syntax = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
    assert syntax.returncode == 0, f"{block.id}: {syntax.stderr}"
    assert doc_commands.static_problems(block) == [], block.id


# ------------------------------------------------------------------------------------------------ serve blocks


def _source_photo(png: Path, block: Block) -> str | None:
    """The photo a written PNG renders: the longest photo stem its name starts with, else the block's only photo."""
    stems = sorted((name for name in PHOTOS if png.name.startswith(Path(name).stem)), key=len, reverse=True)
    if stems:
        return stems[0]
    named = [name for name in PHOTOS if name in block.text]
    return named[0] if len(named) == 1 else None


def _named_outputs(block: Block) -> list[str]:
    """Files a block writes with ``-o FILE`` or ``> FILE``."""
    out = []
    for words in doc_commands.commands(block.text):
        flags = ("-o", ">") if words[:1] == ["aws"] else ("-o", ">", "--output")  # aws --output names a format
        for flag, value in zip(words, words[1:], strict=False):
            if flag in flags:
                out.append(value)
    return out


def rewrite(text: str, stack: ServeStack) -> str:
    text = text.replace(DOC_API, stack.api).replace(DOC_S3, stack.s3)
    for leftover in ("127.0.0.1:8000", "127.0.0.1:9000", "localhost:8000", "localhost:9000"):
        assert leftover not in text, f"the stack's URLs are written {DOC_API}/… and {DOC_S3}/…"
    return text


@pytest.mark.parametrize("block", SERVE, ids=[b.id for b in SERVE])
def test_serve_block_runs(block: Block, serve_stack: ServeStack, photos: Path, tmp_path: Path):
    work = block_dir(tmp_path / "work", photos, serve_stack.model_dir)
    env = clean_env() | {"MODEL_DIR": str(serve_stack.model_dir), "S3_PORT": str(serve_stack.s3_port)}
    env["PORT"] = str(serve_stack.api_port)
    before = doc_commands.block_files(work)
    script = "set -euo pipefail\n" + rewrite(block.text, serve_stack)
    try:
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.id} ran over {BLOCK_TIMEOUT} s:\n{exc.stdout}\n{exc.stderr}\n{serve_stack.log_tail()}")
    report = f"{block.id}: exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, report + f"\n--- make serve log\n{serve_stack.log_tail()}"

    for name in _named_outputs(block):
        assert (work / name).is_file(), f"{block.id}: {name} was not written\n{report}"
    after = doc_commands.block_files(work)
    written = [p for p, mtime in after.items() if before.get(p) != mtime and p.suffix.lower() == ".png"]
    for png in written:
        with Image.open(png) as image:
            assert image.format == "PNG", f"{block.id}: {png.name} is {image.format}"
            image.load()
            source = _source_photo(png.relative_to(work), block)
            if source is not None:
                assert image.size == PHOTOS[source], (
                    f"{block.id}: {png.name} is {image.size}, {source} {PHOTOS[source]}"
                )
