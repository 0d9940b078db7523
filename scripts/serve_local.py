"""`make serve`: the API on 127.0.0.1 with an embedded S3 emulator (moto server) and input/output buckets.

Bakes layer/model/ first if there is none (official URL, or BAKE_CHECKPOINT=path / BAKE_SHA256=hex).
Environment: PORT (default 8000), S3_PORT (default 0 = any free port), MODEL_DIR (default layer/model).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INPUT_BUCKET = "midas-input"
OUTPUT_BUCKET = "midas-output"


def ensure_model(model_dir: Path) -> None:
    if (model_dir / "manifest.json").is_file():
        return
    from scripts import bake_weights

    args = ["--output", str(model_dir)]
    if os.environ.get("BAKE_CHECKPOINT"):
        args += ["--checkpoint", os.environ["BAKE_CHECKPOINT"]]
    if os.environ.get("BAKE_SHA256"):
        args += ["--sha256", os.environ["BAKE_SHA256"]]
    print(f"no baked model in {model_dir}: baking it first", file=sys.stderr)
    if bake_weights.main(args) != 0:
        sys.exit(1)


def start_s3() -> str:
    import boto3
    from moto.server import ThreadedMotoServer

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(os.environ.get("S3_PORT", "0")), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    s3 = boto3.client("s3")
    for bucket in (INPUT_BUCKET, OUTPUT_BUCKET):
        s3.create_bucket(Bucket=bucket)
    return endpoint


def main() -> None:
    import uvicorn

    model_dir = Path(os.environ.get("MODEL_DIR", ROOT / "layer" / "model"))
    ensure_model(model_dir)
    endpoint = start_s3()
    os.environ.update(MODEL_DIR=str(model_dir), OUTPUT_BUCKET=OUTPUT_BUCKET, ALLOWED_INPUT_BUCKETS=INPUT_BUCKET)
    port = int(os.environ.get("PORT", "8000"))
    url = f"http://127.0.0.1:{port}"
    print(
        f"\nMiDaS depth API: {url}/   (docs: {url}/docs)\n"
        f"S3 emulator:     {endpoint}  buckets {INPUT_BUCKET} (input), {OUTPUT_BUCKET} (output)\n"
        f"try:  curl -F image=@photo.jpg {url}/predict\n"
        f"      curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg' {url}/depth -o depth.png\n",
        flush=True,
    )
    uvicorn.run("handler.entry:app", host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
