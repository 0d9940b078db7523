"""Preprocessing and resizing back equal upstream's: its sizes computed live, its float64 transform (OpenCV) and
torch's bicubic as recorded (tests/unit/data/upstream.npz); tests/functional/test_upstream_parity.py runs them live."""

from __future__ import annotations

import numpy as np
import pytest

from bake import upstream_reference as upstream
from handler import imaging, preprocess
from localdev.upstream_record import RESIZE_SIZES, TRANSFORM_SIZES, net_sized_map
from support import encode, recorded_upstream, scene

SIZES = [(640, 480), (480, 640), (1920, 1080), (4032, 3024), (100, 100), (300, 40), (257, 255), (1000, 999)]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_net_input_size_is_upstreams(width, height):
    assert preprocess.net_input_size(width, height) == upstream.get_size(width, height)


def test_net_input_size_examples_from_the_contract():
    assert preprocess.net_input_size(640, 480) == (256, 192)
    assert preprocess.net_input_size(10, 10) == (256, 256)  # small images are scaled up
    assert preprocess.net_input_size(4000, 100) == (256, 32)  # upstream would produce 0 rows and crash


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


@pytest.fixture(scope="module")
def upstream_values() -> dict[str, np.ndarray]:
    return recorded_upstream()


# Both shrinking orders (rows first; columns first from 6x narrower), enlarging (small images), extreme aspects.
@pytest.mark.parametrize(("width", "height"), TRANSFORM_SIZES)
def test_net_input_equals_the_recorded_upstream_transform(upstream_values, width, height):
    ours = preprocess.to_net_input(scene(width, height, seed=width))
    recorded = {part: upstream_values[f"transform/{width}x{height}/{part}"] for part in ("shape", "index", "value")}
    assert ours.shape == tuple(recorded["shape"]) and ours.dtype == np.float32
    # normalised values span about [-2.1, 2.6]; float32 resizing stays within 1e-5 of float64
    assert np.max(np.abs(ours.reshape(-1)[recorded["index"]] - recorded["value"])) < 1e-4


@pytest.mark.parametrize(("width", "height"), RESIZE_SIZES)
def test_resize_back_equals_the_recorded_torch_bicubic(upstream_values, width, height):
    """Enlarging and shrinking (an image smaller than the network's input), by the banded products."""
    ours = preprocess.resize_to(net_sized_map(width, height), width, height)
    index, value, ptp = (upstream_values[f"resize/{width}x{height}/{part}"] for part in ("index", "value", "ptp"))
    assert ours.shape == (height, width) and ours.dtype == np.float32 and ours.flags.c_contiguous
    assert np.max(np.abs(ours.reshape(-1)[index] - value)) <= 2e-4 * ptp


@pytest.mark.parametrize(("width", "height"), [(640, 480), (97, 61)])
def test_the_range_measured_while_resizing_is_the_resized_maps_own(width, height):
    prediction = net_sized_map(width, height)
    out, (lo, hi) = preprocess.resize_with_range(prediction, width, height)
    np.testing.assert_array_equal(out, preprocess.resize_to(prediction, width, height))
    assert (lo, hi) == (out.min(), out.max())
    prediction[3, 5] = np.nan  # NaN spreads to the outputs its taps reach, and to the range, as NumPy's min gives it
    assert all(np.isnan(v) for v in preprocess.resize_with_range(prediction, width, height)[1])
