"""Drift statistics on synthetic matrices: hand-written references, invariances, decisions."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from itertools import combinations

import numpy as np
import pytest

from rlhfops.errors import ConfigError, DataError
from rlhfops.monitor.drift import (
    DriftConfig,
    _mmd2_for_labels,
    domain_classifier_auc,
    input_drift,
    kernel_matrix,
    median_bandwidth,
    mmd2_unbiased,
    mmd_permutation_test,
    nearest_distances,
    squared_distances,
    windowed_drift,
)


def _loop_mmd2(X, Y, sigma):
    """MMD^2_u written out term by term (Gretton et al. 2012, eq. 3)."""

    def k(a, b):
        return math.exp(-sum((ai - bi) ** 2 for ai, bi in zip(a, b, strict=True)) / (2 * sigma * sigma))

    n, m = len(X), len(Y)
    xx = sum(k(X[i], X[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(Y[i], Y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(X[i], Y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_mmd2_unbiased_matches_hand_written_formula():
    X = [[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]
    Y = [[1.0, 1.0], [3.0, 0.0], [0.5, 0.5], [2.0, 2.0]]
    Z = np.array(X + Y)
    sigma = 1.3
    K = kernel_matrix(squared_distances(Z, Z), "rbf", sigma)
    got = mmd2_unbiased(K, 3)
    assert got == pytest.approx(_loop_mmd2(X, Y, sigma), rel=1e-10)


def test_vectorised_labelings_equal_direct_formula():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(11, 4))
    K = kernel_matrix(squared_distances(Z, Z), "rbf", 2.0)
    Kz = K.copy()
    np.fill_diagonal(Kz, 0.0)
    n = 5
    perms = [rng.permutation(11) for _ in range(6)]
    A = np.zeros((6, 11))
    for b, perm in enumerate(perms):
        A[b, perm[:n]] = 1.0
    got = _mmd2_for_labels(Kz, A, n)
    for b, perm in enumerate(perms):
        order = np.r_[perm[:n], perm[n:]]
        ref = mmd2_unbiased(K[np.ix_(order, order)], n)
        assert got[b] == pytest.approx(ref, rel=1e-10, abs=1e-14)


def test_median_bandwidth_is_median_pairwise_distance():
    Z = np.array([[0.0], [1.0], [3.0], [7.0]])
    dists = sorted(abs(a - b) for a, b in combinations([0.0, 1.0, 3.0, 7.0], 2))  # 1,2,3,4,6,7
    assert median_bandwidth(squared_distances(Z, Z)) == pytest.approx((dists[2] + dists[3]) / 2, rel=1e-12)


def test_permutation_p_value_exact_on_tiny_case():
    # n = m = 2 -> 6 labelings; with all of them as "permutations" p is at least 1/(1+P).
    X = np.array([[0.0], [0.1]])
    Y = np.array([[5.0], [5.1]])
    res = mmd_permutation_test(X, Y, n_permutations=400, bandwidth=1.0, seed=1)
    assert res.statistic == pytest.approx(_loop_mmd2(X.tolist(), Y.tolist(), 1.0), rel=1e-10)
    # the observed labeling (or its mirror) is the max: 2 of 6 labelings reach it -> p ~ 1/3
    assert res.p_value == pytest.approx(1 / 3, abs=0.07)


def test_mmd_detects_mean_shift_and_is_calibrated_under_null():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 8))
    shifted = mmd_permutation_test(X, rng.normal(size=(150, 8)) + 0.5, n_permutations=99, seed=0)
    assert shifted.p_value == pytest.approx(1 / 100)
    ps = [
        mmd_permutation_test(
            rng.normal(size=(60, 8)), rng.normal(size=(60, 8)), n_permutations=99, seed=s
        ).p_value
        for s in range(40)
    ]
    # under H0 the p-value is ~uniform: mean near 0.5, rejection rate near alpha
    assert 0.35 < np.mean(ps) < 0.65
    assert np.mean(np.array(ps) < 0.05) <= 0.15


def test_mmd_subsampling_and_errors():
    rng = np.random.default_rng(0)
    res = mmd_permutation_test(rng.normal(size=(500, 3)), rng.normal(size=(40, 3)), 50, max_per_side=100)
    assert (res.n_x, res.n_y) == (100, 40)
    with pytest.raises(ConfigError, match="kernel"):
        mmd_permutation_test(rng.normal(size=(5, 2)), rng.normal(size=(5, 2)), kernel="cosine")
    with pytest.raises(DataError, match="same D"):
        mmd_permutation_test(rng.normal(size=(5, 2)), rng.normal(size=(5, 3)))
    with pytest.raises(DataError, match="NaN"):
        mmd_permutation_test(np.full((5, 2), np.nan), rng.normal(size=(5, 2)))


def test_domain_classifier_auc_separable_and_null():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    far = domain_classifier_auc(X, rng.normal(size=(200, 5)) + 3.0, seed=0)
    assert far.auc > 0.99 and far.drift
    assert far.per_sample_scores.shape == (400,)
    labels = np.r_[np.zeros(200), np.ones(200)]
    assert roc_auc_score(labels, far.per_sample_scores) == pytest.approx(far.auc, rel=1e-12)
    same = domain_classifier_auc(X, rng.normal(size=(200, 5)), seed=0)
    assert same.auc < 0.6
    # subsampled: every row still scored
    sub = domain_classifier_auc(X, rng.normal(size=(300, 5)) + 3.0, max_per_side=50)
    assert sub.per_sample_scores.shape == (500,) and sub.per_sample_scores[200:].min() > 0.5


def test_nearest_distances_brute_force():
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(7, 3)), rng.normal(size=(9, 3))
    ref = np.array([min(np.linalg.norm(a - b) for b in B) for a in A])
    np.testing.assert_allclose(nearest_distances(A, B, chunk=3), ref, rtol=1e-6)
    loo = np.array([min(np.linalg.norm(B[i] - B[j]) for j in range(9) if j != i) for i in range(9)])
    np.testing.assert_allclose(nearest_distances(B, B, exclude_self=True, chunk=4), loo, rtol=1e-6)


def _blobs(rng, centre, n, d=6, scale=0.3):
    return centre + scale * rng.normal(size=(n, d))


def test_input_drift_finds_the_new_cluster():
    rng = np.random.default_rng(0)
    train = np.concatenate([_blobs(rng, np.eye(6)[0] * 3, 200), _blobs(rng, np.eye(6)[1] * 3, 200)])
    prod_old = np.concatenate([_blobs(rng, np.eye(6)[0] * 3, 100), _blobs(rng, np.eye(6)[1] * 3, 100)])
    new = _blobs(rng, np.eye(6)[2] * 3, 60)
    prod = np.concatenate([prod_old, new])
    rep = input_drift(train, prod)
    assert rep.drifted and rep.mmd.p_value < 0.05 and rep.auc.auc > 0.55
    assert len(rep.new_clusters) == 1
    c = rep.new_clusters[0]
    assert set(c.members) >= set(range(200, 260)) - set(range(200, 203))  # nearly all planted rows
    assert all(i >= 200 for i in c.centroid_examples)
    assert c.share == pytest.approx(c.size / 260)
    assert set(rep.shifted_indices[:50]) <= set(range(200, 260))
    assert "drifted" in rep.evidence
    quiet = input_drift(train, prod_old)
    assert not quiet.drifted and quiet.new_clusters == []


def test_decision_rules():
    # exactly one detector fires (a change of spread: the kernel test sees it, a linear classifier
    # cannot), so "and" and "or" must differ; tests/monitor/test_monitor_drift_rule.py has the other side
    rng = np.random.default_rng(3)
    train = rng.normal(size=(150, 4))
    prod = rng.normal(size=(150, 4)) * 3.0
    reports = {
        rule: input_drift(train, prod, DriftConfig(rule=rule, n_permutations=49, auc_threshold=0.6))
        for rule in ("and", "or", "mmd", "auc")
    }
    mmd_fires = reports["mmd"].mmd.p_value < 0.05
    auc_fires = reports["auc"].auc.auc > 0.6
    assert mmd_fires and not auc_fires
    assert reports["and"].drifted == (mmd_fires and auc_fires)
    assert reports["or"].drifted == (mmd_fires or auc_fires)
    assert reports["mmd"].drifted == mmd_fires and reports["auc"].drifted == auc_fires


def test_windowed_drift_by_count_and_time():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(200, 4))
    prod = np.concatenate([rng.normal(size=(100, 4)), rng.normal(size=(100, 4)) + 2.0])
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    times = [t0 + timedelta(hours=i) for i in range(200)]
    # shuffle the rows; windowed_drift must sort them by time
    perm = rng.permutation(200)
    wins = windowed_drift(train, prod[perm], [times[i] for i in perm], window=timedelta(hours=100))
    assert [(w.start, w.end) for w in wins] == [(0, 100), (100, 200)]
    assert [w.report.drifted for w in wins] == [False, True]
    assert wins[1].start_time == times[100] and wins[1].end_time == times[199]
    # indices in the report refer to rows of the (shuffled) input
    assert all(perm[i] >= 100 for i in wins[1].report.shifted_indices)
    by_count = windowed_drift(train, prod, window=100, step=50)
    assert [(w.start, w.end) for w in by_count] == [(0, 100), (50, 150), (100, 200), (150, 200)]
    with pytest.raises(ConfigError, match="unknown setting"):
        input_drift(train, prod, alpah=0.1)
    with pytest.raises(ConfigError, match="alpha=2"):
        input_drift(train, prod, alpha=2)
    strict = input_drift(train, prod[100:], alpha=0.001, n_permutations=999)
    assert strict.alpha == 0.001 and strict.mmd.n_permutations == 999
    with pytest.raises(ConfigError, match="times"):
        windowed_drift(train, prod, window=timedelta(hours=1))
