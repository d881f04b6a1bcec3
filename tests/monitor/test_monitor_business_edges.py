"""Business metrics: the intervals are 95% unless asked otherwise (the bootstrap's percentiles 2.5 and
97.5 computed here from the same resamples), the level reaches every interval, and a verdict needs the
whole interval strictly past the baseline (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from rlhfops.measures.intervals import bootstrap_interval, t_interval, wilson_interval
from rlhfops.monitor.business import compare_to_baseline

X = np.array([3.0, 7.5, 1.0, 12.0, 4.5, 6.0, 2.5, 9.0, 5.0, 30.0, 4.0, 8.0])


def _boot_reference(x, lo_q, hi_q, n=2000, seed=0):
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n, len(x)))
    means = x[idx].mean(axis=1)
    return float(np.quantile(means, lo_q)), float(np.quantile(means, hi_q))


def test_bootstrap_default_is_the_95_percent_percentile_interval():
    assert bootstrap_interval(X) == pytest.approx(_boot_reference(X, 0.025, 0.975), abs=1e-12)
    lo90, hi90 = bootstrap_interval(X, confidence=0.90)
    assert (lo90, hi90) == pytest.approx(_boot_reference(X, 0.05, 0.95), abs=1e-12)
    lo, hi = bootstrap_interval(X)
    assert lo < lo90 and hi > hi90  # 95% is wider than 90%
    assert bootstrap_interval(X, seed=1) != bootstrap_interval(X)
    assert bootstrap_interval(X, n_resamples=500) == pytest.approx(_boot_reference(X, 0.025, 0.975, n=500))


def test_t_and_wilson_defaults_are_95_percent():
    half = stats.t.ppf(0.975, len(X) - 1) * X.std(ddof=1) / np.sqrt(len(X))
    assert t_interval(X) == pytest.approx((X.mean() - half, X.mean() + half), rel=1e-12)
    z = stats.norm.ppf(0.975)
    p, n = 7 / 20, 20
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert wilson_interval(7, 20) == pytest.approx((centre - h, centre + h), rel=1e-12)


def _records(minutes):
    return [{"review_minutes": m, "task_completed": True, "client_flag": False} for m in minutes]


@pytest.mark.parametrize("method", ["t", "bootstrap"])
def test_compare_passes_the_level_and_method_through(method):
    (row,) = [
        m
        for m in compare_to_baseline({}, _records(X), method=method)
        if m.name == "review_minutes_per_output"
    ]
    expected = t_interval(X) if method == "t" else bootstrap_interval(X)
    assert (row.ci_low, row.ci_high) == pytest.approx(expected, abs=1e-12)
    (row90,) = [
        m
        for m in compare_to_baseline({}, _records(X), confidence=0.9, method=method)
        if m.name == "review_minutes_per_output"
    ]
    expected90 = t_interval(X, 0.9) if method == "t" else bootstrap_interval(X, 0.9)
    assert (row90.ci_low, row90.ci_high) == pytest.approx(expected90, abs=1e-12)


def test_verdict_needs_the_whole_interval_strictly_past_the_baseline():
    lo, hi = t_interval(X)

    def verdict(base):
        (row,) = [
            m
            for m in compare_to_baseline({"review_minutes_per_output": base}, _records(X))
            if m.name == "review_minutes_per_output"
        ]
        return row.better

    # fewer review minutes are better
    assert verdict(lo) is None and verdict(hi) is None  # the baseline on an interval end: undecided
    assert verdict(lo - 1e-9) is False  # production takes longer than the baseline
    assert verdict(hi + 1e-9) is True


def test_two_values_are_enough_for_an_interval_one_is_not():
    for fn in (bootstrap_interval, t_interval):
        lo, hi = fn(np.array([1.0, 3.0]))
        assert np.isfinite(lo) and np.isfinite(hi) and lo <= 2.0 <= hi
        assert all(np.isnan(v) for v in fn(np.array([1.0])))


def test_records_may_be_objects_as_well_as_dicts():
    from types import SimpleNamespace

    objs = [SimpleNamespace(review_minutes=m, task_completed=True, client_flag=False) for m in X]
    assert compare_to_baseline({}, objs) == compare_to_baseline({}, _records(X))
    rows = compare_to_baseline({}, [SimpleNamespace()])
    (row,) = [m for m in rows if m.name == "review_minutes_per_output"]
    assert row.n == 0  # a record without the field is not counted


def test_a_metric_without_records_keeps_its_baseline_and_nothing_else():
    rows = compare_to_baseline({"client_flag_rate": 0.05}, [{"review_minutes": 3.0}])
    (row,) = [m for m in rows if m.name == "client_flag_rate"]
    assert (row.baseline, row.current, row.ci_low, row.ci_high, row.better, row.n) == (
        0.05,
        None,
        None,
        None,
        None,
        0,
    )


def test_a_business_metric_is_immutable():
    import dataclasses

    (row, *_) = compare_to_baseline({}, _records(X))
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.better = True
