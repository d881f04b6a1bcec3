"""Side-by-side win-rate intervals at their edges: no comparison is an error (not a division by zero), and
the default level is 95% (issue 17)."""

from __future__ import annotations

import math

import pytest

from rlhfops.evaluate.stats import win_rate_summary
from rlhfops.measures.intervals import half_tie_interval


def test_no_comparison_is_a_value_error():
    with pytest.raises(ValueError, match="no comparisons"):
        half_tie_interval(0, 0, 0)
    assert half_tie_interval(1, 0, 0) == (1.0, 1.0, 1.0)  # one comparison is enough


def test_default_level_is_95_percent():
    w, t, l_ = 30, 10, 20
    n = w + t + l_
    s = (w + t / 2) / n
    var = (w / n + t / n / 4 - s * s) / n
    half = 1.959963984540054 * math.sqrt(var)
    assert half_tie_interval(w, t, l_) == pytest.approx((s, s - half, s + half), rel=1e-12)
    summary = win_rate_summary(w, t, l_, judge="j")
    assert summary["confidence"] == 0.95
    assert (summary["ci_low"], summary["ci_high"]) == pytest.approx((s - half, s + half), rel=1e-12)


def test_win_share_is_wins_over_all_comparisons_with_its_wilson_interval():
    w, t, l_ = 3, 2, 5
    n = w + t + l_
    z = 1.959963984540054
    p = w / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    share = win_rate_summary(w, t, l_, judge="j")["win_share"]
    assert share["rate"] == pytest.approx(0.3, rel=1e-12)
    assert (share["ci_low"], share["ci_high"]) == pytest.approx((centre - half, centre + half), rel=1e-9)
