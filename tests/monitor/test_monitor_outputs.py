"""Output drift: Holm correction vs statsmodels, KS / proportion tests vs scipy / statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from rlhfops.errors import ConfigError, DataError
from rlhfops.monitor.outputs import bonferroni_adjust, holm_adjust, output_drift, two_proportion_test


def test_holm_hand_computed():
    # p sorted: 0.01 (x4) = 0.04, 0.02 (x3) = 0.06, 0.03 (x2) = 0.06, 0.04 (x1) -> max-accumulated 0.06
    p = np.array([0.03, 0.01, 0.04, 0.02])
    np.testing.assert_allclose(holm_adjust(p), [0.06, 0.04, 0.06, 0.06], rtol=1e-12)
    np.testing.assert_allclose(holm_adjust(np.array([0.5, 0.6])), [1.0, 1.0])
    assert holm_adjust(np.array([])).shape == (0,)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=12))
def test_holm_and_bonferroni_match_statsmodels(ps):
    p = np.array(ps)
    for ours, method in ((holm_adjust, "holm"), (bonferroni_adjust, "bonferroni")):
        ref = multipletests(p, alpha=0.05, method=method)
        np.testing.assert_allclose(ours(p), ref[1], rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(ours(p) < 0.05, ref[1] < 0.05)


def test_two_proportion_z_matches_statsmodels():
    rng = np.random.default_rng(0)
    ref, prod = rng.random(400) < 0.10, rng.random(300) < 0.18
    name, z, p = two_proportion_test(ref, prod)
    z_ref, p_ref = proportions_ztest([prod.sum(), ref.sum()], [300, 400])
    assert name == "two_proportion_z"
    assert z == pytest.approx(z_ref, rel=1e-10) and p == pytest.approx(p_ref, rel=1e-10)


def test_fisher_fallback_for_rare_flags():
    from scipy.stats import fisher_exact

    ref = np.zeros(40, dtype=bool)
    ref[:1] = True
    prod = np.zeros(30, dtype=bool)
    prod[:6] = True
    name, stat, p = two_proportion_test(ref, prod)
    res = fisher_exact([[1, 39], [6, 24]])
    assert name == "fisher_exact" and p == pytest.approx(res.pvalue, rel=1e-12)
    assert stat == pytest.approx(res.statistic, rel=1e-12)


def test_output_drift_flags_only_shifted_metrics():
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(0)
    reference = {
        "reward": rng.normal(0, 1, 500),
        "length": rng.poisson(120, 500).astype(float),
        "refusal": rng.random(500) < 0.05,
    }
    production = {
        "reward": rng.normal(0.6, 1, 400),  # shifted
        "length": rng.poisson(120, 400).astype(float),
        "refusal": rng.random(400) < 0.05,
        "only_in_prod": rng.normal(size=400),
    }
    res = output_drift(reference, production)
    assert [m.name for m in res] == ["reward", "length", "refusal"]
    by = {m.name: m for m in res}
    assert by["reward"].drifted and not by["length"].drifted and not by["refusal"].drifted
    ks = ks_2samp(reference["reward"], production["reward"])
    assert by["reward"].statistic == pytest.approx(ks.statistic) and by["reward"].p_value == pytest.approx(
        ks.pvalue
    )
    assert by["reward"].test == "ks_2samp" and by["refusal"].test in ("two_proportion_z", "fisher_exact")
    np.testing.assert_allclose([m.p_adjusted for m in res], holm_adjust(np.array([m.p_value for m in res])))
    assert by["refusal"].production_value == pytest.approx(production["refusal"].mean())


def test_correction_changes_the_verdict():
    # seed 7: metric b has raw p = 0.042 (a false alarm at 0.05); Holm over 3 metrics gives 2 x 0.042 > 0.05
    rng = np.random.default_rng(7)
    ref = {"a": rng.normal(size=300), "b": rng.normal(size=300), "c": rng.normal(size=300)}
    prod = {"a": rng.normal(size=300) + 0.2, "b": rng.normal(size=300), "c": rng.normal(size=300)}
    raw = output_drift(ref, prod, correction="none")
    holm = output_drift(ref, prod, correction="holm")
    assert [m.drifted for m in raw] == [True, True, False]
    assert [m.drifted for m in holm] == [True, False, False]
    assert holm[1].p_adjusted == pytest.approx(2 * raw[1].p_value, rel=1e-12)


def test_output_drift_errors():
    with pytest.raises(ConfigError, match="correction"):
        output_drift({"a": np.ones(3)}, {"a": np.ones(3)}, correction="fdr")
    with pytest.raises(DataError, match="no metric on both sides"):
        output_drift({"a": np.ones(3)}, {"b": np.ones(3)})
    with pytest.raises(DataError, match="boolean on one side"):
        output_drift({"a": np.array([True, False])}, {"a": np.array([1.0, 0.0])})
    with pytest.raises(DataError, match="NaN"):
        output_drift({"a": np.array([1.0, np.nan])}, {"a": np.array([1.0, 0.0])})
