"""Where the function writes: output keys, the recursion guard, and all-or-nothing writes of a result's files."""

from __future__ import annotations

import contextlib
import posixpath
from urllib.parse import quote

from handler.config import Settings
from handler.s3io import S3Store

# rendering kind → (key suffix, content type)
KINDS = {
    "heatmap": (".png", "image/png"),
    "depth_png16": (".depth.png", "image/png"),
    "pfm": (".pfm", "application/x-pfm"),
}


def output_key(settings: Settings, stem: str, kind: str) -> str:
    """``<output prefix><stem><suffix>``, e.g. ``depth/uploads/photo.png`` for ``uploads/photo.jpg``."""
    return f"{settings.output_prefix}{stem}{KINDS[kind][0]}"


def key_stem(key: str) -> str:
    """The key without its extension: ``uploads/a b.jpeg`` → ``uploads/a b``."""
    root, _ = posixpath.splitext(key)
    return root


def is_own_output(settings: Settings, bucket: str, key: str) -> bool:
    """True for objects this function writes (guards against recursion even if input and output buckets coincide)."""
    return bucket == settings.output_bucket and key.startswith(settings.output_prefix)


def s3_metadata(**values: str) -> dict[str, str]:
    """User metadata must be ASCII: non-ASCII values (unicode keys) are percent-encoded."""
    return {name.replace("_", "-"): quote(str(value), safe="/ -_.:@+=,") for name, value in values.items()}


def write_outputs(
    store: S3Store, settings: Settings, stem: str, files: dict[str, bytes], metadata: dict[str, str]
) -> dict[str, str]:
    """Put every rendering under ``stem``; if one fails, delete the ones already written (no partial result)."""
    assert settings.output_bucket, "caller checks that an output bucket is configured"
    written: dict[str, str] = {}
    try:
        for kind, body in files.items():
            key = output_key(settings, stem, kind)
            store.put(settings.output_bucket, key, body, KINDS[kind][1], metadata)
            written[kind] = key
    except Exception:
        for key in written.values():
            with contextlib.suppress(Exception):  # best effort: the original error is what matters
                store.delete(settings.output_bucket, key)
        raise
    return written
