"""One settings object, read from the environment once and validated at import (bad config fails the cold start).

A plain pydantic model that fills itself from the environment (pydantic-settings would add its imports to every
cold start for the same few lines): env var names are the upper-case field names, matched in any case;
arguments given to ``Settings(...)`` win over the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from handler.contract import IMAGE_MODEL_DIR, MANIFEST_FILE, MAX_INT8_ABS_REL
from handler.environment import environment, variable
from handler.errors import BucketNotAllowed, DepthError, KeyNotAllowed, ModelUnavailable
from handler.point_formats import FORMATS as POINT_CLOUD_FORMATS

Colormap = Literal["inferno", "magma", "plasma", "viridis", "turbo", "gray"]

# API Gateway caps request payloads at 10 MB and Lambda caps synchronous responses at 6 MB; base64 adds a third.
API_GATEWAY_MAX_REQUEST_BYTES = 10 * 1024 * 1024
LAMBDA_MAX_RESPONSE_BYTES = 6 * 1024 * 1024
# The most points a deployment may allow one request (MAX_REQUEST_POINTS), and what the API's schema says.
MAX_POINTS_CEILING = 2_000_000

# Memory: every accepted image must peak below MEMORY_SHARE of the function's memory (AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
# MB). The pixel cap for an image is what fits in that share once the loaded, warm container (MEMORY_BASELINE_MB) and
# the pipeline's fixed cost (MEMORY_MARGIN_MB: the point budget, Python's and ONNX Runtime's own allocations) are
# taken: (MEMORY_SHARE * memory - baseline - margin) / bytes per pixel. The bytes per pixel are the pipeline's peak
# (decode, depth, every rendering the API or the trigger makes, point cloud at its defaults) per decoded pixel, by the
# mode Pillow decodes the file to, and by format where its decoder holds more than the image; rounded up from
# measurements (docs/hardening.md#memory, scripts/memory_peaks.py).
MEMORY_SHARE = 0.9
MEMORY_BASELINE_MB = 200
MEMORY_MARGIN_MB = 64
PEAK_BYTES_PER_PIXEL: dict[str, float] = {"RGB": 9.0, "L": 9.0, "P": 9.0, "RGBA": 9.0, "I;16": 9.0, "F": 9.0}
# any mode not measured (CMYK, LA, 32-bit integer...): the dearest measured one
OTHER_MODES_BYTES_PER_PIXEL = max(PEAK_BYTES_PER_PIXEL.values())
# WebP: Pillow decodes through libwebp's animation decoder, which holds two canvases of its own besides the frame it
# hands over and Pillow's image
FORMAT_BYTES_PER_PIXEL: dict[str, float] = {"WEBP": 16.0}


def bytes_per_pixel(mode: str, image_format: str | None = None) -> float:
    """The pipeline's peak memory per decoded pixel of an ``image_format`` file that Pillow decodes as ``mode``."""
    by_mode = PEAK_BYTES_PER_PIXEL.get(mode, OTHER_MODES_BYTES_PER_PIXEL)
    return max(by_mode, FORMAT_BYTES_PER_PIXEL.get(image_format or "", 0.0))


def memory_pixel_cap(memory_mb: int, mode: str, image_format: str | None = None) -> int:
    """The most pixels an image (``mode``, ``image_format``: :func:`bytes_per_pixel`) may have for its peak to stay
    below MEMORY_SHARE of ``memory_mb`` (0 when the loaded container alone takes that share)."""
    room_mb = MEMORY_SHARE * memory_mb - MEMORY_BASELINE_MB - MEMORY_MARGIN_MB
    return max(0, int(room_mb * 1024 * 1024 / bytes_per_pixel(mode, image_format)))


MODEL_DIR_ENV = "MODEL_DIR"
DEFAULT_OUTPUT_PREFIX = "depth/"
# Where `make bake` writes it in a checkout: what a local run (the CLI) uses first.
CHECKOUT_MODEL_DIR = Path(__file__).resolve().parents[1] / "layer" / "model"


