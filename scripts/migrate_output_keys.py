"""Rename the S3 trigger's outputs written under the older naming rule to the current one.

Outputs used to be named by the upload's key without its extension (``uploads/photo.jpg`` →
``depth/uploads/photo.png``), so ``photo.jpg`` and ``photo.png`` overwrote each other's. They are now named by
the whole key (``depth/uploads/photo.jpg.png``). Every output records its upload's key in the ``source-key``
metadata, which this script reads to move each older output to its current key (copy, then delete). Objects
already under their current key, API results (``<prefix>api/``) and outputs whose source key was too long to
record (``sha256:...``) are left as they are and reported.

    python scripts/migrate_output_keys.py --bucket OUTPUT_BUCKET [--prefix depth/] [--dry-run]

S3 endpoint, region and credentials come from the environment (``AWS_ENDPOINT_URL`` for an emulator).
"""

from __future__ import annotations

import argparse
from urllib.parse import unquote

from handler.s3_outputs import RENDERINGS, output_key
from handler.s3_store import S3Store

# suffix → rendering, longest first: ".depth.png" before ".png"
SUFFIXES = dict(sorted(((suffix, name) for name, (suffix, _) in RENDERINGS.items()), key=lambda s: -len(s[0])))


def current_key(prefix: str, old_key: str, source_key: str) -> str | None:
    """The key the current rule gives the output ``old_key`` of upload ``source_key``; None if not an output."""
    suffix = next((s for s in SUFFIXES if old_key.endswith(s)), None)
    return None if suffix is None else output_key(prefix, source_key, SUFFIXES[suffix])


def migrate(store: S3Store, bucket: str, prefix: str, dry_run: bool) -> dict[str, int]:
    """Move every older output under ``prefix`` of ``bucket`` to its current key (or delete it where the current
    key already holds a newer output); prints one line per object moved, deleted or left."""
    s3 = store.client
    counts = {"moved": 0, "current": 0, "left": 0}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.startswith(f"{prefix}api/"):
                continue
            recorded = (store.head(bucket, key) or {"metadata": {}})["metadata"].get("source-key", "")
            target = current_key(prefix, key, unquote(recorded)) if recorded else None
            if target is None or recorded.startswith("sha256:"):
                print(f"left {key}: no source key recorded")
                counts["left"] += 1
            elif target == key:
                counts["current"] += 1
            else:
                # the upload ran again since: keep that newer output
                superseded = store.head(bucket, target) is not None
                action = "delete superseded" if superseded else "move"
                print(f"{'would ' if dry_run else ''}{action} {key}" + ("" if superseded else f" -> {target}"))
                if not dry_run:
                    if not superseded:
                        s3.copy_object(
                            Bucket=bucket,
                            Key=target,
                            CopySource={"Bucket": bucket, "Key": key},
                            MetadataDirective="COPY",
                        )
                    s3.delete_object(Bucket=bucket, Key=key)
                counts["moved"] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket", required=True, help="the output bucket")
    parser.add_argument("--prefix", default="depth/", help="the function's OUTPUT_PREFIX (default depth/)")
    parser.add_argument("--dry-run", action="store_true", help="say what would move; change nothing")
    args = parser.parse_args(argv)
    counts = migrate(S3Store(), args.bucket, args.prefix, args.dry_run)
    verb = "would rename" if args.dry_run else "renamed"
    print(f"{verb} {counts['moved']}, already current {counts['current']}, left {counts['left']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
