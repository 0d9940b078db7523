"""Decode work bounded by the pixels: hostile files built here (a progressive JPEG whose AC scan repeats thousands
of times, JPEG segments and PNG chunks by the ten thousand, run-length BMP, JPEG inside TIFF) are refused before any
pixel is decoded, while real encoders' files (Pillow's progressive scripts for grey, colour and CMYK) decode."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from handler import decode_work, imaging
from handler.errors import InvalidImage, TooComplex, UnsupportedMediaType
from support import encode, jpeg_scan_bomb, jpeg_with_comments, png_with_chunks, scene

LIMITS = {"max_bytes": 25 * 1024 * 1024, "max_pixels": 50_000_000}


def decode(data: bytes) -> imaging.Picture:
    return imaging.open_image(data, **LIMITS)


@pytest.mark.parametrize(("mode", "scans"), [("L", 6), ("RGB", 10), ("CMYK", 18)])
def test_real_progressive_scripts_are_counted_and_decode(mode, scans):
    """libjpeg's progressive scripts, as Pillow writes them (and as photos' progressive encodes are)."""
    img = Image.fromarray(scene(320, 240, seed=3)).convert(mode)
    buf = io.BytesIO()
    img.save(buf, "JPEG", progressive=True, quality=90, icc_profile=b"\0" * 150_000)  # ICC in three APP2 segments
    data = buf.getvalue()
    assert decode_work.jpeg_scans(data)[0] == scans <= decode_work.MAX_JPEG_SCANS
    assert decode(data).shape == (240, 320, 3)


def test_a_scan_bomb_is_refused_before_decoding():
    """198 KB for 4096 x 4096 pixels and 5 000 repeats of one AC scan: minutes of libjpeg work if decoded."""
    bomb = jpeg_scan_bomb(4096, 5000)
    assert len(bomb) < 1_000_000
    with pytest.raises(TooComplex, match=f"more than {decode_work.MAX_JPEG_SCANS} scans"):
        decode(bomb)


@pytest.mark.parametrize("between", [b"\xff\xff\xff", b"junk \x00 bytes"], ids=["fill bytes", "garbage"])
def test_scans_hidden_behind_fill_or_garbage_bytes_are_counted(between):
    bomb = jpeg_scan_bomb(64, decode_work.MAX_JPEG_SCANS, between=between)
    with pytest.raises(TooComplex):
        decode(bomb)


def test_the_scan_limit_is_a_limit_not_a_refusal_of_repeated_scans():
    at_limit = jpeg_scan_bomb(256, decode_work.MAX_JPEG_SCANS - 10)  # Pillow's 10 + the repeats
    assert decode_work.jpeg_scans(at_limit)[0] == decode_work.MAX_JPEG_SCANS
    assert decode(at_limit).shape == (256, 256, 3)


def test_only_the_first_image_of_a_multi_picture_file_is_counted():
    """An MPO's second picture (after the first EOI) is never decoded: its scans do not count."""
    first = encode(scene(64, 48), "JPEG")
    assert decode_work.jpeg_scans(first + jpeg_scan_bomb(64, 500))[0] == 1


def test_thousands_of_jpeg_segments_are_refused():
    with pytest.raises(TooComplex, match="marker segments"):
        decode(jpeg_with_comments(decode_work.MAX_JPEG_SEGMENTS + 1))
    assert decode(jpeg_with_comments(100)).shape == (16, 16, 3)


def test_thousands_of_png_chunks_are_refused():
    with pytest.raises(TooComplex, match="chunks"):
        decode(png_with_chunks(decode_work.MAX_PNG_CHUNKS + 1))
    assert decode(png_with_chunks(1000)).shape == (64, 64, 3)


def test_run_length_bmp_is_refused():
    """Pillow decodes RLE8 in Python, run by run: seconds per megapixel."""
    width, height = 64, 64
    pixels = (b"\x01\x07" * width + b"\x00\x00") * height + b"\x00\x01"
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    bmp = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels
    assert Image.open(io.BytesIO(bmp)).size == (64, 64)  # a valid RLE8 BMP
    with pytest.raises(TooComplex, match="run-length"):
        decode(bmp)
    assert decode(encode(scene(64, 64), "BMP")).shape == (64, 64, 3)


def test_jpeg_inside_tiff_is_refused():
    with pytest.raises(UnsupportedMediaType, match="TIFF with jpeg compression"):
        decode(encode(scene(64, 64), "TIFF", compression="jpeg"))
    for compression in ("raw", "tiff_lzw", "tiff_adobe_deflate", "packbits"):
        assert decode(encode(scene(64, 64), "TIFF", compression=compression)).shape == (64, 64, 3)


def test_only_the_supported_formats_parsers_read_the_bytes():
    """A TGA has no signature: once Pillow's TGA parser read it (and it was refused as TGA), now none does; a format
    with a signature is still named."""
    tga = encode(scene(8, 8), "TGA")
    with pytest.raises(InvalidImage, match="not an image"):
        decode(tga)
    with pytest.raises(UnsupportedMediaType, match="ICO images are not supported"):
        decode(encode(scene(16, 16), "ICO"))
