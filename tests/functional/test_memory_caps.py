"""The pixel caps the function's memory sets (AWS_LAMBDA_FUNCTION_MEMORY_SIZE), through the real entry on a real S3
endpoint: an image over the cap for its mode and format is refused from its header (HTTP 413 ``image_too_large``, an
upload recorded as a permanent failure), one under it is served; an image over the HTTP API's cap is pointed to the
input bucket only when the trigger takes it at the upload function's memory (UPLOAD_FUNCTION_MEMORY_SIZE, the API
function's own when unset); and, measured in a process of its own, the largest image accepted at a set memory size
peaks below 90 % of it."""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image

from handler.config import MEMORY_SHARE, Settings, memory_pixel_cap
from handler.estimator import DepthEstimator
from localdev.memory import measure, sample
from support import assert_clean_error, call, encode, list_keys, png_claiming, s3_event, scene


def flat_png(width: int, height: int, mode: str = "RGBA") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), (90, 120, 150, 200)[: len(mode)]).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def entry_with_memory(entry, monkeypatch, depth_model):
    """The entry, its settings read with AWS_LAMBDA_FUNCTION_MEMORY_SIZE set (``entry_with_memory(384)``), and
    UPLOAD_FUNCTION_MEMORY_SIZE where given (``entry_with_memory(2048, upload_mb=512)``: the API function)."""
    memories = {"aws_lambda_function_memory_size", "upload_function_memory_size"}

    def given(memory_mb: int, upload_mb: int | None = None):
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", str(memory_mb))
        if upload_mb is not None:
            monkeypatch.setenv("UPLOAD_FUNCTION_MEMORY_SIZE", str(upload_mb))
        settings = Settings(**entry.estimator.settings.model_dump(exclude=memories))
        assert settings.aws_lambda_function_memory_size == memory_mb
        assert settings.upload_function_memory_size == upload_mb
        monkeypatch.setattr(entry, "estimator", DepthEstimator(settings, depth_model))
        return entry

    return given


