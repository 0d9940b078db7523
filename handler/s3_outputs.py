"""Where the function writes in S3: output keys, the recursion guard, all-or-nothing writes of a result's files, the
record (in the heatmap's metadata) of what a result was made from, which makes re-processing an object
idempotent, and the failure records of uploads that can never succeed as they are (``<prefix>failures/``)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from datetime import UTC, datetime
from urllib.parse import quote

from handler.config import Settings
from handler.errors import InvalidRequest
from handler.point_formats import FORMATS as POINT_CLOUD_FORMATS
from handler.s3_store import S3Store

# rendering → (key suffix, content type)
RENDERINGS = {
    "heatmap": (".png", "image/png"),
    "depth_png16": (".depth.png", "image/png"),
    "pfm": (".pfm", "application/x-pfm"),
    **POINT_CLOUD_FORMATS,  # "ply", "glb"
}


def output_key(prefix: str, stem: str, rendering: str) -> str:
    """``<prefix><stem><suffix>``, the key of every object the function writes. An upload's stem is its whole key,
    extension included (``uploads/a.jpg`` → ``depth/uploads/a.jpg.png``), so that ``uploads/a.jpg`` and
    ``uploads/a.png`` get outputs of their own; an API result's is ``api/<digest of the image>-<colormap>...``."""
    return f"{prefix}{stem}{RENDERINGS[rendering][0]}"


def file_name(name: str, rendering: str) -> str:
    """A rendering's local file name: the input's whole file name plus the rendering's suffix (``photo.jpg`` →
    ``photo.jpg.png``), the last part of an upload's output key, so that the CLI, `make upload` and `make invoke-s3`
    name the same file alike."""
    return output_key("", name, rendering)


def has_parent_segments(key: str) -> bool:
    """True for a key with a ``..`` segment (``a/../b``, ``../b``, ``a/..``): S3 takes it as a name, but an output
    key or local path derived from it could climb out of its prefix, so no entry accepts one. Only the whole segment
    counts (``a..b`` and ``...`` are names); the key is the one decoded from the event, so a literal ``%2e%2e`` is a
    name too."""
    return ".." in key.split("/")


def is_own_output(settings: Settings, bucket: str, key: str) -> bool:
    """True for objects this function writes (guards against recursion even if input and output buckets coincide)."""
    return bucket == settings.output_bucket and key.startswith(settings.output_prefix)


# S3 caps an object's user metadata at 2 KB and a key at 1024 bytes (UTF-8).
MAX_METADATA_VALUE = 400
MAX_KEY_BYTES = 1024


def s3_metadata(**values: str) -> dict[str, str]:
    """User metadata must be ASCII (non-ASCII is percent-encoded) and fit S3's 2 KB: a value that would not
    (a very long key or upload file name) is recorded as ``sha256:<hex>`` of the original instead."""
    metadata = {}
    for name, value in values.items():
        encoded = quote(str(value), safe="/ -_.:@+=,")
        if len(encoded) > MAX_METADATA_VALUE:
            encoded = "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()
        metadata[name.replace("_", "-")] = encoded
    return metadata


def upload_renderings(settings: Settings) -> tuple[str, ...]:
    """What the upload trigger writes of each upload: the heatmap, and the PFM and point cloud when enabled."""
    raw = ("pfm",) if settings.write_raw_depth else ()
    cloud = (settings.write_point_cloud,) if settings.write_point_cloud != "none" else ()
    return ("heatmap", *raw, *cloud)


def recipe(settings: Settings, renderings: list[str] | tuple[str, ...]) -> str:
    """What else shapes an upload's outputs besides the source and the model: the colormap and the renderings."""
    return f"{settings.default_colormap};{','.join(sorted(renderings))}"


def recorded_source_etag(store: S3Store, settings: Settings, stem: str, expected: dict[str, str]) -> str | None:
    """The source ETag the heatmap of ``stem`` was made from, when it exists and its metadata has every ``expected``
    value (model sha256, recipe); else None. One HEAD. The heatmap is written last, so its presence marks a complete
    result."""
    assert settings.output_bucket, "caller checks that an output bucket is configured"
    head = store.head(settings.output_bucket, output_key(settings.output_prefix, stem, "heatmap"))
    if head is None or any(head["metadata"].get(name) != value for name, value in expected.items()):
        return None
    return head["metadata"].get("source-etag") or None


def write_outputs(
    store: S3Store, settings: Settings, stem: str, *, files: dict[str, bytes], metadata: dict[str, str]
) -> dict[str, str]:
    """Put every rendering under ``stem``, the heatmap last (it marks a complete result: ``recorded_source_etag``);
    if one fails, delete the ones already written (no partial result). Returns rendering → key."""
    assert settings.output_bucket, "caller checks that an output bucket is configured"
    files = dict(sorted(files.items(), key=lambda item: item[0] == "heatmap"))
    keys = {rendering: output_key(settings.output_prefix, stem, rendering) for rendering in files}
    longest = max(len(key.encode()) for key in keys.values())
    if longest > MAX_KEY_BYTES:
        raise InvalidRequest(f"the output key would be {longest} bytes; S3 allows {MAX_KEY_BYTES}")
    written: dict[str, str] = {}
    try:
        for rendering, body in files.items():
            store.put(settings.output_bucket, keys[rendering], body, RENDERINGS[rendering][1], metadata)
            written[rendering] = keys[rendering]
    except Exception:
        for key in written.values():
            with contextlib.suppress(Exception):  # best effort: the original error is what matters
                store.delete(settings.output_bucket, key)
        raise
    return written


# Under the output prefix, so that the role's write scope and the recursion guard cover them; ".json" is no
# rendering's suffix, so a failure record never shares a key with an output.
FAILURES = "failures/"
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's rule: no "/", never ".."


def failure_key(settings: Settings, bucket: str, key: str) -> str:
    """``<prefix>failures/<bucket>/<key>.json``; a key too long for that or with ``..`` segments, and a bucket that is
    no bucket name (a hand-made event's), are named by their sha256 instead."""
    folder = bucket if _BUCKET_NAME.fullmatch(bucket) else "sha256-" + hashlib.sha256(bucket.encode()).hexdigest()
    where = f"{settings.output_prefix}{FAILURES}{folder}/"
    named = f"{where}{key}.json"
    if len(named.encode()) <= MAX_KEY_BYTES and not has_parent_segments(key):
        return named
    return f"{where}sha256-{hashlib.sha256(key.encode()).hexdigest()}.json"


def write_failure(
    store: S3Store, settings: Settings, *, bucket: str, key: str, etag: str | None, error: str, reason: str
) -> str:
    """Record that ``bucket/key`` failed for good (its bytes or its key are at fault); returns the record's key.

    The record holds everything the event held (bucket, key, ETag) and why, so that the event itself may be
    dropped: a later upload of the same key that fails again overwrites it."""
    assert settings.output_bucket, "caller checks that an output bucket is configured"
    record = {
        "bucket": bucket,
        "key": key,
        "etag": etag,
        "error": error,
        "reason": reason,
        "failed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    marker = failure_key(settings, bucket, key)
    body = json.dumps(record, ensure_ascii=False, indent=1).encode()
    store.put(settings.output_bucket, marker, body, "application/json", s3_metadata(source_bucket=bucket))
    return marker