class Settings(BaseModel):
    """Everything configurable about the function; env var names are the upper-case field names."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    model_dir: str = Field(IMAGE_MODEL_DIR, description="directory with model.onnx + manifest.json")
    output_bucket: str | None = Field(None, description="where heatmaps are written; unset = inline only")
    output_prefix: str = Field(
        DEFAULT_OUTPUT_PREFIX, min_length=1, description="key prefix of every object the function writes"
    )
    allowed_input_buckets: frozenset[str] = Field(
        frozenset(),
        description="input buckets: /depth may read and the S3 trigger accepts (comma-separated); empty = none",
    )
    upload_prefix: str = Field("uploads/", description="key prefix of the uploads the S3 trigger accepts")
    allowed_input_prefixes: frozenset[str] = Field(
        frozenset(), description="key prefixes /depth may read (comma-separated); empty = UPLOAD_PREFIX"
    )
    trust_loopback_callers: bool = Field(
        False,
        description="requests a local server (make serve) takes from 127.0.0.1 or ::1 count as authenticated; "
        "never those that come through Lambda, whose event alone says who called",
    )
    write_raw_depth: bool = Field(False, description="S3 trigger also writes <stem>.pfm (float32 depth)")
    write_point_cloud: Literal[("none", *POINT_CLOUD_FORMATS)] = Field(
        "none", description="S3 trigger also writes the point cloud <stem>.ply or <stem>.glb (docs/point-clouds.md)"
    )
    max_image_bytes: int = Field(25 * 1024 * 1024, gt=0, description="largest encoded image accepted")
    max_image_pixels: int = Field(50_000_000, gt=0, description="largest decoded image (width x height), S3 trigger")
    max_http_image_pixels: int = Field(
        16_777_216, gt=0, description="largest decoded image on the HTTP API (4096 x 4096); capped by max_image_pixels"
    )
    aws_lambda_function_memory_size: int | None = Field(
        None,
        gt=0,
        description="MB of memory the function has (set by Lambda); the pixel caps are lowered to what fits in "
        "90 % of it; unset (a local run) = the configured caps alone",
    )
    upload_function_memory_size: int | None = Field(
        None,
        gt=0,
        description="MB of memory the upload function (the S3 trigger) has, where it is another function (the stack "
        "sets it on the API function): the trigger's pixel caps, which the API names to its callers, are at it; "
        "unset = this function's own memory",
    )
    max_json_bytes: int = Field(API_GATEWAY_MAX_REQUEST_BYTES, gt=0, description="largest JSON request body")
    # What one API request may make and store: without them a small request (a flat 4096 x 4096 PNG compresses to
    # a few tens of KB) could have a 2 000 000-point mesh written, three orders of magnitude more than it sent.
    max_request_points: int = Field(
        500_000, ge=1, le=MAX_POINTS_CEILING, description="largest point budget (geometry.max_points) of a request"
    )
    max_request_faces: int = Field(1_000_000, ge=0, description="most mesh triangles one request may make")
    max_result_bytes: int = Field(
        32 * 1024 * 1024, gt=0, description="most bytes one request's renderings may take (heatmap, depth, cloud)"
    )
    presigned_url_ttl: int = Field(3600, ge=1, le=7 * 24 * 3600, description="seconds a depth_map_url is valid")
    default_colormap: Colormap = "inferno"
    png_compression: int = Field(
        1, ge=0, le=3, description="deflate level of the PNGs written (ISA-L: 0 fastest, 1 default, 3 smallest)"
    )
    ort_threads: int = Field(
        0, ge=0, description="ONNX Runtime intra-op threads; 0 = the CPU share (quota or Lambda memory) in whole cores"
    )
    model_precision: Literal["fp32", "int8"] = Field(
        "fp32", description="int8: serve the bake's int8 model, where its recorded error passes MAX_INT8_ABS_REL"
    )
    max_int8_abs_rel: float = Field(
        MAX_INT8_ABS_REL,
        ge=0,
        description="largest abs_rel of int8 against fp32 on the bake's held-out photographs that int8 is served at",
    )
    health_details: bool = Field(False, description="GET /health also lists library versions and limits")
    ort_spinning: bool | None = Field(
        None, description="ORT threads busy-wait between operators; unset = only on whole, unthrottled cores"
    )
    powertools_metrics_namespace: str = Field("MidasDepth", description="CloudWatch namespace of the metrics")
    aws_endpoint_url_s3: str | None = Field(None, description="boto3's S3 endpoint (an emulator): path-style keys")
    aws_endpoint_url: str | None = Field(None, description="boto3's endpoint of every service (an emulator)")

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, given: object) -> object:
        if not isinstance(given, dict):
            return given
        found = environment()
        return {**{name: found[name] for name in cls.model_fields if name in found}, **given}

    @field_validator("allowed_input_buckets", "allowed_input_prefixes", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(b.strip() for b in value.split(",") if b.strip())
        return value

    @field_validator(
        "output_bucket",
        "aws_endpoint_url_s3",
        "aws_endpoint_url",
        "aws_lambda_function_memory_size",
        "upload_function_memory_size",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("powertools_metrics_namespace", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        return "MidasDepth" if value == "" else value

    @field_validator("output_prefix")
    @classmethod
    def _prefix_ends_with_slash(cls, value: str) -> str:
        value = value.lstrip("/")
        if not value:
            raise ValueError(
                "must name a folder (e.g. 'depth/'): it is what keeps outputs from triggering the function"
            )
        return value if value.endswith("/") else value + "/"

    @field_validator("upload_prefix")
    @classmethod
    def _upload_prefix_is_relative(cls, value: str) -> str:
        return value.lstrip("/")

    @property
    def input_prefixes(self) -> tuple[str, ...]:
        """The key prefixes ``/depth`` may read: ALLOWED_INPUT_PREFIXES, else the upload prefix."""
        return tuple(sorted(self.allowed_input_prefixes)) or (self.upload_prefix,)

    @property
    def s3_endpoint_url(self) -> str | None:
        """The S3 endpoint boto3 uses instead of AWS's (an emulator), if one is set."""
        return self.aws_endpoint_url_s3 or self.aws_endpoint_url

    def may_read(self, bucket: str, key: str, *, by_api: bool = False) -> DepthError | None:
        """Why the function must not read ``s3://bucket/key``, or None: the one read rule of the upload trigger, the
        API (``by_api``) and the local scripts, decided before any S3 call so that a refusal says nothing about what
        the bucket holds (the role's GetObject is scoped the same way). The bucket must be an input bucket
        (ALLOWED_INPUT_BUCKETS); the key under the upload prefix, or for the API under any of :attr:`input_prefixes`.
        The messages address each reader: the API's caller, or the trigger's log and completion reports."""
        if bucket not in self.allowed_input_buckets:
            subject = "the bucket is not" if by_api else "not"
            return BucketNotAllowed(f"{subject} one of this function's input buckets (ALLOWED_INPUT_BUCKETS)")
        if by_api and not key.startswith(self.input_prefixes):
            allowed = ", ".join(self.input_prefixes)
            return KeyNotAllowed(f"the key is outside the prefixes this function may read ({allowed})")
        if not by_api and not key.startswith(self.upload_prefix):
            return KeyNotAllowed(f"outside the upload prefix {self.upload_prefix} (UPLOAD_PREFIX)")
        return None

    @property
    def http_max_pixels(self) -> int:
        """The pixel cap of the HTTP path (never above the S3 path's)."""
        return min(self.max_http_image_pixels, self.max_image_pixels)

    def pixel_cap(self, configured: int, mode: str = "RGB", image_format: str | None = None) -> int:
        """The pixel cap of an image: ``configured`` (a path's cap), lowered to what the function's memory holds
        (:func:`memory_pixel_cap`) when it runs with a memory size."""
        return _memory_capped(configured, self.aws_lambda_function_memory_size, mode, image_format)

    @property
    def upload_memory_mb(self) -> int | None:
        """MB of memory the S3 trigger runs with: the upload function's (UPLOAD_FUNCTION_MEMORY_SIZE) where it is
        another function, else this function's own."""
        return self.upload_function_memory_size or self.aws_lambda_function_memory_size

    def trigger_pixel_cap(self, mode: str = "RGB", image_format: str | None = None) -> int:
        """The S3 trigger's pixel cap of an image: MAX_IMAGE_PIXELS, lowered to what the upload function's memory
        holds (:attr:`upload_memory_mb`)."""
        return _memory_capped(self.max_image_pixels, self.upload_memory_mb, mode, image_format)

    @model_validator(mode="after")
    def _limits_fit_lambda(self) -> Settings:
        if self.max_json_bytes > API_GATEWAY_MAX_REQUEST_BYTES:
            raise ValueError(f"max_json_bytes cannot exceed API Gateway's {API_GATEWAY_MAX_REQUEST_BYTES} bytes")
        return self


