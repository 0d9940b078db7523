"""Preprocessing, resizing back and renderings against upstream's pipeline run live (OpenCV, torch, the baked model).

The unit tests check the same functions against values recorded from this reference (tests/unit/data/, made by
scripts/record_upstream.py); here the reference itself runs, on every size and the whole arrays, and the end-to-end
depth of the baked model is compared with the torch forward of the same checkpoint.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from bake import upstream_reference as upstream
from handler import imaging, preprocess
from localdev.upstream_record import record
from support import encode, recorded_upstream, scene

LIMITS = {"max_bytes": 50 * 1024 * 1024, "max_pixels": 50_000_000}


def decode(data: bytes, **overrides) -> np.ndarray:
    return imaging.open_image(data, **{**LIMITS, **overrides}).array


# ------------------------------------------------------------------------------------------------ preprocessing


# Both shrinking orders (rows first; columns first from 6x narrower), enlarging (small images), extreme aspects.
@pytest.mark.parametrize(
    ("width", "height"),
    [(640, 480), (333, 500), (64, 48), (1280, 720), (1920, 1080), (1080, 1920), (4032, 3024), (10, 10), (1200, 200)],
)
def test_net_input_equals_upstream_float64_transform(width, height):
    rgb = scene(width, height, seed=width)
    ours = preprocess.to_net_input(rgb)
    ref = upstream.small_transform(rgb)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    # normalised values span about [-2.1, 2.6]; float32 resizing stays within 1e-5 of float64
    assert np.max(np.abs(ours - ref)) < 1e-4


@pytest.mark.parametrize(
    ("width", "height"), [(640, 480), (1920, 1080), (4032, 3024), (100, 100), (257, 255), (300, 40), (7, 3)]
)
def test_resize_back_equals_torch_bicubic(width, height):
    """Enlarging and shrinking (an image smaller than the network's input), by the banded products."""
    pred = np.random.default_rng(3).random(preprocess.net_input_size(width, height)[::-1], dtype=np.float32) * 50
    ours = preprocess.resize_to(pred, width, height)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(pred)[None, None], size=(height, width), mode="bicubic", align_corners=False
    )[0, 0].numpy()
    assert ours.shape == (height, width) and ours.dtype == np.float32 and ours.flags.c_contiguous
    assert np.max(np.abs(ours - ref)) <= 2e-4 * np.ptp(ref)


@pytest.mark.parametrize(("width", "height"), [(640, 480), (375, 500)])
def test_end_to_end_depth_matches_the_torch_pipeline(estimator, torch_model, width, height):
    """ONNX path (bytes in, our preprocessing, ORT, cv2 bicubic) vs upstream run.py on the same pixels."""
    data = encode(scene(width, height, seed=5), "PNG")  # lossless so both sides see identical pixels
    ours = estimator.estimate(data).inverse_depth
    ref = upstream.predict(torch_model, scene(width, height, seed=5))
    assert ours.shape == ref.shape == (height, width)
    rel = np.max(np.abs(ours - ref)) / np.ptp(ref)
    assert rel < 2e-3, f"max error {rel:.2e} of the depth range"
    # and the rendered 8-bit map (what users see) is the same up to one grey level at a few pixels
    diff = np.abs(upstream.write_depth_values(ours, 1).astype(int) - upstream.write_depth_values(ref, 1))
    assert diff.max() <= 2 and (diff > 0).mean() < 0.05


# ------------------------------------------------------------------------------------------------ renderings


def test_16_bit_png_is_reduced_like_cv2_imread():
    gray16 = (np.arange(32 * 24, dtype=np.uint32).reshape(24, 32) * 85).astype(np.uint16)
    ok, buf = cv2.imencode(".png", gray16)
    out = decode(buf.tobytes())
    expected = cv2.imdecode(buf, cv2.IMREAD_COLOR)  # upstream's cv2.imread behaviour (BGR, 8-bit)
    np.testing.assert_array_equal(out, expected[..., ::-1])


def decode_png(data: bytes, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags)


def test_inferno_is_yellow_where_near():
    depth = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (8, 1))  # right side = nearest (largest)
    bgr = decode_png(imaging.heatmap_png(imaging.normalise(depth, 1), "inferno", 1), cv2.IMREAD_COLOR)
    near, far = bgr[4, -1], bgr[4, 0]
    assert near[2] > 200 and near[1] > 200 and near[0] < 180  # yellow-white (B low, G and R high)
    assert far.max() < 30  # black


@pytest.mark.parametrize("colormap", ["inferno", "magma", "plasma", "viridis", "turbo"])
def test_indexed_heatmap_decodes_to_upstreams_applycolormap(colormap):
    depth = np.random.default_rng(4).random((37, 53), dtype=np.float32) * 9
    png = imaging.heatmap_png(imaging.normalise(depth, 1), colormap, 1)
    code = getattr(cv2, f"COLORMAP_{colormap.upper()}")
    expected = cv2.applyColorMap(upstream.write_depth_values(depth, 1), code)
    np.testing.assert_array_equal(decode_png(png, cv2.IMREAD_COLOR), expected)


def test_gray_heatmap_is_the_8_bit_depth():
    depth = np.random.default_rng(5).random((20, 30), dtype=np.float32)
    png = imaging.heatmap_png(imaging.normalise(depth, 1), "gray", 1)
    np.testing.assert_array_equal(decode_png(png), upstream.write_depth_values(depth, 1))


def test_16_bit_depth_png_round_trips():
    depth = np.random.default_rng(1).random((30, 20), dtype=np.float32)
    back = decode_png(imaging.depth_png16(imaging.normalise(depth, 2), 1))
    assert back.dtype == np.uint16 and back.shape == (30, 20) and back.max() == 65535 and back.min() == 0
    np.testing.assert_array_equal(back, upstream.write_depth_values(depth, 2))


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (37, 53), (480, 640)])
@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_pngs_decode_to_their_levels_in_opencv_and_pillow(shape, level):
    """The Up-filtered, ISA-L-deflated PNGs: every decoder sees exactly the levels written, at every level."""
    depth = np.random.default_rng(level).random(shape, dtype=np.float32)
    depth[0, 0] = 0  # both extremes present, so the levels span 0..max
    levels8, levels16 = imaging.normalise(depth, 1), imaging.normalise(depth, 2)
    heat = imaging.heatmap_png(levels8, "inferno", level)
    gray = imaging.heatmap_png(levels8, "gray", level)
    deep = imaging.depth_png16(levels16, level)
    expected = cv2.applyColorMap(levels8, cv2.COLORMAP_INFERNO)
    np.testing.assert_array_equal(decode_png(heat, cv2.IMREAD_COLOR), expected)
    np.testing.assert_array_equal(decode_png(gray), levels8)
    np.testing.assert_array_equal(decode_png(deep), levels16)
    with Image.open(io.BytesIO(heat)) as img:
        assert img.mode == "P" and img.size == shape[::-1]
        np.testing.assert_array_equal(np.asarray(img.convert("RGB")), expected[:, :, ::-1])
    with Image.open(io.BytesIO(deep)) as img:
        np.testing.assert_array_equal(np.asarray(img).astype(np.uint16), levels16)


def test_the_unit_tests_recorded_values_are_upstreams_today():
    """tests/unit/data/upstream.npz is what scripts/record_upstream.py records now (the reference is unchanged)."""
    fresh, committed = record(), recorded_upstream()
    assert fresh.keys() == committed.keys()
    for name, values in fresh.items():
        np.testing.assert_array_equal(values, committed[name], err_msg=name)
