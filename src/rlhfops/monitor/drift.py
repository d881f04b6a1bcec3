"""Input drift between training prompts and production prompts, as tests on embedding matrices.

Pure functions of arrays (numpy / scipy / scikit-learn); the embeddings come from
:mod:`rlhfops.monitor.embed` (rows of shape [384], unit norm) but any [N, D] float matrix works.

Two tests, one decision:

* :func:`mmd_permutation_test` -- the kernel two-sample test of Gretton et al. (2012), "A Kernel
  Two-Sample Test", JMLR 13: the unbiased estimate MMD^2_u (their Lemma 6, eq. 3) with a Gaussian (RBF)
  kernel whose bandwidth is the median pairwise distance of the pooled sample (their Section 8, the
  "median heuristic"), and a permutation null (their Section 9; p-value with the +1 correction of
  Phipson & Smyth 2010).
* :func:`domain_classifier_auc` -- a classifier two-sample test (Lopez-Paz & Oquab 2017, "Revisiting
  Classifier Two-Sample Tests"; the "domain classifier" of Rabanser et al. 2019, "Failing Loudly"):
  L2-regularised logistic regression separates training from production rows; the ROC AUC of its
  cross-validated (out-of-fold) probabilities is the drift score. AUC > 0.55 flags drift, the default
  of Evidently's embeddings drift method ``model``.

:func:`input_drift` calls production data drifted when BOTH tests fire (rule ``"and"``, the default):
the MMD test alone raises a false alarm at rate ``alpha`` by construction (1 in 20 at 0.05), and the
AUC threshold alone is loose on small windows; requiring both keeps same-distribution windows quiet
while any real topic shift (a new task mixed into the traffic) moves both far past their thresholds.
The rules ``"or"``, ``"mmd"`` and ``"auc"`` are available through :class:`DriftConfig`.

Speed: the MMD test subsamples at most ``mmd_max_per_side`` rows per side (default 1,000: the joint
kernel matrix is then 2,000 x 2,000, computed once; permutations are matrix products over it), and the
classifier at most ``auc_max_per_side`` (default 2,000). Rows outside the classifier's subsample are
scored by a model fit on the whole subsample, so every row gets an out-of-sample score.

New clusters: a production row is *novel* when its distance to the nearest training row exceeds the
``novelty_quantile`` (0.95) of the same distance for training rows held out from the reference set
(Tax & Duin 2004 style nearest-neighbour data description). Novel rows are grouped by average-linkage
agglomerative clustering cut at the median pairwise distance of the pooled sample (clusters tighter
than a typical pair); clusters of at least ``min_cluster_size`` rows are reported with the rows
nearest their centroid as examples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError

from rlhfops.config import StageConfig, validation_error
from rlhfops.errors import ConfigError, DataError


class DriftConfig(StageConfig):
    """Settings of the input-drift tests (``monitor.drift`` in a workspace config)."""

    alpha: float = Field(0.05, gt=0, lt=1, description="Significance level of the MMD permutation test.")
    auc_threshold: float = Field(
        0.55, ge=0.5, lt=1, description="Domain-classifier ROC AUC above which the classifier flags drift."
    )
    rule: Literal["and", "or", "mmd", "auc"] = Field(
        "and",
        description="Decision: 'and' = MMD p < alpha AND AUC > threshold (default; at most ~1 false alarm "
        "in 20 same-distribution windows); 'or' = either; 'mmd' or 'auc' = that test alone.",
    )
    n_permutations: int = Field(200, ge=19, description="Permutations for the MMD null distribution.")
    mmd_max_per_side: int | None = Field(
        1000, ge=10, description="Rows per side the MMD test subsamples to (None = all rows; cost ~ N^2)."
    )
    auc_max_per_side: int | None = Field(
        2000, ge=10, description="Rows per side the domain classifier trains on (None = all rows)."
    )
    cv: int = Field(5, ge=2, description="Cross-validation folds for the domain classifier.")
    novelty_quantile: float = Field(
        0.95,
        gt=0.5,
        lt=1,
        description="A production row is novel when its nearest-training-row distance exceeds this "
        "quantile of held-out training rows' nearest distances.",
    )
    max_reference: int = Field(
        5000, ge=50, description="Training rows used as the nearest-neighbour reference set."
    )
    min_cluster_size: int = Field(5, ge=2, description="Smallest group of novel rows reported as a cluster.")
    n_examples: int = Field(5, ge=1, description="Example rows (nearest the centroid) reported per cluster.")
    max_density_ratio: float = Field(
        0.25,
        gt=0,
        le=1,
        description="A cluster is new only if the share of training rows within its radius is below this "
        "fraction of the share of production rows within it (drops clusters of ordinary outliers).",
    )
    max_cluster_points: int = Field(
        2000, ge=10, description="Novel rows clustered at most; the rest join their nearest cluster."
    )
    min_window_records: int = Field(30, ge=10, description="Windows with fewer production rows are skipped.")
    seed: int = Field(0, description="Seed for subsampling, permutations and folds.")


@dataclass(frozen=True)
class TestResult:
    """A two-sample test: the statistic, its permutation p-value and what it was computed on."""

    __test__ = False  # not a pytest class

    statistic: float
    p_value: float
    n_x: int
    n_y: int
    bandwidth: float
    n_permutations: int


@dataclass(frozen=True)
class AUCResult:
    """Domain-classifier test. ``per_sample_scores`` [n_x + n_y]: out-of-sample P(row is from Y)."""

    auc: float
    drift: bool
    threshold: float
    per_sample_scores: np.ndarray


@dataclass(frozen=True)
class Cluster:
    """A group of novel production rows. Indices are rows of the production matrix."""

    centroid_examples: list[int]
    members: list[int]
    size: int
    share: float
    mean_distance: float


@dataclass(frozen=True)
class InputDriftReport:
    """Both tests, the decision and the novel production regions."""

    mmd: TestResult
    auc: AUCResult
    drifted: bool
    rule: str
    alpha: float
    new_clusters: list[Cluster]
    novelty_threshold: float
    novel_share: float
    shifted_indices: list[int] = field(default_factory=list)
    n_train: int = 0
    n_prod: int = 0

    @property
    def evidence(self) -> str:
        """One line: both statistics, the rule and the outcome."""
        verdict = "drifted" if self.drifted else "no drift"
        return (
            f"{verdict} (rule {self.rule}): MMD^2={self.mmd.statistic:.4g} p={self.mmd.p_value:.3g} "
            f"(alpha {self.alpha}), domain AUC={self.auc.auc:.3f} (threshold {self.auc.threshold}), "
            f"{self.novel_share:.1%} of {self.n_prod} production rows novel, "
            f"{len(self.new_clusters)} new cluster(s)"
        )


@dataclass(frozen=True)
class WindowDrift:
    """Drift of one window of time-ordered production rows; indices in ``report`` are global rows."""

    start: int
    end: int
    start_time: datetime | None
    end_time: datetime | None
    report: InputDriftReport


def _check_pair(X: np.ndarray, Y: np.ndarray, min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise DataError(f"drift: expected two [N, D] matrices with the same D, got {X.shape} and {Y.shape}")
    if len(X) < min_rows or len(Y) < min_rows:
        raise DataError(f"drift: need at least {min_rows} rows per side, got {len(X)} and {len(Y)}")
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        raise DataError("drift: embeddings contain NaN or infinite values")
    return X, Y


def _subsample(n: int, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    if cap is None or n <= cap:
        return np.arange(n)
    return np.sort(rng.choice(n, size=cap, replace=False))


def squared_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances. A [n, D], B [m, D] -> [n, m], clipped at 0."""
    d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    return np.maximum(d2, 0.0)


