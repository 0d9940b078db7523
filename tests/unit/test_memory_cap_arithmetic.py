"""The pixel caps the function's memory sets (AWS_LAMBDA_FUNCTION_MEMORY_SIZE): the arithmetic, the check from the
header, by the mode the file decodes to, before anything is decoded, and the S3 trigger's caps at the upload
function's memory (UPLOAD_FUNCTION_MEMORY_SIZE), which the API function names to its callers."""

from __future__ import annotations

import struct
import zlib

import pytest

from handler import config, imaging
from handler.config import Settings, memory_pixel_cap
from handler.errors import ImageTooLarge, TooManyPixels
from localdev.images import encode, png_chunk, scene

LIMITS = {"max_bytes": 25 * 1024 * 1024, "max_pixels": 50_000_000}


def png_header_only(width: int, height: int, colour_type: int, bit_depth: int = 8) -> bytes:
    """A PNG whose header says width x height of ``colour_type`` (2 RGB, 6 RGBA, 0 gray) and whose data is a few
    bytes of zeros: decoding it fails, so a refusal that names the pixels came from the header."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    chunks = png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def test_the_cap_is_what_fits_in_the_memory_share():
    room = (config.MEMORY_SHARE * 1024 - config.MEMORY_BASELINE_MB - config.MEMORY_MARGIN_MB) * 2**20
    for mode, image_format in [("RGB", "JPEG"), ("RGBA", "PNG"), ("I;16", "PNG"), ("F", "TIFF"), ("CMYK", "JPEG")]:
        cap = memory_pixel_cap(1024, mode, image_format)
        assert cap == int(room / config.bytes_per_pixel(mode, image_format))
        assert memory_pixel_cap(2048, mode, image_format) > 2 * cap  # the baseline is paid once
    assert memory_pixel_cap(128, "RGB") == 0  # the loaded container alone is over 90 % of Lambda's smallest size


def test_every_mode_has_a_cost_unmeasured_ones_the_dearest_and_webp_its_decoders():
    assert max(config.PEAK_BYTES_PER_PIXEL.values()) == config.OTHER_MODES_BYTES_PER_PIXEL
    assert config.bytes_per_pixel("CMYK") == config.OTHER_MODES_BYTES_PER_PIXEL
    assert {"RGB", "L", "RGBA", "P", "I;16", "F"} <= set(config.PEAK_BYTES_PER_PIXEL)
    assert config.bytes_per_pixel("RGB", "WEBP") > config.bytes_per_pixel("RGB", "JPEG")
    assert memory_pixel_cap(1024, "RGB", "WEBP") < memory_pixel_cap(1024, "RGB", "JPEG")


def test_settings_read_the_memory_size_and_lower_the_configured_caps(monkeypatch):
    assert Settings().aws_lambda_function_memory_size is None  # a local run: the configured caps alone
    assert Settings().pixel_cap(50_000_000, "F") == 50_000_000
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
    settings = Settings()
    assert settings.aws_lambda_function_memory_size == 512
    assert settings.pixel_cap(50_000_000) == memory_pixel_cap(512, "RGB") < 50_000_000
    assert settings.pixel_cap(50_000_000, "RGB", "WEBP") == memory_pixel_cap(512, "RGB", "WEBP")
    assert settings.pixel_cap(1000) == 1000  # never above the configured cap
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    assert Settings().aws_lambda_function_memory_size is None


def test_the_trigger_caps_follow_the_upload_functions_memory(monkeypatch):
    """The API function learns the upload function's memory from UPLOAD_FUNCTION_MEMORY_SIZE; without it (the upload
    function itself, a local run) the trigger's caps are at the function's own memory."""
    assert Settings().upload_function_memory_size is None
    assert Settings().trigger_pixel_cap("RGB", "WEBP") == 50_000_000  # a local run: the configured cap alone
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
    own = Settings()
    assert own.upload_memory_mb == 512
    assert own.trigger_pixel_cap("RGB", "WEBP") == own.pixel_cap(50_000_000, "RGB", "WEBP")
    assert own.trigger_pixel_cap() == memory_pixel_cap(512, "RGB") < 50_000_000

    monkeypatch.setenv("UPLOAD_FUNCTION_MEMORY_SIZE", "1024")
    api = Settings()
    assert (api.aws_lambda_function_memory_size, api.upload_function_memory_size, api.upload_memory_mb) == (
        512,
        1024,
        1024,
    )
    assert api.trigger_pixel_cap("RGB", "WEBP") == memory_pixel_cap(1024, "RGB", "WEBP") < 50_000_000
    assert api.trigger_pixel_cap() == 50_000_000 < memory_pixel_cap(1024, "RGB")  # never above the configured cap
    assert api.pixel_cap(50_000_000) == memory_pixel_cap(512, "RGB")  # its own caps stay at its own memory
    monkeypatch.setenv("UPLOAD_FUNCTION_MEMORY_SIZE", "384")
    assert Settings().trigger_pixel_cap("RGBA", "PNG") == memory_pixel_cap(384, "RGBA", "PNG")
    monkeypatch.setenv("UPLOAD_FUNCTION_MEMORY_SIZE", "")
    assert Settings().upload_memory_mb == 512
    monkeypatch.setenv("UPLOAD_FUNCTION_MEMORY_SIZE", "0")
    with pytest.raises(ValueError, match="upload_function_memory_size"):
        Settings()


def test_an_image_over_the_memory_cap_is_refused_from_its_header():
    cap = memory_pixel_cap(512, "RGBA", "PNG")
    width = 4000
    height = cap // width + 1  # just over the cap, under the configured 50 MP
    bomb = png_header_only(width, height, colour_type=6)
    assert len(bomb) < 200
    with pytest.raises(ImageTooLarge) as refused:
        imaging.open_image(bomb, **LIMITS, memory_mb=512)
    message = refused.value.message
    assert f"{width}x{height}" in message and "a PNG decoded as RGBA" in message
    assert f"the limit for such images is {cap} pixels" in message and "512 MB of memory" in message
    assert refused.value.status_code == 413 and refused.value.code == "image_too_large"
    # the same header under a memory that holds it: decoding is tried (and fails: there are no pixels)
    with pytest.raises(Exception, match="corrupt or truncated") as decoded:
        imaging.open_image(png_header_only(width, height, colour_type=6), **LIMITS, memory_mb=4096)
    assert not isinstance(decoded.value, ImageTooLarge)


def test_the_configured_cap_is_checked_first():
    with pytest.raises(TooManyPixels):
        imaging.open_image(png_header_only(8000, 7000, colour_type=2), **LIMITS, memory_mb=512)


def test_an_image_under_the_memory_cap_decodes():
    picture = imaging.open_image(encode(scene(640, 480), "PNG"), **LIMITS, memory_mb=512)
    assert picture.shape == (480, 640, 3)
