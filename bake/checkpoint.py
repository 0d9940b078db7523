"""The checkpoint: where it comes from (a local file or one plain HTTPS download, never torch.hub), its digest, and
its strict load into MidasNet_small (:mod:`bake.midas_net`).

The manifest records where the checkpoint came from: the URL, or a local file's name only (never a path on the
build machine). A failed download names the ways forward without network access: a local copy of the checkpoint,
or the random test checkpoint for a demo.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from bake import BakeError
from handler.contract import TEST_WEIGHTS_KEY, sha256_file

_CHUNK = 1 << 20
# Appended to every failed download: what to do without network access (one line, like every bake error).
OFFLINE_HINT = (
    "without network access, bake a local copy of the checkpoint: --checkpoint PATH "
    "(make bake BAKE_CHECKPOINT=PATH); for an offline demo whose depth is meaningless, make the random test "
    "checkpoint and bake that: make test-checkpoint (writes /tmp/midas_test.pt), then "
    "make bake BAKE_CHECKPOINT=/tmp/midas_test.pt"
)


def _progress(done: int, total: int | None, started: float, last: list[float]) -> None:
    now = time.monotonic()
    if now - last[0] < 0.5 and (total is None or done < total):
        return
    last[0] = now
    rate = done / max(now - started, 1e-6) / 1e6
    if total:
        pct = 100 * done / total
        bar = "#" * int(pct // 4)
        msg = f"\r  [{bar:<25}] {pct:5.1f}%  {done / 1e6:6.1f}/{total / 1e6:.1f} MB  {rate:5.1f} MB/s"
    else:
        msg = f"\r  {done / 1e6:6.1f} MB  {rate:5.1f} MB/s"
    end = "\n" if total and done >= total else ""
    print(msg, end=end, file=sys.stderr, flush=True)


def download(url: str, dest: Path, timeout: float = 30.0) -> Path:
    """Stream ``url`` to ``dest`` through a temp file in the same directory; nothing is left on failure."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BakeError(f"cannot create download directory {dest.parent}: {exc.strerror}") from None
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "midas-lambda-bake/1"})
    except ValueError as exc:
        raise BakeError(f"not a download URL: {url} ({exc})") from None
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    last, finished = [0.0], False  # when the progress bar was last drawn (0: not yet); whether dest is in place
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            print(f"downloading {url}", file=sys.stderr)
            done, started = 0, time.monotonic()
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                done += len(chunk)
                _progress(done, total, started, last)
            if total is not None and done != total:
                raise BakeError(f"download of {url} is incomplete: got {done} of {total} bytes; {OFFLINE_HINT}")
        tmp.replace(dest)
        finished = True
        return dest
    except urllib.error.HTTPError as exc:
        raise BakeError(f"download of {url} failed: HTTP {exc.code} {exc.reason}; {OFFLINE_HINT}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise BakeError(f"download of {url} failed: {reason}; {OFFLINE_HINT}") from None
    finally:
        if last[0] and not finished:
            print(file=sys.stderr)  # end the half-drawn progress bar: the error gets a line of its own
        tmp.unlink(missing_ok=True)


def resolve_checkpoint(checkpoint: Path | None, url: str, download_dir: Path) -> tuple[Path, str]:
    """Return (local checkpoint path, source string for the manifest: the URL, or the local file's name)."""
    if checkpoint is not None:
        if not checkpoint.is_file():
            raise BakeError(f"checkpoint not found: {checkpoint}")
        return checkpoint, recorded_source(str(checkpoint))
    dest = download_dir / Path(urllib.request.urlparse(url).path).name
    if dest.is_file():
        print(f"using previously downloaded {dest}", file=sys.stderr)
        return dest, url
    return download(url, dest), url


def recorded_source(source: str) -> str:
    """What the manifest records: a URL as given, a local path by its file name only. The path is the build
    machine's (a home directory, a CI workspace): meaningless where the model runs, and not the image's business."""
    return source if "://" in source else Path(source).name


def verify_digest(path: Path, expected: str | None) -> str:
    try:
        actual = sha256_file(path)
    except OSError as exc:
        raise BakeError(f"cannot read {path}: {exc.strerror or exc}") from None
    if expected is not None and actual != expected.lower():
        raise BakeError(f"sha256 mismatch for {path}: expected {expected.lower()}, got {actual}")
    return actual


def load_state_dict(path: Path) -> Mapping[str, object]:
    """Load an official-format checkpoint: a plain state dict, or ``{"model": state_dict, ...}``."""
    return load_checkpoint(path)[0]


def load_checkpoint(path: Path) -> tuple[Mapping[str, object], str | None]:
    """The checkpoint's state dict, and what its test-weights marker says (None for real weights): see
    :data:`handler.contract.TEST_WEIGHTS_KEY`, written by bake/random_checkpoint.py."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for garbage (UnpicklingError, RuntimeError, EOFError…)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BakeError(f"not a PyTorch checkpoint: {path} ({first[:160]})") from None
    marker = None
    if isinstance(obj, Mapping):
        obj = dict(obj)
        marker = obj.pop(TEST_WEIGHTS_KEY, None)
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BakeError(f"not a MiDaS checkpoint: {path} holds no state dict of tensors")
    return obj, (str(marker) if marker is not None else None)


def _first(items: list[str], n: int = 5) -> str:
    more = f", … {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def build_model(state_dict: Mapping[str, object]):
    """MidasNet_small with the checkpoint loaded strictly; mismatches listed in one line."""
    from bake.midas_net import MidasNetSmall

    model = MidasNetSmall()
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} keys ({_first(missing)})")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} keys ({_first(unexpected)})")
    if wrong_shape:
        problems.append(f"{len(wrong_shape)} wrong shapes ({_first(wrong_shape, 3)})")
    if problems:
        raise BakeError("checkpoint does not match MidasNet_small: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=True)
    return model.eval()