def test_http_refuses_an_image_over_the_memory_cap_before_decoding(entry_with_memory, lambda_context):
    entry = entry_with_memory(384)
    cap = memory_pixel_cap(384, "RGBA", "PNG")
    assert cap < entry.estimator.settings.http_max_pixels  # the memory's cap, not the configured one, applies
    health = call(entry.lambda_handler, lambda_context, "v2", "GET", "/health").json()
    assert health["limits"]["memory_mb"] == 384
    assert health["limits"]["max_http_image_pixels"] == memory_pixel_cap(384, "RGB", "JPEG")
    assert health["limits"]["max_image_pixels_by_format"]["WEBP"] == memory_pixel_cap(384, "RGB", "WEBP")

    big = flat_png(4000, cap // 4000 + 1)
    answer = call(entry.lambda_handler, lambda_context, "v2", "POST", "/depth", big, "image/png")
    words = ("a PNG decoded as RGBA", f"the limit for such images is {cap} pixels", "384 MB of memory")
    assert_clean_error(answer, 413, "image_too_large", *words)
    after = call(entry.lambda_handler, lambda_context, "v2", "GET", "/health").json()
    assert after["images_processed"] == health["images_processed"]  # refused from the header: nothing decoded

    small = encode(scene(640, 480), "JPEG")
    answer = call(entry.lambda_handler, lambda_context, "v2", "POST", "/depth", small, "image/jpeg")
    assert answer.status == 200 and answer.body.startswith(b"\x89PNG")


def test_an_upload_over_the_memory_cap_is_a_recorded_permanent_failure(
    entry_with_memory, lambda_context, s3, input_bucket, output_bucket
):
    entry = entry_with_memory(512)
    cap = memory_pixel_cap(512, "RGBA", "PNG")
    assert cap < entry.estimator.settings.max_image_pixels
    run = uuid.uuid4().hex[:8]
    big, small = f"uploads/{run}/big.png", f"uploads/{run}/small.png"
    s3.put_object(Bucket=input_bucket, Key=big, Body=flat_png(6000, cap // 6000 + 1))
    s3.put_object(Bucket=input_bucket, Key=small, Body=flat_png(640, 480))

    summary = entry.lambda_handler(s3_event(input_bucket, big, small), lambda_context)

    assert [w["heatmap"] for w in summary["written"]] == [f"depth/{small}.png"]
    [failed] = summary["failed"]
    assert failed["key"] == big and failed["reason"].startswith("image_too_large: ")
    assert f"the limit for such images is {cap} pixels" in failed["reason"] and "512 MB" in failed["reason"]
    assert failed["failure"] == f"depth/failures/{input_bucket}/{big}.json"  # recorded: not retried
    assert not [k for k in list_keys(s3, output_bucket, f"depth/{big}") if not k.endswith(".json")]


@pytest.mark.parametrize("kind", ["webp_rgba", "tiff_f"])
def test_the_largest_image_accepted_peaks_below_90_percent_of_the_memory(baked_model_dir, tmp_path, kind):
    """A real bound, measured: the whole pipeline (every rendering, a point cloud) in a process of its own, with the
    function's memory set to 320 MB, on the largest image of that kind it accepts."""
    memory_mb = 320
    image_format, mode = {"webp_rgba": ("WEBP", "RGBA"), "tiff_f": ("TIFF", "F")}[kind]
    cap = memory_pixel_cap(memory_mb, mode, image_format)
    path = tmp_path / kind
    path.write_bytes(sample(kind, cap / 1e6))
    with Image.open(path) as img:
        assert img.mode == mode and 0.99 * cap < img.width * img.height <= cap
    result = measure(baked_model_dir, path, env={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb)})
    assert "refused" not in result, result
    assert result["peak_mb"] < MEMORY_SHARE * memory_mb, result


def test_http_points_to_the_bucket_only_for_what_the_trigger_takes_with_its_memory(entry_with_memory, lambda_context):
    """An image over the HTTP API's cap is pointed to the input bucket with the trigger's cap for that image at this
    memory size, and not pointed there at all when the trigger would refuse it too."""
    entry = entry_with_memory(512)
    trigger_cap = entry.estimator.settings.pixel_cap(entry.estimator.settings.max_image_pixels, "RGB", "PNG")
    http_cap = entry.estimator.settings.http_max_pixels
    assert http_cap < trigger_cap < entry.estimator.settings.max_image_pixels  # the memory lowers the trigger's cap

    taken = png_claiming(5000, (http_cap + trigger_cap) // 2 // 5000)
    answer = call(entry.lambda_handler, lambda_context, "v2", "POST", "/depth", taken, "image/png")
    assert_clean_error(answer, 413, "too_many_pixels", f"whose trigger takes such an image up to {trigger_cap} pixels")

    refused = png_claiming(5000, trigger_cap // 5000 + 1)
    answer = call(entry.lambda_handler, lambda_context, "v2", "POST", "/depth", refused, "image/png")
    assert_clean_error(answer, 413, "too_many_pixels", f"the limit is {http_cap} pixels")
    assert "input bucket" not in answer.json()["message"]


def test_http_points_to_the_bucket_by_the_upload_functions_memory_not_its_own(entry_with_memory, lambda_context):
    """The API function with less memory than the upload function: an image its own memory would not take on the
    trigger path is pointed to the input bucket with the upload function's cap; with more, one that the upload function
    would refuse is not pointed there. /health reports the trigger's caps at the upload function's memory."""
    entry = entry_with_memory(512, upload_mb=1024)
    settings = entry.estimator.settings
    http_cap, own_cap = settings.http_max_pixels, memory_pixel_cap(512, "RGB", "PNG")
    upload_cap = min(settings.max_image_pixels, memory_pixel_cap(1024, "RGB", "PNG"))
    assert http_cap < own_cap < upload_cap
    taken = png_claiming(5000, (own_cap + upload_cap) // 2 // 5000)  # over what 512 MB holds, under 1024 MB's cap
    answer = call(entry.lambda_handler, lambda_context, "v2", "POST", "/depth", taken, "image/png")
    assert_clean_error(answer, 413, "too_many_pixels", f"whose trigger takes such an image up to {upload_cap} pixels")
    limits = call(entry.lambda_handler, lambda_context, "v2", "GET", "/health").json()["limits"]
    assert (limits["memory_mb"], limits["upload_memory_mb"]) == (512, 1024)
    assert limits["max_image_pixels"] == min(settings.max_image_pixels, memory_pixel_cap(1024, "RGB", "JPEG"))
    assert limits["max_image_pixels_by_format"]["WEBP"] == memory_pixel_cap(1024, "RGB", "WEBP")
    assert limits["max_http_image_pixels"] == http_cap

    entry = entry_with_memory(2048, upload_mb=512)
    upload_cap = memory_pixel_cap(512, "RGB", "PNG")
    assert http_cap < upload_cap < entry.estimator.settings.pixel_cap(entry.estimator.settings.max_image_pixels)
    refused = png_claiming(5000, upload_cap // 5000 + 1)  # the API function's memory would take it; 512 MB not
    answer = call(entry.lambda_handler, lambda_context, "v2", "POST", "/depth", refused, "image/png")
    assert_clean_error(answer, 413, "too_many_pixels", f"the limit is {http_cap} pixels")
    assert "input bucket" not in answer.json()["message"]
