"""Decoding (formats, modes, EXIF, limits before decode) and renderings (Inferno, 16-bit PNG, PFM)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bake import upstream_reference as upstream
from handler import imaging
from handler.colormaps import PALETTES
from handler.errors import InvalidImage, PayloadTooLarge, TooManyPixels, UnsupportedMediaType
from localdev.upstream_record import COLORMAPS, gray16
from support import encode, png_claiming, read_pfm, recorded_upstream, scene

LIMITS = {"max_bytes": 50 * 1024 * 1024, "max_pixels": 50_000_000}


def decode(data: bytes, **overrides) -> np.ndarray:
    return imaging.open_image(data, **{**LIMITS, **overrides}).array


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP"])
def test_lossless_formats_decode_to_the_same_pixels(fmt):
    rgb = scene(64, 48)
    params = {"lossless": True} if fmt == "WEBP" else {}
    out = decode(encode(rgb, fmt, **params))
    assert out.dtype == np.uint8 and out.shape == (48, 64, 3)
    np.testing.assert_array_equal(out, rgb)


def test_jpeg_decodes_close_to_the_source():
    rgb = scene(64, 48)
    out = decode(encode(rgb, "JPEG", quality=95))
    assert out.shape == (48, 64, 3) and np.abs(out.astype(int) - rgb).mean() < 3


def test_gray_rgba_and_palette_become_rgb():
    rgb = scene(32, 24)
    gray = decode(encode(rgb[..., 0], "PNG"))
    assert gray.shape == (24, 32, 3) and (gray[..., 0] == gray[..., 2]).all()
    rgba = np.dstack([rgb, np.full((24, 32), 7, np.uint8)])
    np.testing.assert_array_equal(decode(encode(rgba, "PNG")), rgb)  # alpha dropped, colour untouched
    pal = Image.fromarray(rgb).convert("P")
    pal.info["transparency"] = 0
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=0)
    assert decode(buf.getvalue()).shape == (24, 32, 3)


def test_16_bit_png_is_reduced_like_the_recorded_cv2_imread():
    """cv2.imencode's 16-bit grey PNG, decoded as upstream's cv2.imread does (8-bit BGR, recorded)."""
    recorded = recorded_upstream()
    with Image.open(io.BytesIO(recorded["imread16/png"].tobytes())) as img:
        np.testing.assert_array_equal(np.asarray(img), gray16())  # the recorded PNG holds the picture
    np.testing.assert_array_equal(decode(recorded["imread16/png"].tobytes()), recorded["imread16/bgr"][..., ::-1])


def test_cmyk_jpeg_decodes():
    cmyk = Image.fromarray(scene(40, 30)).convert("CMYK")
    buf = io.BytesIO()
    cmyk.save(buf, "JPEG", quality=95)
    out = decode(buf.getvalue())
    assert out.shape == (30, 40, 3)
    assert np.abs(out.astype(int) - scene(40, 30)).mean() < 12


def test_exif_orientation_is_applied():
    """A phone photo stored landscape with Orientation=6 (rotate 90° CW) must come out portrait."""
    rgb = scene(60, 40)
    rgb[:5, :5] = (255, 0, 0)  # red marker at the stored top-left
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, exif=exif)
    out = decode(buf.getvalue())
    assert out.shape == (60, 40, 3)
    assert out[1, -2, 0] > 200 and out[1, -2, 1] < 60  # the marker is now at the top-right


@pytest.mark.parametrize("data", [b"", b"hello world", b"\x89PNG\r\n\x1a\n" + b"\0" * 10])
def test_not_an_image(data):
    with pytest.raises(InvalidImage):
        decode(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_images_are_invalid(fmt):
    data = encode(scene(200, 150), fmt)
    with pytest.raises(InvalidImage, match="corrupt or truncated"):
        decode(data[: len(data) // 2])


def test_gif_is_unsupported():
    with pytest.raises(UnsupportedMediaType, match="GIF"):
        decode(encode(scene(8, 8), "GIF"))


def test_byte_limit():
    with pytest.raises(PayloadTooLarge, match="limit is 100 bytes"):
        decode(encode(scene(64, 64), "PNG"), max_bytes=100)


def test_an_extreme_side_is_refused_from_the_header():
    strip = png_claiming(imaging.MAX_SIDE + 1, 2)  # few pixels, but a resize over a very long axis
    with pytest.raises(TooManyPixels, match="no side may exceed"):
        decode(strip)


def test_pixel_limit_is_checked_from_the_header_before_decoding():
    bomb = png_claiming(50_000, 50_000)
    assert len(bomb) < 200
    with pytest.raises(TooManyPixels, match="50000x50000"):
        decode(bomb)


# ------------------------------------------------------------------------------------------------ renderings


@pytest.mark.parametrize("seed", range(5))
def test_normalise_is_upstream_write_depth(seed):
    depth = np.random.default_rng(seed).random((40, 50), dtype=np.float32) * np.float32(300 + seed) + 20
    for bits in (1, 2):
        out = imaging.normalise(depth, bits)
        np.testing.assert_array_equal(out, upstream.write_depth_values(depth, bits))
        assert out.min() == 0 and out.max() >= (1 << (8 * bits)) - 2  # float32: upstream's max is 255 or 254


@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (700, 500), (1031, 257)])  # one block to several, ragged end
def test_normalise_in_blocks_is_upstream_write_depth(shape):
    depth = np.random.default_rng(shape[0]).standard_normal(shape, dtype=np.float32) * 40 + 3
    depth[shape[0] // 2, shape[1] // 2] = 1e4  # the extreme in a middle block: the min and max span all blocks
    for bits in (1, 2):
        np.testing.assert_array_equal(imaging.normalise(depth, bits), upstream.write_depth_values(depth, bits))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_in_a_late_block_is_zeroed(bad):
    depth = np.random.default_rng(9).random((800, 400), dtype=np.float32)
    depth[-1, -1] = bad
    np.testing.assert_array_equal(imaging.normalise(depth, 1), upstream.write_depth_values(depth, 1))


@pytest.mark.parametrize("bad", [None, np.nan, np.inf])
def test_normalise_with_the_range_measured_upstream_of_it_is_still_upstream_write_depth(bad):
    depth = np.random.default_rng(4).standard_normal((300, 500), dtype=np.float32) * 7 + 2
    if bad is not None:
        depth[100, 200] = bad
    depth_range = (float(depth.min()), float(depth.max()))  # what preprocess.resize_with_range measures
    for bits in (1, 2):
        ours = imaging.normalise(depth, bits, depth_range=depth_range)
        np.testing.assert_array_equal(ours, upstream.write_depth_values(depth, bits))


def test_normalise_handles_flat_and_non_finite_maps():
    assert not imaging.normalise(np.full((4, 4), 3.0, np.float32), 1).any()
    depth = np.array([[np.nan, 1.0], [np.inf, 3.0]], np.float32)
    assert imaging.normalise(depth, 1).tolist() == [[0, 85], [0, 255]]


@pytest.mark.parametrize("colormap", COLORMAPS)
def test_indexed_heatmap_decodes_to_the_recorded_applycolormap(colormap):
    """Decoded by Pillow, the heatmap is upstream's cv2.applyColorMap of write_depth's levels (recorded colours)."""
    depth = np.random.default_rng(4).random((37, 53), dtype=np.float32) * 9
    png = imaging.heatmap_png(imaging.normalise(depth, 1), colormap, 1)
    bgr = recorded_upstream()[f"colormap/{colormap}"][upstream.write_depth_values(depth, 1)]
    with Image.open(io.BytesIO(png)) as img:
        np.testing.assert_array_equal(np.asarray(img.convert("RGB")), bgr[..., ::-1])


def test_gray_and_16_bit_pngs_decode_in_pillow_to_upstreams_levels():
    depth = np.random.default_rng(5).random((20, 30), dtype=np.float32)
    with Image.open(io.BytesIO(imaging.heatmap_png(imaging.normalise(depth, 1), "gray", 1))) as img:
        np.testing.assert_array_equal(np.asarray(img), upstream.write_depth_values(depth, 1))
    with Image.open(io.BytesIO(imaging.depth_png16(imaging.normalise(depth, 2), 1))) as img:
        back = np.asarray(img).astype(np.uint16)
    assert back.shape == (20, 30) and back.max() == 65535 and back.min() == 0
    np.testing.assert_array_equal(back, upstream.write_depth_values(depth, 2))


def test_smooth_depth_deflates_smaller_than_unfiltered():
    """The Up filter pays on depth maps (smooth rows): smaller than Pillow's unfiltered indexed PNG."""
    y, x = np.mgrid[0:480, 0:640].astype(np.float32)
    levels = imaging.normalise(np.sin(x / 90) + np.cos(y / 70) + x / 300, 1)
    ours = imaging.heatmap_png(levels, "inferno", 1)
    img = Image.frombytes("P", (640, 480), levels.tobytes())
    img.putpalette(PALETTES["inferno"])
    pillows = io.BytesIO()
    img.save(pillows, "PNG", compress_level=1)
    assert len(ours) < 0.8 * len(pillows.getvalue())


def test_pfm_round_trip_and_header():
    depth = np.random.default_rng(2).random((7, 5), dtype=np.float32)
    data = imaging.pfm_bytes(depth)
    assert data.startswith(b"Pf\n5 7\n-1.000000\n") and len(data) == len(b"Pf\n5 7\n-1.000000\n") + 7 * 5 * 4
    np.testing.assert_array_equal(read_pfm(data), depth)
