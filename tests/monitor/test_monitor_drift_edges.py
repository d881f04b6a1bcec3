"""monitor/drift.py at its edges (issue 17: survivors of the full mutation run): input checks on both
sides, the bandwidth fallback, the window size and time-window bounds, the report's counts and order,
immutable results. Small arrays, a few permutations: each test runs in well under a second."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from rlhfops.errors import ConfigError, DataError
from rlhfops.monitor import drift
from rlhfops.monitor.drift import DriftConfig, input_drift, median_bandwidth, mmd_permutation_test


def test_each_side_needs_its_minimum_rows():
    ok = np.zeros((3, 2))
    drift._check_pair(ok, ok, min_rows=3)
    for x, y in ((ok[:2], ok), (ok, ok[:2])):  # either side short is refused
        with pytest.raises(DataError, match="at least 3 rows"):
            drift._check_pair(x, y, min_rows=3)


def test_subsampling_only_above_the_cap():
    rng = np.random.default_rng(0)
    assert drift._subsample(5, 5, rng).tolist() == [0, 1, 2, 3, 4]  # exactly at the cap: every row
    assert drift._subsample(5, None, rng).tolist() == [0, 1, 2, 3, 4]
    picked = drift._subsample(6, 5, rng)
    assert len(picked) == 5 and len(set(picked.tolist())) == 5  # without replacement


def test_bandwidth_is_the_median_distance_below_one_and_one_when_all_points_coincide():
    pts = np.array([[0.0], [0.5], [1.0]])  # distances 0.5, 1.0, 0.5: median 0.5
    assert median_bandwidth(drift.squared_distances(pts, pts)) == pytest.approx(0.5)
    same = np.zeros((4, 2))
    assert median_bandwidth(drift.squared_distances(same, same)) == 1.0


def test_one_permutation_is_allowed_zero_is_not():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 2)), rng.normal(size=(8, 2))
    assert mmd_permutation_test(x, y, n_permutations=1).n_permutations == 1
    with pytest.raises(ConfigError, match="n_permutations=0"):
        mmd_permutation_test(x, y, n_permutations=0)


def _pair(seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(60, 3)), np.concatenate([rng.normal(size=(40, 3)), rng.normal(size=(20, 3)) + 4])


def test_the_report_counts_its_rows_and_lists_the_most_novel_first():
    train, prod = _pair()
    rep = input_drift(train, prod, n_permutations=19)
    assert (rep.n_train, rep.n_prod) == (60, 60)
    assert rep.shifted_indices, "the planted rows are novel"
    dist, threshold, _ref = drift._novelty(train, prod, DriftConfig(n_permutations=19))
    novel = [i for i in range(len(prod)) if dist[i] > threshold]
    assert sorted(rep.shifted_indices) == novel
    assert [dist[i] for i in rep.shifted_indices] == sorted(dist[novel], reverse=True)
    assert rep.novel_share == pytest.approx(len(novel) / 60)


def test_results_are_immutable():
    train, prod = _pair()
    rep = input_drift(train, prod, n_permutations=19)
    for obj, name in ((rep, "drifted"), (rep.mmd, "p_value"), (rep.auc, "auc")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, name, None)
    c = drift.Cluster([0], [0], 1, 0.1, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.size = 2


def test_window_and_step_must_be_positive():
    assert drift._window_bounds(3, None, 1, 1) == [(0, 1), (1, 2), (2, 3)]
    for window, step in ((0, 1), (1, 0)):
        with pytest.raises(ConfigError, match="must be >= 1"):
            drift._window_bounds(3, None, window, step)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    times = [t0 + timedelta(hours=i) for i in range(3)]
    hour = timedelta(hours=1)
    assert drift._window_bounds(3, times, hour, hour) == [(0, 1), (1, 2), (2, 3)]
    for window, step in ((timedelta(0), hour), (hour, timedelta(0))):
        with pytest.raises(ConfigError, match="must be positive"):
            drift._window_bounds(3, times, window, step)


def test_a_time_window_starting_at_the_last_record_is_kept():
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    times = [t0, t0 + timedelta(hours=2)]
    # windows start at t0 and t0 + 2h: the second starts exactly at the last record and holds it
    assert drift._window_bounds(2, times, timedelta(hours=1), timedelta(hours=2)) == [(0, 1), (1, 2)]


def test_a_window_of_exactly_min_window_records_rows_is_analysed():
    train, prod = _pair()
    wins = drift.windowed_drift(train, prod, window=30, min_window_records=30, n_permutations=19)
    assert [(w.start, w.end) for w in wins] == [(0, 30), (30, 60)]
    assert drift.windowed_drift(train, prod, window=29, step=60, min_window_records=30) == []
    # two windows of 29 rows (0-29, 30-59): both too small, wherever they start
    assert drift.windowed_drift(train, prod, window=29, step=30, min_window_records=30) == []
    with pytest.raises(dataclasses.FrozenInstanceError):
        wins[0].start = 1


def test_an_explicit_bandwidth_must_be_positive():
    x = np.random.default_rng(0).normal(size=(6, 2))
    assert mmd_permutation_test(x, x + 1, n_permutations=1, bandwidth=1e-3).bandwidth == 1e-3
    with pytest.raises(ConfigError, match="must be > 0"):
        mmd_permutation_test(x, x + 1, n_permutations=1, bandwidth=0.0)


def test_nearest_distances_to_another_matrix_keep_an_identical_row():
    a = np.array([[0.0, 0.0], [5.0, 0.0]])
    b = np.array([[0.0, 0.0], [1.0, 0.0]])
    assert drift.nearest_distances(a, b).tolist() == [0.0, 4.0]  # row 0 of b is row 0 of a: distance 0
    assert drift.nearest_distances(b, b, exclude_self=True).tolist() == [1.0, 1.0]


def test_few_rows_of_the_training_distribution_are_novel():
    # the threshold is the 95% quantile of training rows' leave-one-out nearest distances: fresh rows
    # of the same distribution are novel about 5% of the time, not always
    rng = np.random.default_rng(1)
    rep = input_drift(rng.normal(size=(200, 3)), rng.normal(size=(200, 3)), n_permutations=19)
    assert 0.0 < rep.novel_share < 0.2


def test_the_classifier_needs_cv_rows_per_side_and_uses_cv_folds():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3, 2)), rng.normal(size=(3, 2)) + 3
    assert drift.domain_classifier_auc(x, y, cv=3).auc == 1.0  # 3 folds of 3 rows per side
    with pytest.raises(DataError, match="at least 4 rows"):
        drift.domain_classifier_auc(x, y, cv=4)


def test_rows_left_out_of_the_classifier_subsample_are_scored_by_a_fit_on_the_subsample():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(12, 2)) + 1  # only X is subsampled
    res = drift.domain_classifier_auc(x, y, cv=2, seed=3, max_per_side=12)
    pick = np.random.default_rng(3)
    ix, iy = drift._subsample(30, 12, pick), drift._subsample(12, 12, pick)
    rest = np.setdiff1d(np.arange(30), ix)
    z, labels = np.concatenate([x[ix], y[iy]]), np.r_[np.zeros(12), np.ones(12)]
    full = LogisticRegression(C=1.0, max_iter=1000, random_state=3).fit(z, labels)
    assert res.per_sample_scores[rest] == pytest.approx(full.predict_proba(x[rest])[:, 1], rel=1e-9)


def test_input_drift_passes_its_seed_and_cap_to_the_mmd_test():
    train, prod = _pair()
    rep = input_drift(train, prod, n_permutations=19, seed=1, mmd_max_per_side=10)
    assert rep.mmd == mmd_permutation_test(train, prod, 19, seed=1, max_per_side=10)
    assert (rep.mmd.n_x, rep.mmd.n_y) == (10, 10)


def test_input_drift_needs_three_rows_per_side_whatever_the_folds():
    rng = np.random.default_rng(0)
    with pytest.raises(DataError, match="at least 3 rows"):
        input_drift(rng.normal(size=(2, 2)), rng.normal(size=(2, 2)), cv=2, n_permutations=19)


def test_window_clusters_name_rows_of_the_whole_production_matrix():
    train, prod = _pair()
    wins = drift.windowed_drift(train, prod, window=30, min_window_records=30, n_permutations=19)
    clusters = wins[1].report.new_clusters  # rows 30-59: the planted rows are 40-59
    assert clusters, "the planted rows form a new cluster"
    for c in clusters:
        assert all(40 <= i < 60 for i in c.members + c.centroid_examples)


def test_the_laplacian_kernel_is_exp_of_minus_distance_over_sigma():
    d2 = np.array([[0.0, 4.0], [4.0, 0.0]])
    k = drift.kernel_matrix(d2, "laplacian", 0.5)
    assert k == pytest.approx(np.array([[1.0, np.exp(-4.0)], [np.exp(-4.0), 1.0]]), rel=1e-12)


def test_a_reference_capped_below_the_training_rows_calibrates_on_the_rows_left_out():
    rng = np.random.default_rng(0)
    train, prod = rng.normal(size=(120, 3)), rng.normal(size=(30, 3))
    cfg = DriftConfig(max_reference=50)
    dist, threshold, ref = drift._novelty(train, prod, cfg)
    order = np.random.default_rng(cfg.seed + 1).permutation(120)
    ref_rows, calib = train[order[:50]], train[order[50:]]  # 70 rows left out: >= 20, used
    assert np.array_equal(ref, ref_rows)
    calib_d = [min(np.linalg.norm(c - r) for r in ref_rows) for c in calib]
    assert threshold == pytest.approx(float(np.quantile(calib_d, 0.95)), rel=1e-9)
    assert dist == pytest.approx([min(np.linalg.norm(p - r) for r in ref_rows) for p in prod], rel=1e-9)


def test_novel_rows_beyond_max_cluster_points_join_their_nearest_cluster():
    train, prod = _pair()
    full = input_drift(train, prod, n_permutations=19).new_clusters
    capped = input_drift(train, prod, n_permutations=19, max_cluster_points=10).new_clusters
    assert capped and sum(c.size for c in capped) == sum(c.size for c in full)
    assert sorted(i for c in capped for i in c.members) == sorted(i for c in full for i in c.members)


# --- session 4 (issue 17): the survivors left open after session 3 -------------------------------------


@pytest.mark.parametrize("n_permutations", [1, 7])
def test_every_permutation_counts_when_every_relabelling_ties(n_permutations):
    # all rows the same point: every relabelling's MMD equals the observed one, so all n count
    # and p = (1 + n) / (1 + n) = 1 (a loop that skipped the first permutation gives n / (1 + n))
    same = np.ones((6, 2))
    assert mmd_permutation_test(same, same.copy(), n_permutations=n_permutations).p_value == 1.0


def _planted(n_group: int, offset: float = 0.0, spread: float = 1.0, seed: int = 0):
    """Training rows near the origin; production rows: 30 of the same and a tight group at (8, 8, 8)."""
    rng = np.random.default_rng(seed)
    train = offset + spread * rng.normal(size=(60, 3))
    prod = offset + spread * np.concatenate(
        [rng.normal(size=(30, 3)), 8.0 + 0.1 * rng.normal(size=(n_group, 3))]
    )
    return train, prod


def test_float32_embeddings_give_the_float64_report():
    # far from the origin (1000 + 0.01 x), float32 squared distances (|a|^2 + |b|^2 - 2ab) are noise;
    # the same values as float64 give the real ones. The report must not depend on the input dtype,
    # on either side (the training side: the novelty threshold; the production side: the clusters).
    train, prod = _planted(12, offset=1000.0, spread=0.01)
    t32, p32 = train.astype(np.float32), prod.astype(np.float32)
    a = input_drift(t32, p32, n_permutations=19)
    b = input_drift(t32.astype(np.float64), p32.astype(np.float64), n_permutations=19)
    assert b.new_clusters and b.shifted_indices, "the planted group is found in float64"
    assert a.novelty_threshold == b.novelty_threshold
    assert a.shifted_indices == b.shifted_indices
    assert a.new_clusters == b.new_clusters
    assert a.mmd == b.mmd and a.auc.auc == b.auc.auc
    assert np.array_equal(a.auc.per_sample_scores, b.auc.per_sample_scores)


def test_the_classifier_is_fit_to_convergence_on_unscaled_features():
    # one feature on a scale of 1e4: lbfgs needs more than sklearn's default 100 iterations here (its
    # AUC would be 0.5139); the AUC is that of a fit run to convergence on the same folds (0.5192)
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 20)), rng.normal(size=(60, 20))
    y[:, 0] += 0.5
    x[:, 1] *= 1e4
    y[:, 1] *= 1e4
    z, labels = np.concatenate([x, y]), np.r_[np.zeros(60), np.ones(60)]
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    converged = LogisticRegression(C=1.0, max_iter=20_000, random_state=0)
    oof = cross_val_predict(converged, z, labels, cv=folds, method="predict_proba")[:, 1]
    assert drift.domain_classifier_auc(x, y, cv=5, seed=0).auc == roc_auc_score(labels, oof)


def test_the_classifier_scores_are_p_from_production_training_rows_first():
    train, prod = _planted(20)
    scores = input_drift(train, prod, n_permutations=19).auc.per_sample_scores
    planted = scores[60 + 30 :]  # production rows 30-49 (the group), after the 60 training rows
    assert len(scores) == 60 + 50
    assert planted.min() > 0.5 > scores[:60].mean()


def _nearest_ref_distances(train, prod):
    return np.array([min(np.linalg.norm(p - r) for r in train) for p in prod])


@pytest.mark.parametrize("left_out", [19, 20])
def test_calibration_falls_back_to_leave_one_out_below_twenty_rows_left_out(left_out):
    rng = np.random.default_rng(0)
    train, prod = rng.normal(size=(50 + left_out, 3)), rng.normal(size=(10, 3))
    cfg = DriftConfig(max_reference=50)
    _dist, threshold, ref = drift._novelty(train, prod, cfg)
    order = np.random.default_rng(cfg.seed + 1).permutation(len(train))
    assert np.array_equal(ref, train[order[:50]])
    calib = train[order[50:]]
    held_out = _nearest_ref_distances(ref, calib)
    loo = np.array(
        [min(np.linalg.norm(r - s) for j, s in enumerate(ref) if j != i) for i, r in enumerate(ref)]
    )
    want = np.quantile(held_out if left_out >= 20 else loo, 0.95)
    other = np.quantile(loo if left_out >= 20 else held_out, 0.95)
    assert threshold == pytest.approx(float(want), rel=1e-9)
    assert threshold != pytest.approx(float(other), rel=1e-6)


def _group(center, n, seed):
    return np.asarray(center) + 0.1 * np.random.default_rng(seed).normal(size=(n, 3))


@pytest.mark.parametrize("n_group", [4, 5])
def test_a_cluster_needs_min_cluster_size_rows(n_group):
    ref = np.random.default_rng(0).normal(size=(40, 3))
    prod = np.concatenate([np.random.default_rng(1).normal(size=(20, 3)), _group([8, 8, 8], n_group, 2)])
    novel = np.arange(20, 20 + n_group)
    dist = _nearest_ref_distances(ref, prod)
    clusters = drift.novel_clusters(prod, ref, dist, novel, cut=2.0, cfg=DriftConfig(min_cluster_size=5))
    assert [c.size for c in clusters] == ([5] if n_group == 5 else [])


@pytest.mark.parametrize("n_extra", [4, 5])
def test_a_group_inside_the_novel_rows_needs_min_cluster_size_members(n_extra):
    # 6 novel rows in one group (enough novel rows overall) and n_extra in another
    ref = np.random.default_rng(0).normal(size=(40, 3))
    prod = np.concatenate(
        [
            np.random.default_rng(1).normal(size=(20, 3)),
            _group([8, 8, 8], 6, 2),
            _group([-8, 8, -8], n_extra, 3),
        ]
    )
    novel = np.arange(20, len(prod))
    dist = _nearest_ref_distances(ref, prod)
    clusters = drift.novel_clusters(prod, ref, dist, novel, cut=2.0, cfg=DriftConfig(min_cluster_size=5))
    assert sorted(c.size for c in clusters) == ([6] if n_extra == 4 else [5, 6])


def test_cluster_examples_are_the_members_nearest_the_centroid():
    ref = np.random.default_rng(0).normal(size=(40, 3))
    prod = np.concatenate([np.random.default_rng(1).normal(size=(20, 3)), _group([8, 8, 8], 9, 4)])
    novel = np.arange(20, 29)
    dist = _nearest_ref_distances(ref, prod)
    (c,) = drift.novel_clusters(prod, ref, dist, novel, cut=2.0, cfg=DriftConfig(n_examples=3))
    centroid = prod[novel].mean(0)
    by_distance = novel[np.argsort(np.linalg.norm(prod[novel] - centroid, axis=1))]
    assert c.centroid_examples == [int(i) for i in by_distance[:3]]
    assert c.members == list(range(20, 29))


@pytest.mark.parametrize("sizes", [(6, 9), (9, 6)])
def test_clusters_are_listed_largest_first(sizes):
    ref = np.random.default_rng(0).normal(size=(40, 3))
    prod = np.concatenate(
        [
            np.random.default_rng(1).normal(size=(20, 3)),
            _group([8, 8, 8], sizes[0], 2),
            _group([-8, 8, -8], sizes[1], 3),
        ]
    )
    novel = np.arange(20, len(prod))
    dist = _nearest_ref_distances(ref, prod)
    clusters = drift.novel_clusters(prod, ref, dist, novel, cut=2.0, cfg=DriftConfig())
    assert [c.size for c in clusters] == [9, 6]


def test_the_clustered_sample_is_max_cluster_points_distinct_novel_rows(monkeypatch):
    # above max_cluster_points the novel rows are subsampled WITHOUT replacement: as many distinct rows
    # as the cap (a sample with replacement clusters fewer rows and weights its repeats in the centroids)
    from sklearn.cluster import AgglomerativeClustering

    seen = []
    fit_predict = AgglomerativeClustering.fit_predict
    monkeypatch.setattr(
        AgglomerativeClustering, "fit_predict", lambda self, x: seen.append(x) or fit_predict(self, x)
    )
    ref = np.random.default_rng(0).normal(size=(40, 3))
    prod = np.concatenate([np.random.default_rng(1).normal(size=(20, 3)), _group([8, 8, 8], 30, 2)])
    novel = np.arange(20, 50)
    dist = _nearest_ref_distances(ref, prod)
    cfg = DriftConfig(max_cluster_points=25)
    (c,) = drift.novel_clusters(prod, ref, dist, novel, cut=2.0, cfg=cfg)
    assert c.size == 30
    (x,) = seen
    assert len(x) == 25 and len(np.unique(x, axis=0)) == 25
