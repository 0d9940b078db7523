"""Preprocessing and the end-to-end depth equal upstream's (float64 transform, torch forward, torch bicubic)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bake import upstream_reference as upstream
from handler import imaging, preprocess
from support import encode, scene

SIZES = [(640, 480), (480, 640), (1920, 1080), (4032, 3024), (100, 100), (300, 40), (257, 255), (1000, 999)]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_net_input_size_is_upstreams(width, height):
    assert preprocess.net_input_size(width, height) == upstream.get_size(width, height)


def test_net_input_size_examples_from_the_contract():
    assert preprocess.net_input_size(640, 480) == (256, 192)
    assert preprocess.net_input_size(10, 10) == (256, 256)  # small images are scaled up
    assert preprocess.net_input_size(4000, 100) == (256, 32)  # upstream would produce 0 rows and crash


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


@pytest.mark.parametrize(("width", "height"), [(4032, 3024), (1000, 2400), (640, 480)])
def test_net_input_of_a_decoded_picture_copies_only_the_rows_it_reads(width, height):
    """The core hands preprocessing the decoded picture: a large one gives up only the rows the taps read, and
    the network input is exactly the one of the whole array."""
    data = encode(scene(width, height, seed=2), "JPEG", quality=90)
    limits = {"max_bytes": 1 << 30, "max_pixels": 1 << 30}
    picture = imaging.open_image(data, **limits)
    ours = preprocess.to_net_input(picture)
    np.testing.assert_array_equal(ours, preprocess.to_net_input(imaging.open_image(data, **limits).array))
    assert (picture._array is None) == (height > 1000)  # shrunk 4x or more: never converted whole


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


def test_bands_hold_every_weight_of_the_dense_matrix():
    """The bands, laid side by side, are the full (dst, src) bicubic matrix: no tap is dropped at a band's edge."""
    for src, dst in [(192, 480), (256, 4032), (256, 100), (32, 3000)]:
        index, weights = preprocess.cubic_taps(src, dst)
        dense = np.zeros((dst, src), np.float32)
        np.add.at(dense, (np.arange(dst)[:, None], index), weights)
        banded = np.zeros_like(dense)
        for start, end, first, last, band in preprocess.cubic_bands(src, dst):
            banded[start:end, first:last] = band
        np.testing.assert_array_equal(banded, dense)


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
