"""Bytes ↔ pixels: decode (limits checked before the full decode) and renderings (Inferno PNG, 16-bit PNG, PFM).

Before any pixel is decoded: the file's structure (:mod:`handler.decode_work`: a JPEG's scans, a PNG's chunks), then
only the supported formats' parsers read the header, then the pixel caps (the configured one, and the one the
function's memory sets for the mode the file decodes to: :func:`handler.config.memory_pixel_cap`) and the codings
whose decode work is not bounded by the pixels (run-length BMP, decoded in Python; JPEG inside TIFF, whose scans go
uncounted) are refused.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from handler import decode_work, png
from handler.colormaps import PALETTES
from handler.config import memory_pixel_cap
from handler.errors import (
    ImageTooLarge,
    InvalidImage,
    PayloadTooLarge,
    TooComplex,
    TooManyPixels,
    UnsupportedMediaType,
)
from handler.geometry import CameraExif, read_camera_exif

# We enforce our own pixel limit (Settings.max_image_pixels) from the header, before decoding; Pillow's global
# bomb check would otherwise warn or raise with its own, different limit.
Image.MAX_IMAGE_PIXELS = None

# Pillow format names we decode. MPO is the multi-picture JPEG many phones write.
SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF"})
# The parsers Image.open may run (a list or tuple); JPEG's answers MPO for a multi-picture file.
_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")
# TIFF compressions decoded in time proportional to the pixels (libtiff, in C); JPEG-in-TIFF and rarer ones are not.
TIFF_COMPRESSIONS = frozenset(
    {"raw", "tiff_ccitt", "group3", "group4", "tiff_lzw", "tiff_adobe_deflate", "tiff_deflate", "packbits"}
)
# BMP compressions Pillow decodes in C: none and bit fields (1 and 2, run-length, are decoded in Python, per run).
BMP_COMPRESSIONS = frozenset({0, 3})
# Unsupported formats named in the refusal, recognised by their signatures (magic bytes) alone.
_NAMED_FORMATS = ("GIF", "ICO", "AVIF", "JPEG2000", "PSD", "QOI", "ICNS", "DDS")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff"})
_EXIF_ORIENTATION = 0x0112
MAX_SIDE = 16384  # longest side accepted (JPEG's own limit is 65 535; WebP's 16 383)
_CONVERT_BLOCK = 4 << 20  # bytes of decoded pixels converted to RGB at a time


class Picture:
    """A decoded image as RGB uint8: ``picture[rows]`` with an index array gives those rows, (n, W, 3), copied out
    of Pillow's buffer alone; any other index reads :attr:`array`, the whole (H, W, 3), converted once.

    Shrinking a photo to the network's size reads 4 rows per output row: a quarter of a 12 MP photo's rows, and
    copying only those saves most of converting all of it (a fresh array of the whole photo)."""

    def __init__(self, img: Image.Image, camera: CameraExif | None = None) -> None:
        self._img: Image.Image | None = img
        self.camera = camera or CameraExif()  # the lens fields of its EXIF (:func:`_lens`)
        self.shape = (img.height, img.width, 3)
        self._array: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = _to_rgb(self._img)
            self._img = None  # the decoded image is no longer read: freed as soon as the caller lets go of it
        return self._array

    def __getitem__(self, index: object) -> np.ndarray:
        img = self._img
        if isinstance(index, np.ndarray) and img is not None and img.mode == "RGB":
            return self._rows(img, index)
        return self.array[index]

    def _rows(self, img: Image.Image, index: np.ndarray) -> np.ndarray:
        wanted = np.unique(index)
        if len(wanted) > self.shape[0] // 2:  # most rows: one conversion of the whole image is cheaper
            return self.array[index]
        runs = np.split(wanted, np.flatnonzero(np.diff(wanted) != 1) + 1)  # consecutive rows, one crop each
        width = self.shape[1]
        block = np.concatenate([np.asarray(img.crop((0, int(r[0]), width, int(r[-1]) + 1))) for r in runs])
        return block[np.searchsorted(wanted, index)]


def open_image(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    memory_mb: int | None = None,
    before_decode: Callable[[int, int], None] | None = None,
) -> Picture:
    """Encoded bytes → the decoded :class:`Picture`, EXIF orientation applied; limits checked from the header first:
    ``max_pixels``, then, with ``memory_mb`` (the function's memory), the cap for the mode the file decodes to, then
    the caller's ``before_decode``, given the (width, height) the header states (before EXIF orientation): it
    refuses the image by raising, before any pixel is decoded."""
    if not data:
        raise InvalidImage("empty image: no bytes received")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"image is {len(data)} bytes; the limit is {max_bytes} bytes")
    decode_work.check(data)
    img = _open_header(data)
    _check_size(img, max_pixels)
    if memory_mb is not None:
        _check_memory(img, memory_mb)
    _check_coding(img)
    if before_decode is not None:
        before_decode(*img.size)
    return _decode(img)


def _open_header(data: bytes) -> Image.Image:
    """The image, its header read (not its pixels); refused unless it is one of the supported formats."""
    try:
        img = Image.open(io.BytesIO(data), formats=_FORMATS)  # reads the header only; no other parser runs
    except UnidentifiedImageError:
        other = _other_format(data)
        if other:
            raise UnsupportedMediaType(f"{other} images are not supported; send JPEG, PNG, WebP, BMP or TIFF") from None
        raise InvalidImage("not an image: the bytes are not JPEG, PNG, WebP, BMP or TIFF") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"unreadable image header: {exc}") from None
    if img.format not in SUPPORTED_FORMATS:  # formats= already refuses them; kept should a plugin answer another
        raise UnsupportedMediaType(f"{img.format} images are not supported; send JPEG, PNG, WebP, BMP or TIFF")
    return img


def _other_format(data: bytes) -> str | None:
    """The unsupported format ``data`` is, to name it: Pillow's signature checks of formats whose signature is
    distinctive (a TGA's first bytes pass for a cursor), no parser."""
    Image.init()
    prefix = data[:16]
    checks = (Image.OPEN.get(name, (None, None))[1] for name in _NAMED_FORMATS)  # AVIF: where Pillow has it
    return next((name for name, accept in zip(_NAMED_FORMATS, checks, strict=True) if accept and accept(prefix)), None)


def _check_coding(img: Image.Image) -> None:
    """Refuse codings whose decode work is not bounded by the pixels (see the module's docstring)."""
    compression = img.info.get("compression")
    if img.format == "BMP" and compression not in BMP_COMPRESSIONS:
        raise TooComplex("run-length compressed BMP is decoded too slowly to be accepted; send PNG or JPEG")
    if img.format == "TIFF" and compression not in TIFF_COMPRESSIONS:
        raise UnsupportedMediaType(f"TIFF with {compression} compression is not supported; send PNG or JPEG")


def _check_size(img: Image.Image, max_pixels: int) -> None:
    width, height = img.size
    if width * height > max_pixels:
        raise TooManyPixels(
            f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels",
            pixels=width * height,
            mode=img.mode,
            image_format=img.format,
        )
    if max(width, height) > MAX_SIDE:  # a 1 000 000 x 50 strip is few pixels but gigabytes of resize work
        raise TooManyPixels(f"image is {width}x{height}; no side may exceed {MAX_SIDE} pixels")
    if width < 1 or height < 1:
        raise InvalidImage(f"image has no pixels ({width}x{height})")


def _check_memory(img: Image.Image, memory_mb: int) -> None:
    """Refuse an image whose decode and renderings would not fit in ``memory_mb`` (:func:`memory_pixel_cap`)."""
    width, height = img.size
    cap = memory_pixel_cap(memory_mb, img.mode, img.format)
    if width * height > cap:
        raise ImageTooLarge(
            f"image is {width}x{height} = {width * height} pixels, a {img.format} decoded as {img.mode}; with this "
            f"function's "
            f"{memory_mb} MB of memory (AWS_LAMBDA_FUNCTION_MEMORY_SIZE) the limit for such images is {cap} pixels; "
            "send a smaller image, or give the function more memory"
        )


def _decode(img: Image.Image) -> Picture:
    """The pixels, upright (EXIF orientation); a decoding failure is an invalid image."""
    try:
        img.load()
        exif = img.getexif()
        camera = _lens(exif)
        if exif.get(_EXIF_ORIENTATION, 1) != 1:
            img = ImageOps.exif_transpose(img)
        picture = Picture(img, camera)
        if img.mode != "RGB":
            picture.array  # noqa: B018  (converted here, where a failing conversion is an invalid image)
        return picture
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImage(f"corrupt or truncated {img.format} image: {exc}") from None


def _lens(exif: Image.Exif) -> CameraExif:
    """The lens fields of an image's EXIF (focal lengths, focal-plane resolution; :attr:`Picture.camera`); empty
    when it has none."""
    try:
        return read_camera_exif(exif)
    except Exception:  # EXIF is optional: unreadable lens data means "no lens data", never a failed request
        return CameraExif()


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow mode → RGB uint8, a block of rows at a time: converting the whole image at once would hold two
    or three more full-size copies at its peak (Pillow's converted image, its bytes, NumPy's temporaries)."""
    height, width = img.height, img.width
    out = np.empty((height, width, 3), dtype=np.uint8)
    rows = max(1, _CONVERT_BLOCK // (4 * width))
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        out[top:bottom] = _block_to_rgb(img.crop((0, top, width, bottom)))  # crop keeps palette and info
    return out


def _block_to_rgb(img: Image.Image) -> np.ndarray:
    """Alpha is dropped; 16-bit is reduced to 8-bit as cv2.imread does (>> 8)."""
    if img.mode == "RGB":
        return np.asarray(img)
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        raw = np.asarray(img)
        # 16-bit gray: the high byte, as cv2.imread reduces it; 32-bit int/float gray (rare TIFFs): 0..255 as is
        gray = np.right_shift(raw, 8) if img.mode.startswith("I;16") else np.clip(raw, 0, 255)
        return gray.astype(np.uint8)[:, :, np.newaxis]  # broadcast to the three channels by the caller's copy
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # Pillow warns when a palette's transparency goes straight to RGB
    return np.asarray(img.convert("RGB"))  # drops alpha; gray, palette, CMYK, YCbCr → RGB


# ------------------------------------------------------------------------------------------------ renderings


# normalise works through the depth map in blocks of this many values, each still in cache for its second pass
_BLOCK = 1 << 17


def normalise(depth: np.ndarray, bits: int, depth_range: tuple[float, float] | None = None) -> np.ndarray:
    """Upstream write_depth: max_val * (d - min) / (max - min), non-finite → 0, truncated to uint8/uint16.

    Same float32 operations in the same order as upstream (bit-identical levels). Block by block: the minimum and
    maximum in one read of the map (or ``depth_range``, the map's own (min, max) as NumPy gives them, where the
    caller measured it already: :func:`preprocess.resize_with_range`), then each block's levels while it is in cache.
    """
    flat = np.ascontiguousarray(depth).reshape(-1)
    blocks = [flat[start : start + _BLOCK] for start in range(0, flat.size, _BLOCK)]
    if depth_range is None:
        # NumPy's min and max propagate NaN (Python's would skip it): both finite = every value finite
        lo = np.min([block.min() for block in blocks])
        hi = np.max([block.max() for block in blocks])
    else:
        lo, hi = np.float32(depth_range[0]), np.float32(depth_range[1])
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return normalise(np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0), bits)
    # 16-bit levels big-endian, as PNG stores them: the PNG writer then needs no byte-swapped copy of the map
    dtype = np.dtype(np.uint8) if bits == 1 else np.dtype(">u2")
    if hi - lo <= np.finfo(float).eps:
        return np.zeros(depth.shape, dtype=dtype)
    out = np.empty(flat.size, dtype=dtype)
    scratch = np.empty(min(_BLOCK, flat.size), dtype=np.float32)
    top, span = np.float32((1 << (8 * bits)) - 1), hi - lo
    for start, block in zip(range(0, flat.size, _BLOCK), blocks, strict=True):
        values = scratch[: block.size]
        np.subtract(block, lo, out=values)
        values *= top
        values /= span
        out[start : start + block.size] = values  # float → uint truncates, as astype does
    return out.reshape(depth.shape)


def heatmap_png(levels: np.ndarray, colormap: str, compression: int) -> bytes:
    """8-bit depth levels (:func:`normalise`) → indexed PNG whose palette is the colormap.

    Decodes to exactly the pixels of ``cv2.applyColorMap(levels, ...)`` (upstream's Inferno rendering), but
    deflates one byte per pixel instead of three (:mod:`handler.png`).
    """
    if colormap == "gray":
        return png.gray8(levels, compression)
    return png.indexed(levels, PALETTES[colormap], compression)


def depth_png16(levels: np.ndarray, compression: int) -> bytes:
    """16-bit depth levels (:func:`normalise` with bits=2) → 16-bit grayscale PNG."""
    return png.gray16(levels, compression)


def pfm_bytes(depth: np.ndarray) -> bytearray:
    """Upstream write_pfm: 'Pf' header, bottom-to-top rows, little-endian float32 (negative scale). The rows are
    written straight into the one buffer returned (a bytes object would need the map copied twice more)."""
    height, width = depth.shape
    header = b"Pf\n" + b"%d %d\n" % (width, height) + b"%f\n" % -1.0
    out = bytearray(len(header) + 4 * height * width)
    out[: len(header)] = header
    np.frombuffer(out, dtype="<f4", offset=len(header)).reshape(height, width)[:] = depth[::-1]
    return out
