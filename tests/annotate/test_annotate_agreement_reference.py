"""Agreement metrics against the reference packages on random data (hypothesis).

krippendorff (all four levels, missing data), scikit-learn ``cohen_kappa_score`` (unweighted, linear,
quadratic) and statsmodels ``fleiss_kappa``. Where rlhfops raises UserError (statistic undefined) the
reference must fail too or return a non-finite value.
"""

from __future__ import annotations

import warnings

import krippendorff
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from rlhfops.annotate import agreement as agreement_module
from rlhfops.annotate.agreement import cohen_kappa, fleiss_kappa, krippendorff_alpha, percent_agreement
from rlhfops.errors import UserError

TOL = 1e-9
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def ratings_matrices(draw, values=st.integers(0, 4)):
    """Raters x items float matrices with NaN for missing ratings."""
    r = draw(st.integers(2, 6))
    u = draw(st.integers(1, 12))
    cells = draw(st.lists(values, min_size=r * u, max_size=r * u))
    missing = draw(st.lists(st.booleans(), min_size=r * u, max_size=r * u))
    x = np.array(cells, dtype=float).reshape(r, u)
    x[np.array(missing).reshape(r, u)] = np.nan
    return x


def _reference_alpha(x: np.ndarray, level: str) -> float:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(krippendorff.alpha(reliability_data=x, level_of_measurement=level))
    except (ValueError, ZeroDivisionError):
        return float("nan")


def _check_alpha(x: np.ndarray, level: str) -> None:
    ref = _reference_alpha(x, level)
    try:
        ours = krippendorff_alpha(x, level)
    except UserError:
        assert not np.isfinite(ref), f"rlhfops refused but krippendorff gives {ref}"
        return
    assert np.isfinite(ref)
    assert ours == pytest.approx(ref, rel=TOL, abs=TOL)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
@SETTINGS
@given(x=ratings_matrices())
def test_alpha_matches_krippendorff_package(level, x):
    _check_alpha(x, level)


@pytest.mark.parametrize("level", ["interval", "ratio"])
@SETTINGS
@given(x=ratings_matrices(values=st.floats(0.0, 100.0, allow_nan=False, width=32)))
def test_alpha_matches_krippendorff_package_on_real_values(level, x):
    _check_alpha(x, level)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
@SETTINGS
@given(x=ratings_matrices())
def test_alpha_sparse_count_path_equals_dense(level, x, monkeypatch_module):
    """The sorted (unit, value) triples used for large tables give the same alpha as the dense table."""
    try:
        dense = krippendorff_alpha(x, level)
    except UserError:
        return
    monkeypatch_module.setattr(agreement_module, "_DENSE_TABLE_MAX", 0)
    try:
        sparse = krippendorff_alpha(x, level)
    finally:
        monkeypatch_module.undo()
    assert sparse == pytest.approx(dense, rel=1e-12, abs=1e-12)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_alpha_matches_krippendorff_on_a_larger_sparse_matrix(level):
    rng = np.random.default_rng(11)
    truth = rng.integers(1, 6, size=3000)
    x = np.where(rng.random((40, 3000)) < 0.7, truth, rng.integers(1, 6, size=(40, 3000))).astype(float)
    x[rng.random(x.shape) < 0.9] = np.nan
    ref = krippendorff.alpha(reliability_data=x, level_of_measurement=level)
    assert 0.3 < ref < 0.95
    assert krippendorff_alpha(x, level) == pytest.approx(ref, rel=TOL, abs=TOL)


@SETTINGS
@given(x=ratings_matrices(), labels=st.sampled_from([None, ["A", "B", "tie", "both_bad", "skip"]]))
def test_alpha_nominal_on_labels_equals_numeric(x, labels):
    names = np.array(["A", "B", "tie", "both_bad", "skip"], dtype=object)
    as_labels = np.where(np.isnan(x), None, names[np.nan_to_num(x).astype(int)])
    try:
        numeric = krippendorff_alpha(x)
    except UserError:
        with pytest.raises(UserError):
            krippendorff_alpha(as_labels, value_domain=labels)
        return
    assert krippendorff_alpha(as_labels, value_domain=labels) == pytest.approx(numeric, abs=1e-12)


def _loop_percent_agreement(x: np.ndarray) -> float:
    per_item = []
    for col in x.T:
        vals = col[~np.isnan(col)]
        m = len(vals)
        if m >= 2:
            agree = sum(vals[i] == vals[j] for i in range(m) for j in range(m) if i != j)
            per_item.append(agree / (m * (m - 1)))
    return float(np.mean(per_item)) if per_item else float("nan")


@SETTINGS
@given(x=ratings_matrices())
def test_percent_agreement_equals_pair_loop(x):
    ref = _loop_percent_agreement(x)
    if not np.isfinite(ref):
        with pytest.raises(UserError):
            percent_agreement(x)
        return
    assert percent_agreement(x) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@SETTINGS
@given(
    pairs=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=40),
)
def test_cohen_kappa_matches_sklearn(weights, pairs):
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = float(cohen_kappa_score(a, b, weights=weights))
    try:
        ours = cohen_kappa(a, b, weights=weights)
    except UserError:
        assert not np.isfinite(ref)
        return
    assert ours == pytest.approx(ref, rel=TOL, abs=TOL)
    # with explicit labels (a superset, as sklearn's labels=)
    assert cohen_kappa(a, b, weights=weights, labels=[0, 1, 2, 3, 4, 5]) == pytest.approx(
        float(cohen_kappa_score(a, b, weights=weights, labels=[0, 1, 2, 3, 4, 5])), rel=TOL, abs=TOL
    )


@st.composite
def count_tables(draw):
    n_items = draw(st.integers(1, 15))
    n_cats = draw(st.integers(2, 5))
    raters = draw(st.integers(2, 8))
    rows = []
    for _ in range(n_items):
        cuts = sorted(draw(st.lists(st.integers(0, raters), min_size=n_cats - 1, max_size=n_cats - 1)))
        edges = [0, *cuts, raters]
        rows.append([edges[i + 1] - edges[i] for i in range(n_cats)])
    return np.array(rows)


@SETTINGS
@given(table=count_tables())
def test_fleiss_kappa_matches_statsmodels(table):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = float(sm_fleiss_kappa(table, method="fleiss"))
    try:
        ours = fleiss_kappa(table)
    except UserError:
        assert not np.isfinite(ref)
        return
    assert ours == pytest.approx(ref, rel=TOL, abs=TOL)


@SETTINGS
@given(table=count_tables())
def test_fleiss_kappa_close_to_nominal_alpha_for_many_items(table):
    """Sanity link between the two: alpha = kappa-like with a small-sample correction (Krippendorff 2011)."""
    assume(table.shape[0] >= 2)
    try:
        kappa = fleiss_kappa(table)
    except UserError:
        return
    n_items, n = table.shape[0], int(table[0].sum())
    # alpha's expected disagreement uses n_total - 1: alpha = 1 - (1 - kappa) * (N n - 1) / (N n)
    assert krippendorff_alpha(_ratings_from_counts(table)) == pytest.approx(
        1 - (1 - kappa) * (n_items * n - 1) / (n_items * n), abs=1e-9
    )


def _ratings_from_counts(table: np.ndarray) -> np.ndarray:
    n = int(table[0].sum())
    cols = [np.repeat(np.arange(table.shape[1]), row) for row in table]
    return np.array(cols, dtype=float).T.reshape(n, -1)
