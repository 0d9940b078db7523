"""Write an S3 Batch Operations CSV manifest of the images under a prefix: one ``bucket,key`` line per object.

    python scripts/make_manifest.py --bucket B --prefix uploads/ --out manifest.csv

Keys are URL-encoded, as Batch Operations requires of CSV manifests (the function decodes them). Only keys with an
image extension the function reads (any case) are listed, so the job's report has no "not an image" lines. The AWS
credentials, region and endpoint are boto3's (``AWS_ENDPOINT_URL`` for an emulator).
"""

from __future__ import annotations

import argparse
import csv
import posixpath
import sys
from pathlib import Path
from urllib.parse import quote

from handler.imaging import IMAGE_EXTENSIONS


def image_keys(client, bucket: str, prefix: str):
    """Every key under ``prefix`` with an image extension, in S3's (lexicographic) order."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if posixpath.splitext(obj["Key"])[1].lower() in IMAGE_EXTENSIONS:
                yield obj["Key"]


def write_manifest(client, bucket: str, prefix: str, out: Path) -> int:
    """Write the manifest; returns how many objects it lists."""
    count = 0
    with out.open("w", newline="", encoding="ascii") as f:
        writer = csv.writer(f, lineterminator="\n")
        for key in image_keys(client, bucket, prefix):
            writer.writerow([bucket, quote(key, safe="/")])
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket", required=True, help="the input bucket")
    parser.add_argument("--prefix", default="uploads/", help="key prefix to list (default: uploads/)")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    args = parser.parse_args(argv)
    import boto3

    count = write_manifest(boto3.client("s3"), args.bucket, args.prefix, args.out)
    print(f"{args.out}: {count} objects of s3://{args.bucket}/{args.prefix}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