def median_bandwidth(d2: np.ndarray) -> float:
    """Median heuristic (Gretton et al. 2012, Sec. 8): median of the off-diagonal pairwise distances.

    d2: [N, N] squared distances of the pooled sample. Returns sigma > 0 (1.0 if all points coincide).
    """
    iu = np.triu_indices(len(d2), k=1)
    sigma = float(np.median(np.sqrt(d2[iu])))
    return sigma if sigma > 0 else 1.0


_KERNELS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    # k(x, y) from squared distances d2 and bandwidth sigma
    "rbf": lambda d2, s: np.exp(-d2 / (2.0 * s * s)),
    "laplacian": lambda d2, s: np.exp(-np.sqrt(d2) / s),
}


def kernel_matrix(d2: np.ndarray, kernel: str, sigma: float) -> np.ndarray:
    """Kernel values from squared distances: 'rbf' exp(-d^2 / 2 sigma^2) or 'laplacian' exp(-d / sigma)."""
    if kernel not in _KERNELS:
        raise ConfigError(f"drift: unknown kernel {kernel!r}; choose one of {', '.join(_KERNELS)}")
    return _KERNELS[kernel](d2, sigma)


def mmd2_unbiased(K: np.ndarray, n: int) -> float:
    """Unbiased MMD^2_u (Gretton et al. 2012, Lemma 6, eq. 3) from the joint kernel matrix.

    K: [n + m, n + m] kernel matrix of the pooled sample, X rows first (n of them), then Y (m).
    MMD^2_u = sum_{i!=j} k(x_i,x_j)/(n(n-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1)) - 2 sum k(x_i,y_j)/(nm).
    """
    m = len(K) - n
    kxx = K[:n, :n].sum() - np.trace(K[:n, :n])
    kyy = K[n:, n:].sum() - np.trace(K[n:, n:])
    kxy = K[:n, n:].sum()
    return float(kxx / (n * (n - 1)) + kyy / (m * (m - 1)) - 2.0 * kxy / (n * m))