def _memory_capped(configured: int, memory_mb: int | None, mode: str, image_format: str | None) -> int:
    """``configured``, lowered to what ``memory_mb`` holds for such an image; ``configured`` alone without a memory."""
    return configured if memory_mb is None else min(configured, memory_pixel_cap(memory_mb, mode, image_format))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()


def local_model_dir(explicit: str | None = None) -> str:
    """The baked model a local run uses: ``explicit`` (--model-dir) or $MODEL_DIR when given, else the checkout's
    layer/model/ when it holds a manifest, else the image's /opt/ml/model. Raises ``ModelUnavailable`` naming every
    place it looked and how to bake when none holds a manifest.

    The function itself does not look around: its Settings take MODEL_DIR or /opt/ml/model and nothing else.
    """
    if explicit:
        tried = [(explicit, "--model-dir")]
    elif variable(MODEL_DIR_ENV):
        tried = [(str(variable(MODEL_DIR_ENV)), f"${MODEL_DIR_ENV}")]
    else:
        tried = [(str(CHECKOUT_MODEL_DIR), "the checkout's layer/model/"), (IMAGE_MODEL_DIR, "the image's model")]
    for directory, _ in tried:
        if (Path(directory) / MANIFEST_FILE).is_file():
            return directory
    places = " nor in ".join(f"{directory} ({why})" for directory, why in tried)
    raise ModelUnavailable(
        f"no baked model: no {MANIFEST_FILE} in {places}; bake one into layer/model/ with `make bake` "
        "(offline: `make bake BAKE_CHECKPOINT=path/to/checkpoint.pt`), or name one with --model-dir DIR"
    )
