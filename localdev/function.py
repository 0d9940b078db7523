"""The function as Lambda runs it, locally: the context object it is called with and the environment it runs in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LambdaContext:
    """The fields of the Lambda context object the function reads (Powertools and Mangum read them too)."""

    function_name: str = "midas-depth-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:midas-depth-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/midas-depth-local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def function_env(
    *, output_bucket: str, input_buckets: str, model_dir: str | Path | None = None, **more: str
) -> dict[str, str]:
    """The environment the SAM template gives the function (its variable names), pointed at local buckets:
    ``input_buckets`` is ALLOWED_INPUT_BUCKETS (comma-separated); ``model_dir`` is MODEL_DIR where the model is not
    at the image's path; ``more`` adds or overrides variables by name (``WRITE_RAW_DEPTH="true"``)."""
    env = {"OUTPUT_BUCKET": output_bucket, "ALLOWED_INPUT_BUCKETS": input_buckets, "UPLOAD_PREFIX": "uploads/"}
    if model_dir is not None:
        env["MODEL_DIR"] = str(model_dir)
    return env | more