def _mmd2_for_labels(Kz: np.ndarray, A: np.ndarray, n: int) -> np.ndarray:
    """MMD^2_u for B labelings at once. Kz [N, N] zero-diagonal kernel, A [B, N] 0/1 (1 = in X), n = |X|.

    With s = Kz 1 and T = 1' Kz 1: XX = a' Kz a, XY = a's - XX, YY = T - 2 a's + XX.
    """
    N = len(Kz)
    m = N - n
    s = Kz.sum(1)
    total = s.sum()
    xx = ((A @ Kz) * A).sum(1)
    a_s = A @ s
    xy = a_s - xx
    yy = total - 2.0 * a_s + xx
    return xx / (n * (n - 1)) + yy / (m * (m - 1)) - 2.0 * xy / (n * m)


def mmd_permutation_test(
    X: np.ndarray,
    Y: np.ndarray,
    n_permutations: int = 200,
    kernel: str = "rbf",
    bandwidth: float | str = "median",
    seed: int = 0,
    max_per_side: int | None = 1000,
) -> TestResult:
    """Kernel two-sample test of Gretton et al. (2012) with a permutation null.

    Args:
        X: [n, D] reference rows (training). Y: [m, D] rows to compare (production).
        n_permutations: random relabelings of the pooled sample for the null distribution.
        kernel: 'rbf' (Gaussian, default) or 'laplacian'.
        bandwidth: sigma, or 'median' for the median pairwise distance of the pooled (subsampled) rows.
        seed: seeds the subsampling and the permutations.
        max_per_side: each side is subsampled without replacement to at most this many rows (None = all).

    Returns:
        TestResult(statistic=MMD^2_u, p_value=(1 + #{perm >= observed}) / (1 + n_permutations), ...).
    The joint kernel matrix is computed once; permutations are evaluated in blocks as matrix products.
    """
    X, Y = _check_pair(X, Y)
    if n_permutations < 1:
        raise ConfigError(f"drift: n_permutations={n_permutations} must be >= 1")
    rng = np.random.default_rng(seed)
    X = X[_subsample(len(X), max_per_side, rng)]
    Y = Y[_subsample(len(Y), max_per_side, rng)]
    n = len(X)
    Z = np.concatenate([X, Y])
    d2 = squared_distances(Z, Z)
    np.fill_diagonal(d2, 0.0)
    if isinstance(bandwidth, str):
        if bandwidth != "median":
            raise ConfigError(f"drift: bandwidth={bandwidth!r}; use 'median' or a positive number")
        sigma = median_bandwidth(d2)
    else:
        sigma = float(bandwidth)
        if not sigma > 0:
            raise ConfigError(f"drift: bandwidth={bandwidth!r} must be > 0")
    Kz = kernel_matrix(d2, kernel, sigma)
    np.fill_diagonal(Kz, 0.0)
    observed = float(_mmd2_for_labels(Kz, (np.arange(len(Z)) < n)[None, :].astype(np.float64), n)[0])
    exceed = 0
    block = 64
    for start in range(0, n_permutations, block):
        b = min(block, n_permutations - start)
        ranks = np.argsort(rng.random((b, len(Z))), axis=1)
        A = (ranks < n).astype(np.float64)
        null = _mmd2_for_labels(Kz, A, n)
        exceed += int((null >= observed - 1e-12).sum())
    p = (1 + exceed) / (1 + n_permutations)
    return TestResult(observed, p, n, len(Y), sigma, n_permutations)


