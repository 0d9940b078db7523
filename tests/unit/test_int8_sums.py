"""Which CPUs an int8 error measured at bake time holds on: ONNX Runtime's uint8 x int8 kernels add pairs of
products in 16 bits, saturating, on x86 without VNNI, and exactly with VNNI or on Arm."""

from __future__ import annotations

import pytest

from handler import contract

AVX2 = ["avx", "avx2", "f16c", "fma", "sse4_1", "sse4_2"]
AVX512 = [*AVX2, "avx512bw", "avx512dq", "avx512f", "avx512vl"]


@pytest.mark.parametrize(
    ("features", "sums"),
    [
        (AVX2, "saturating"),
        (AVX512, "saturating"),  # AVX-512 without VNNI still sums in 16 bits
        ([*AVX512, "avx512_vnni"], "exact"),
        ([*AVX2, "avx_vnni"], "exact"),
        (["asimd", "asimddp", "asimdhp"], "exact"),  # Arm
        ([], "unknown"),  # /proc/cpuinfo unreadable
    ],
)
def test_int8_sums_by_vector_features(features, sums):
    assert contract.int8_sums(features) == sums  # 8-bit weights


@pytest.mark.parametrize("features", [AVX2, AVX512, [*AVX512, "avx512_vnni"], ["asimd"], []])
def test_7_bit_weights_sum_exactly_on_every_cpu(features):
    """2 x 255 x 64 < 32 767: a pair of uint8 x 7-bit products never saturates 16 bits."""
    assert contract.int8_sums(features, weight_bits=7) == "exact"


@pytest.mark.parametrize(
    ("measured", "here", "holds"),
    [
        ("saturating", "saturating", True),
        ("saturating", "exact", True),
        ("saturating", "unknown", True),
        ("exact", "exact", True),
        ("exact", "saturating", False),  # measured without saturation, served with it
        ("exact", "unknown", False),
        ("unknown", "exact", True),
        ("unknown", "saturating", False),  # a manifest that does not say
    ],
)
def test_an_int8_error_holds_where_sums_are_exact_or_it_was_measured_saturating(measured, here, holds):
    assert contract.int8_error_holds(measured, here) is holds


def test_a_cpuinfo_file_reads_as_one_kind(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse4_1 sse4_2 avx avx2 fma avx512f avx512bw\n")
    assert contract.int8_sums(contract.cpu_features(cpuinfo)) == "saturating"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse4_1 avx2 avx512f avx512_vnni\n")
    assert contract.int8_sums(contract.cpu_features(cpuinfo)) == "exact"


def test_a_cpuinfo_file_with_bytes_that_are_not_utf8_still_gives_its_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_bytes(b"model name\t: CPU \xff\xfe\nflags\t\t: fpu sse4_1 avx2 avx512_vnni\n")
    assert contract.cpu_features(cpuinfo) == ["avx2", "avx512_vnni", "sse4_1"]
