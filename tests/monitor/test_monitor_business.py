"""Business metrics vs the spec baseline: intervals against statsmodels / scipy, verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from rlhfops.errors import ConfigError
from rlhfops.measures.intervals import bootstrap_interval, t_interval, wilson_interval
from rlhfops.monitor.business import compare_to_baseline


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (47, 120), (999, 1000)])
def test_wilson_matches_statsmodels(k, n):
    lo, hi = wilson_interval(k, n)
    ref = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert lo == pytest.approx(ref[0], rel=1e-9, abs=1e-12) and hi == pytest.approx(ref[1], rel=1e-9)


def test_wilson_hand_computed():
    # k=3, n=10, z=1.959964: centre = (0.3 + z^2/20) / (1 + z^2/10);
    # half = z sqrt(0.021 + z^2/400) / (1 + z^2/10)
    z = 1.959963984540054
    centre = (0.3 + z * z / 20) / (1 + z * z / 10)
    half = z * np.sqrt(0.3 * 0.7 / 10 + z * z / 400) / (1 + z * z / 10)
    assert wilson_interval(3, 10) == pytest.approx((centre - half, centre + half), rel=1e-12)


def test_t_interval_matches_scipy_and_bootstrap_is_close():
    x = np.random.default_rng(0).gamma(2.0, 2.0, 200)
    ref = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert t_interval(x) == pytest.approx(ref, rel=1e-10)
    lo, hi = bootstrap_interval(x, seed=0)
    assert lo == pytest.approx(ref[0], rel=0.05) and hi == pytest.approx(ref[1], rel=0.05)


def _records(n, completed, minutes, flagged, rng):
    return [
        {
            "task_completed": bool(rng.random() < completed),
            "review_minutes": float(rng.exponential(minutes)),
            "client_flag": bool(rng.random() < flagged),
        }
        for _ in range(n)
    ]


def test_compare_to_baseline_verdicts():
    rng = np.random.default_rng(0)
    baseline = {"task_completion_rate": 0.70, "review_minutes_per_output": 5.0, "client_flag_rate": 0.05}
    better = compare_to_baseline(baseline, _records(800, 0.85, 3.0, 0.01, rng))
    assert [m.name for m in better] == [
        "task_completion_rate",
        "review_minutes_per_output",
        "client_flag_rate",
    ]
    assert [m.better for m in better] == [True, True, True]
    worse = compare_to_baseline(baseline, _records(800, 0.55, 7.0, 0.12, rng))
    assert [m.better for m in worse] == [False, False, False]
    same = compare_to_baseline(baseline, _records(100, 0.70, 5.0, 0.05, np.random.default_rng(1)))
    assert all(m.better is None for m in same)
    for m in better:
        assert m.ci_low <= m.current <= m.ci_high and m.n == 800


def test_compare_missing_fields_and_baseline():
    recs = [{"task_completed": True, "review_minutes": None, "client_flag": None}] * 5
    out = {m.name: m for m in compare_to_baseline({}, recs)}
    assert out["task_completion_rate"].current == 1.0 and out["task_completion_rate"].better is None
    assert out["review_minutes_per_output"].n == 0 and out["review_minutes_per_output"].current is None
    with pytest.raises(ConfigError, match="unknown metric"):
        compare_to_baseline({"completion": 0.5}, recs)