def _logreg(seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=1000, random_state=seed)


def domain_classifier_auc(
    X: np.ndarray,
    Y: np.ndarray,
    cv: int = 5,
    seed: int = 0,
    threshold: float = 0.55,
    max_per_side: int | None = 2000,
) -> AUCResult:
    """Classifier two-sample test (Lopez-Paz & Oquab 2017): ROC AUC of out-of-fold P(row is from Y).

    Args:
        X: [n, D] training rows (label 0). Y: [m, D] production rows (label 1).
        cv: stratified folds; the AUC uses only out-of-fold probabilities.
        threshold: drift when AUC > threshold (0.55, Evidently's default for embeddings).
        max_per_side: rows per side the classifier sees (None = all); the other rows are scored by a
            model fit on the whole subsample (still out-of-sample).

    Returns:
        AUCResult(auc, drift, threshold, per_sample_scores [n + m], X rows first).
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    X, Y = _check_pair(X, Y, min_rows=cv)
    rng = np.random.default_rng(seed)
    ix = _subsample(len(X), max_per_side, rng)
    iy = _subsample(len(Y), max_per_side, rng)
    Z = np.concatenate([X[ix], Y[iy]])
    labels = np.r_[np.zeros(len(ix)), np.ones(len(iy))]
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    oof = cross_val_predict(_logreg(seed), Z, labels, cv=folds, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(labels, oof))
    scores = np.empty(len(X) + len(Y))
    rest_x = np.setdiff1d(np.arange(len(X)), ix)
    rest_y = np.setdiff1d(np.arange(len(Y)), iy)
    if len(rest_x) or len(rest_y):
        full = _logreg(seed).fit(Z, labels)
        rest = np.concatenate([X[rest_x], Y[rest_y]])
        probs = full.predict_proba(rest)[:, 1]
        scores[rest_x] = probs[: len(rest_x)]
        scores[len(X) + rest_y] = probs[len(rest_x) :]
    scores[ix] = oof[: len(ix)]
    scores[len(X) + iy] = oof[len(ix) :]
    return AUCResult(auc, auc > threshold, threshold, scores)


def nearest_distances(
    A: np.ndarray, B: np.ndarray, exclude_self: bool = False, chunk: int = 2048
) -> np.ndarray:
    """Euclidean distance from each row of A [n, D] to its nearest row of B [m, D] -> [n].

    exclude_self: A is B; a row's distance to itself is ignored (leave-one-out). Chunked: memory O(chunk m).
    """
    out = np.empty(len(A))
    for s in range(0, len(A), chunk):
        d2 = squared_distances(A[s : s + chunk], B)
        if exclude_self:
            rows = np.arange(d2.shape[0])
            d2[rows, rows + s] = np.inf
        out[s : s + chunk] = np.sqrt(d2.min(1))
    return out


def _novelty(train: np.ndarray, prod: np.ndarray, cfg: DriftConfig) -> tuple[np.ndarray, float, np.ndarray]:
    """(distance of each prod row to the training reference [m], threshold, reference rows used)."""
    rng = np.random.default_rng(cfg.seed + 1)
    if len(train) > cfg.max_reference:
        order = rng.permutation(len(train))
        ref = train[order[: cfg.max_reference]]
        calib = train[order[cfg.max_reference : cfg.max_reference + 1000]]
        calib_d = nearest_distances(calib, ref) if len(calib) >= 20 else nearest_distances(ref, ref, True)
    else:
        ref = train
        calib_d = nearest_distances(ref, ref, exclude_self=True)
    threshold = float(np.quantile(calib_d, cfg.novelty_quantile))
    return nearest_distances(prod, ref), threshold, ref


def novel_clusters(
    prod: np.ndarray, ref: np.ndarray, dist: np.ndarray, novel: np.ndarray, cut: float, cfg: DriftConfig
) -> list[Cluster]:
    """Group novel production rows (indices ``novel``) by average-linkage clustering cut at ``cut``.

    prod [m, D] production rows, ref [r, D] training reference rows, dist [m] nearest-training distances.
    A group is kept when it has >= min_cluster_size rows and is a new region: within its radius (the 90th
    percentile of its members' distances to the centroid) the share of training rows is below
    ``max_density_ratio`` times the share of production rows. Largest first, with the n_examples rows
    nearest each centroid as examples.
    """
    from sklearn.cluster import AgglomerativeClustering

    if len(novel) < cfg.min_cluster_size:
        return []
    rng = np.random.default_rng(cfg.seed + 2)
    core = (
        novel
        if len(novel) <= cfg.max_cluster_points
        else np.sort(rng.choice(novel, cfg.max_cluster_points, False))
    )
    labels = AgglomerativeClustering(n_clusters=None, distance_threshold=cut, linkage="average").fit_predict(
        prod[core]
    )
    ids = np.unique(labels)
    centroids = np.stack([prod[core[labels == k]].mean(0) for k in ids])
    if len(core) < len(novel):  # rows outside the clustered sample join their nearest centroid
        member_label = ids[squared_distances(prod[novel], centroids).argmin(1)]
        member_label[np.searchsorted(novel, core)] = labels
        rows = novel
    else:
        member_label, rows = labels, core
    clusters = []
    for j, k in enumerate(ids):
        members = rows[member_label == k]
        if len(members) < cfg.min_cluster_size:
            continue
        to_centroid = squared_distances(prod[members], centroids[j : j + 1])[:, 0]
        radius2 = float(np.quantile(to_centroid, 0.9))
        prod_share = float((squared_distances(prod, centroids[j : j + 1])[:, 0] <= radius2).mean())
        train_share = float((squared_distances(ref, centroids[j : j + 1])[:, 0] <= radius2).mean())
        if train_share >= cfg.max_density_ratio * prod_share:
            continue
        near = members[np.argsort(to_centroid, kind="stable")]
        clusters.append(
            Cluster(
                centroid_examples=[int(i) for i in near[: cfg.n_examples]],
                members=[int(i) for i in members],
                size=len(members),
                share=len(members) / len(prod),
                mean_distance=float(dist[members].mean()),
            )
        )
    return sorted(clusters, key=lambda c: -c.size)


def _config(config: DriftConfig | None, overrides: dict[str, Any]) -> DriftConfig:
    """``config`` (or the defaults) with keyword overrides such as ``alpha=0.01``, validated."""
    cfg = config or DriftConfig()
    if not overrides:
        return cfg
    unknown = sorted(set(overrides) - set(DriftConfig.model_fields))
    if unknown:
        raise ConfigError(
            f"drift: unknown setting(s) {unknown}; valid: {', '.join(DriftConfig.model_fields)}"
        )
    try:
        return DriftConfig.model_validate({**cfg.model_dump(), **overrides})
    except ValidationError as err:
        raise validation_error(DriftConfig, err, "drift") from None


def _decide(rule: str, mmd_fires: bool, auc_fires: bool) -> bool:
    return {"and": mmd_fires and auc_fires, "or": mmd_fires or auc_fires, "mmd": mmd_fires, "auc": auc_fires}[
        rule
    ]


def input_drift(
    train_emb: np.ndarray, prod_emb: np.ndarray, config: DriftConfig | None = None, **overrides: Any
) -> InputDriftReport:
    """Has the production prompt distribution moved away from the training prompts?

    Args:
        train_emb: [n, D] embeddings of the training prompts. prod_emb: [m, D] production prompts.
        config: thresholds, rule and subsampling (:class:`DriftConfig`; defaults documented there).
        **overrides: settings of DriftConfig given directly, e.g. ``input_drift(X, Y, alpha=0.01)``.

    Returns:
        InputDriftReport: the MMD test, the domain-classifier AUC, ``drifted`` by ``config.rule``, the new
        clusters (indices into ``prod_emb``) and ``shifted_indices``: novel production rows, most novel
        first (the candidates for the next batch of comparison items).
    """
    cfg = _config(config, overrides)
    X, Y = _check_pair(train_emb, prod_emb, min_rows=max(cfg.cv, 3))
    mmd = mmd_permutation_test(X, Y, cfg.n_permutations, seed=cfg.seed, max_per_side=cfg.mmd_max_per_side)
    auc = domain_classifier_auc(X, Y, cfg.cv, cfg.seed, cfg.auc_threshold, cfg.auc_max_per_side)
    drifted = _decide(cfg.rule, mmd.p_value < cfg.alpha, auc.drift)
    dist, threshold, ref = _novelty(X, Y, cfg)
    novel = np.flatnonzero(dist > threshold)
    clusters = novel_clusters(Y, ref, dist, novel, cut=mmd.bandwidth, cfg=cfg)
    shifted = novel[np.argsort(-dist[novel], kind="stable")]
    return InputDriftReport(
        mmd=mmd,
        auc=auc,
        drifted=drifted,
        rule=cfg.rule,
        alpha=cfg.alpha,
        new_clusters=clusters,
        novelty_threshold=threshold,
        novel_share=len(novel) / len(Y),
        shifted_indices=[int(i) for i in shifted],
        n_train=len(X),
        n_prod=len(Y),
    )


def _window_bounds(
    n: int, times: Sequence[datetime] | None, window: int | timedelta, step: int | timedelta | None
) -> list[tuple[int, int]]:
    if isinstance(window, int):
        size = window
        stride = step if isinstance(step, int) else size
        if size < 1 or stride < 1:
            raise ConfigError(f"drift: window={window} and step={step} must be >= 1")
        return [(s, min(s + size, n)) for s in range(0, n, stride)]
    if times is None:
        raise ConfigError("drift: a time window needs the records' times")
    stride_t = step if isinstance(step, timedelta) else window
    if window <= timedelta(0) or stride_t <= timedelta(0):
        raise ConfigError(f"drift: window={window} and step={step} must be positive")
    stamps = np.array([t.timestamp() for t in times])
    bounds, t0 = [], times[0]
    while t0 <= times[-1]:
        lo = int(np.searchsorted(stamps, t0.timestamp(), "left"))
        hi = int(np.searchsorted(stamps, (t0 + window).timestamp(), "left"))
        bounds.append((lo, hi))
        t0 = t0 + stride_t
    return bounds


def windowed_drift(
    train_emb: np.ndarray,
    prod_emb: np.ndarray,
    times: Sequence[datetime] | None = None,
    window: int | timedelta = 1000,
    step: int | timedelta | None = None,
    config: DriftConfig | None = None,
    **overrides: Any,
) -> list[WindowDrift]:
    """:func:`input_drift` over sliding windows of time-ordered production rows.

    Args:
        train_emb: [n, D]. prod_emb: [m, D]. times: m timestamps (rows are sorted by them, stably);
            None = rows are already in time order.
        window: rows per window (int) or a time span (timedelta, needs ``times``).
        step: stride between window starts (default = window: non-overlapping).
        config: :class:`DriftConfig`; windows with fewer than ``min_window_records`` rows are skipped.
        **overrides: settings of DriftConfig given directly (``alpha=0.01``).

    Returns:
        One WindowDrift per window; indices inside each report refer to rows of ``prod_emb``.
    """
    cfg = _config(config, overrides)
    prod_emb = np.asarray(prod_emb)
    if times is not None and len(times) != len(prod_emb):
        raise DataError(f"drift: {len(times)} times for {len(prod_emb)} production rows")
    order = np.arange(len(prod_emb))
    sorted_times: list[datetime] | None = None
    if times is not None:
        order = np.array(sorted(range(len(times)), key=lambda i: times[i]), dtype=np.int64)
        sorted_times = [times[i] for i in order]
    out = []
    for lo, hi in _window_bounds(len(order), sorted_times, window, step):
        if hi - lo < cfg.min_window_records:
            continue
        rows = order[lo:hi]
        rep = input_drift(train_emb, prod_emb[rows], cfg)
        rep = replace(
            rep,
            new_clusters=[
                replace(
                    c,
                    centroid_examples=[int(rows[i]) for i in c.centroid_examples],
                    members=[int(rows[i]) for i in c.members],
                )
                for c in rep.new_clusters
            ],
            shifted_indices=[int(rows[i]) for i in rep.shifted_indices],
        )
        t_lo = sorted_times[lo] if sorted_times else None
        t_hi = sorted_times[hi - 1] if sorted_times else None
        out.append(WindowDrift(lo, hi, t_lo, t_hi, rep))
    return out
