"""Bounds on the work of decoding an image, read from the file's structure before Pillow parses it.

The pixel cap bounds what a decode produces, not what it costs: a 200 KB progressive JPEG whose one AC scan repeats
5 000 times makes libjpeg refine a 16 MP image 5 000 times (seconds to a minute), and Pillow parses the marker
segments of a JPEG and the chunks of a PNG one by one in Python, so millions of tiny ones cost seconds before a
pixel is decoded. Counting them is cheap (the entropy-coded data is skipped by a regular expression, in C), and with
these counts bounded every accepted input decodes in time proportional to its pixels: at most
:data:`MAX_JPEG_SCANS` passes over a JPEG's coefficients; one inflate of a PNG's rows. The bounds and what real
files use: docs/hardening.md#decode-work.
"""

from __future__ import annotations

import re
import struct

from handler.errors import TooComplex

# libjpeg's progressive script has 10 scans for a colour photo, 6 for grey and 18 for CMYK; mozjpeg's optimised
# scripts and cameras' stay below 20. Well above every real encoder, far below a bomb's thousands.
MAX_JPEG_SCANS = 64
# Marker segments of any kind (scans included): a progressive photo with an ICC profile and XMP has about 40.
MAX_JPEG_SEGMENTS = 1000
# Encoders write IDAT chunks of 8 KB (libpng) to 64 KB (Pillow): a 25 MB PNG has a few thousand of them.
MAX_PNG_CHUNKS = 20_000

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# In entropy-coded data a 0xFF is followed by 0x00 (a stuffed byte) or a restart marker (0xD0-0xD7): any other
# byte after it is the next marker.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_SOS, _EOI = 0xDA, 0xD9
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RSTn: no length field


def check(data: bytes) -> None:
    """Refuse (``TooComplex``) a JPEG or PNG whose structure would make its decode cost more than its pixels."""
    if data.startswith(b"\xff\xd8"):
        _check_jpeg(data)
    elif data.startswith(PNG_SIGNATURE):
        _check_png(data)


def jpeg_scans(data: bytes) -> tuple[int, int]:
    """(scans, marker segments) of the first image of a JPEG, up to the first EOI; counting stops past the limits."""
    scans = segments = 0
    pos, end = 2, len(data)
    while pos + 1 < end and segments <= MAX_JPEG_SEGMENTS and scans <= MAX_JPEG_SCANS:
        pos = _marker_at(data, pos)
        if pos is None or data[pos + 1] == _EOI:
            break
        marker = data[pos + 1]
        if marker in _STANDALONE:
            pos += 2
            continue
        if pos + 4 > end:
            break
        segments += 1
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
        if marker == _SOS:  # the entropy-coded data runs to the next marker
            scans += 1
            found = _NEXT_MARKER.search(data, pos)
            pos = found.start() if found else end
    return scans, segments


def _marker_at(data: bytes, pos: int) -> int | None:
    """``pos`` if a marker starts there, else where the next one starts past garbage or fill bytes (None: none)."""
    if data[pos] == 0xFF and data[pos + 1] != 0xFF:
        return pos
    found = _NEXT_MARKER.search(data, pos)
    return found.start() if found else None


def _check_jpeg(data: bytes) -> None:
    scans, segments = jpeg_scans(data)
    if scans > MAX_JPEG_SCANS:
        raise TooComplex(f"the JPEG has more than {MAX_JPEG_SCANS} scans; real photos have at most about 20")
    if segments > MAX_JPEG_SEGMENTS:
        raise TooComplex(f"the JPEG has more than {MAX_JPEG_SEGMENTS} marker segments; real photos have about 40")


def png_chunks(data: bytes) -> int:
    """The number of chunks of a PNG up to IEND; counting stops past the limit."""
    chunks, pos, end = 0, len(PNG_SIGNATURE), len(data)
    while pos + 8 <= end and chunks <= MAX_PNG_CHUNKS:
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks += 1
        if kind == b"IEND":
            break
        pos += 12 + length  # length, type, data, CRC
    return chunks


def _check_png(data: bytes) -> None:
    if png_chunks(data) > MAX_PNG_CHUNKS:
        raise TooComplex(f"the PNG has more than {MAX_PNG_CHUNKS} chunks; encoders write a few thousand at most")
