"""Synthetic images for the local runs and the tests: smooth scenes in any format, headers that lie about their
size (decompression bombs), and files whose structure makes their decode cost far more than their pixels."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np


def scene(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth synthetic RGB scene (gradients + blobs) so depth maps vary across the image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    for c in range(3):
        fx, fy, phase = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 6.28)
        img[..., c] = 127 + 60 * np.sin(xx / width * fx + phase) * np.cos(yy / height * fy) + 60 * (yy / height - 0.5)
    return np.clip(img, 0, 255).astype(np.uint8)


def encode(rgb: np.ndarray, fmt: str = "JPEG", **params) -> bytes:
    """``rgb`` encoded by Pillow in ``fmt`` (JPEG, PNG, WEBP, …) with Pillow's ``params``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **params)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels while its data is a few bytes (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + data


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small baseline JPEG whose frame header (SOF0) is rewritten to claim width x height pixels."""
    data = bytearray(encode(scene(16, 16)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def jpeg_scan_bomb(side: int, repeats: int, *, between: bytes = b"") -> bytes:
    """A progressive JPEG of a flat side x side image whose last (AC) scan is repeated ``repeats`` more times, each
    copy preceded by ``between`` (garbage or fill bytes, which decoders skip): kilobytes that libjpeg refines
    ``repeats`` times over."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (side, side), (128, 128, 128)).save(buf, "JPEG", progressive=True, quality=90)
    data = buf.getvalue()
    end = len(data) - 2  # the EOI marker
    last_scan = data[data.rindex(b"\xff\xda") : end]
    return data[:end] + (between + last_scan) * repeats + b"\xff\xd9"


def png_with_chunks(count: int, side: int = 64) -> bytes:
    """A small PNG with ``count`` empty private chunks (``prIv``) before its image data."""
    data = encode(scene(side, side), "PNG")
    after_ihdr = 8 + 25  # signature + the IHDR chunk
    return data[:after_ihdr] + png_chunk(b"prIv", b"") * count + data[after_ihdr:]


def jpeg_with_comments(count: int) -> bytes:
    """A small JPEG with ``count`` one-byte COM segments after its SOI."""
    data = encode(scene(16, 16))
    return data[:2] + b"\xff\xfe\x00\x03c" * count + data[2:]
