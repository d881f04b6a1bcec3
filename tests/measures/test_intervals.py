"""Intervals against values computed by hand (the arithmetic is written out next to each number)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlhfops.errors import DataError
from rlhfops.measures.intervals import bootstrap_interval, half_tie_interval, t_interval, wilson_interval

Z95 = 1.959963984540054  # z_{0.975}
Z2 = Z95 * Z95  # 3.841458820694124


def test_wilson_closed_forms_at_the_edges():
    # k = 0: p = 0, centre = half = (z^2/2n) / (1 + z^2/n), so low = 0, high = (z^2/n) / (1 + z^2/n)
    hi = (Z2 / 10) / (1 + Z2 / 10)
    assert hi == pytest.approx(0.2775327998628892, rel=1e-12)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775327998628892, rel=1e-12))
    # k = n: the mirror image; the upper end is clipped to at most 1
    lo, hi10 = wilson_interval(10, 10)
    assert lo == pytest.approx(1 - 0.2775327998628892, rel=1e-12) and 1 - 1e-12 < hi10 <= 1.0


def test_wilson_worked_example_and_fractional_successes():
    # 8 / 10 (Newcombe 1998, Stat. Med. 17, table I: 0.4902 to 0.9433):
    # denom = 1 + 0.38414588 = 1.38414588; centre = (0.8 + 0.19207294) / denom = 0.71674016;
    # half = z sqrt(0.016 + 0.00960365) / denom = 1.95996398 * 0.16000... / denom = 0.22657769
    lo, hi = wilson_interval(8, 10)
    assert (lo, hi) == (
        pytest.approx(0.49016247153664, rel=1e-10),
        pytest.approx(0.94331784854562, rel=1e-10),
    )
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    # ties counted as half a win: 2.5 / 5 is symmetric about 0.5
    lo, hi = wilson_interval(2.5, 5)
    assert lo + hi == pytest.approx(1.0, rel=1e-12)
    half = Z95 * math.sqrt(0.25 / 5 + Z2 / 100) / (1 + Z2 / 5)
    assert hi == pytest.approx(0.5 + half, rel=1e-12)


def test_wilson_confidence_and_no_data():
    # 90%: z = 1.6448536269514722; 1 / 2 is symmetric about 0.5
    z = 1.6448536269514722
    half = z * math.sqrt(0.25 / 2 + z * z / 16) / (1 + z * z / 2)
    assert wilson_interval(1, 2, 0.9) == (
        pytest.approx(0.5 - half, rel=1e-12),
        pytest.approx(0.5 + half, rel=1e-12),
    )
    with pytest.raises(DataError, match="n must be > 0"):
        wilson_interval(0, 0)
    assert wilson_interval(1, 1)[0] > 0  # n = 1 is enough


def test_t_interval_by_hand():
    # [1, 2, 3, 4]: mean 2.5, s = sqrt(5/3) = 1.2909944, t_{0.975, 3} = 3.182446305284263
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2
    assert t_interval(np.array([1.0, 2.0, 3.0, 4.0])) == (
        pytest.approx(2.5 - half, rel=1e-12),
        pytest.approx(2.5 + half, rel=1e-12),
    )
    assert all(math.isnan(v) for v in t_interval(np.array([1.0])))
    assert t_interval(np.array([1.0, 1.0])) == (1.0, 1.0)  # n = 2 is enough


def test_bootstrap_interval_by_hand():
    # default_rng(0).integers(0, 3, (4, 3)) = [[2,1,1], [0,0,0], [0,0,0], [2,1,2]] -> resample means
    # 7/3, 1, 1, 8/3; sorted [1, 1, 7/3, 8/3]; quantile 0.025 at position 0.075 -> 1,
    # quantile 0.975 at position 2.925 -> 7/3 + 0.925 * (8/3 - 7/3) = 2.6416667
    lo, hi = bootstrap_interval(np.array([1.0, 2.0, 3.0]), n_resamples=4, seed=0)
    assert lo == pytest.approx(1.0, rel=1e-12) and hi == pytest.approx(7 / 3 + 0.925 / 3, rel=1e-12)
    assert all(math.isnan(v) for v in bootstrap_interval(np.array([5.0])))


def test_half_tie_interval_by_hand():
    # W=3, T=2, L=1: s = (3 + 1) / 6 = 2/3; Var = (1/2 + (1/3)/4 - 4/9) / 6 = 5/216
    s, lo, hi = half_tie_interval(3, 2, 1)
    half = Z95 * math.sqrt(5 / 216)
    assert s == pytest.approx(2 / 3, rel=1e-12)
    assert (lo, hi) == (pytest.approx(2 / 3 - half, rel=1e-12), pytest.approx(2 / 3 + half, rel=1e-12))
    assert half_tie_interval(1, 0, 0) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="no comparisons"):
        half_tie_interval(0, 0, 0)


def test_wilson_is_exactly_0_and_1_at_the_ends_despite_rounding():
    # the formula's centre - half at p = 0 is 5.6e-17 for n = 3 in floating point, centre + half at p = 1
    # is 0.9999999999999999 for n = 10: the ends are set exactly
    assert wilson_interval(0, 3)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    # below n the upper end is clipped too: 1.0000000000000002 unclipped for 7 - 1e-12 of 7
    assert wilson_interval(7 - 1e-12, 7)[1] == 1.0


def test_half_tie_interval_is_clipped_to_1():
    s, lo, hi = half_tie_interval(1, 1, 0)  # s = 0.75, s + z sqrt(Var) = 1.096
    assert s == 0.75 and hi == 1.0 and lo == pytest.approx(0.75 - 1.959963984540054 * (0.0625 / 2) ** 0.5)


def test_float32_values_are_summarised_in_float64():
    x32 = np.array([0.1, 0.7, 1e4 + 0.3, 2.9, 5.5], dtype=np.float32)
    x64 = x32.astype(np.float64)
    assert t_interval(x32) == t_interval(x64)
    assert bootstrap_interval(x32) == bootstrap_interval(x64)


def test_the_bootstrap_draws_2000_resamples_by_default():
    x = np.array([0.3, 1.2, 2.0, 4.1, 0.7, 3.3])
    assert bootstrap_interval(x) == bootstrap_interval(x, n_resamples=2000, seed=0)
