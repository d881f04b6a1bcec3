"""Output drift: have the model's outputs (reward scores, lengths, refusals...) moved since the reference?

One test per metric, then a multiple-testing correction across metrics:

* numeric metrics (reward score, response length, latency...): the two-sample Kolmogorov-Smirnov test
  (``scipy.stats.ks_2samp``, exact p-values for small samples, asymptotic otherwise);
* boolean metrics (a refusal flag, a safety flag...; a bool array): the proportions are compared with the
  pooled two-proportion z-test (Agresti 2013, "Categorical Data Analysis", Sec. 3.1.3); when any expected
  cell count of the 2x2 table is below 5, where the normal approximation is poor, Fisher's exact test
  (two-sided) is used instead (the usual Cochran 1954 rule). ``MetricDrift.test`` says which one ran.

The p-values are adjusted with Holm's step-down procedure (Holm 1979, "A simple sequentially rejective
multiple test procedure", Scand. J. Statist. 6) by default, which controls the family-wise error rate at
``alpha`` under any dependence between the metrics; ``"bonferroni"`` and ``"none"`` are available.
A metric is drifted when its adjusted p-value is below ``alpha``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from rlhfops.errors import ConfigError, DataError
from rlhfops.measures.refusal import is_refusal


@dataclass(frozen=True)
class MetricDrift:
    """One output metric: the test, its statistic and p-value before/after correction, the verdict."""

    name: str
    test: str
    statistic: float
    p_value: float
    p_adjusted: float
    drifted: bool
    reference_value: float
    production_value: float


def holm_adjust(p_values: np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values.

    p [k] -> adjusted [k]: sort ascending p_(1) <= ... <= p_(k); adjusted p_(i) =
    min(1, max_{j <= i} (k - j + 1) p_(j)); returned in the input order. Reject H_i iff adjusted < alpha.
    """
    p = np.asarray(p_values, dtype=np.float64)
    k = len(p)
    if k == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = (k - np.arange(k)) * p[order]
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(scaled))
    out = np.empty(k)
    out[order] = adjusted_sorted
    return out


def bonferroni_adjust(p_values: np.ndarray) -> np.ndarray:
    """Bonferroni: p [k] -> min(1, k p)."""
    p = np.asarray(p_values, dtype=np.float64)
    return np.minimum(1.0, p * len(p))


CORRECTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "holm": holm_adjust,
    "bonferroni": bonferroni_adjust,
    "none": lambda p: np.asarray(p, dtype=np.float64).copy(),
}


def two_proportion_test(ref: np.ndarray, prod: np.ndarray) -> tuple[str, float, float]:
    """Compare two rates of a boolean flag. ref [n] bool, prod [m] bool -> (test name, statistic, p).

    Pooled z-test: z = (p2 - p1) / sqrt(p (1 - p) (1/n + 1/m)), p = pooled rate; two-sided normal p-value.
    Falls back to Fisher's exact test (statistic = sample odds ratio) when an expected count is < 5.
    """
    from scipy import stats

    n, m = len(ref), len(prod)
    a, b = int(ref.sum()), int(prod.sum())
    table = np.array([[a, n - a], [b, m - b]])
    pooled = (a + b) / (n + m)
    expected = np.outer([n, m], [pooled, 1 - pooled])
    if expected.min() < 5:
        res = stats.fisher_exact(table, alternative="two-sided")
        return "fisher_exact", float(res.statistic), float(res.pvalue)
    z = (b / m - a / n) / np.sqrt(pooled * (1 - pooled) * (1 / n + 1 / m))
    return "two_proportion_z", float(z), float(2 * stats.norm.sf(abs(z)))


def _as_array(name: str, side: str, values: object) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) < 2:
        raise DataError(
            f"output drift: metric '{name}' ({side}) needs a 1-D array of >= 2 values, got {arr.shape}"
        )
    if arr.dtype != bool and not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"output drift: metric '{name}' ({side}) has non-numeric values ({arr.dtype})")
    if arr.dtype != bool and not np.isfinite(arr).all():
        raise DataError(f"output drift: metric '{name}' ({side}) contains NaN or infinite values")
    return arr


def output_drift(
    reference: Mapping[str, np.ndarray],
    production: Mapping[str, np.ndarray],
    alpha: float = 0.05,
    correction: str = "holm",
) -> list[MetricDrift]:
    """Test every metric present on both sides; correct the p-values across metrics.

    Args:
        reference: name -> [n] values from the reference period (e.g. the evaluation of the promoted model).
        production: name -> [m] values from production. Bool arrays are rates (proportion test);
            numeric arrays are distributions (KS test). Both sides of a metric must have the same kind.
        alpha: family-wise significance level.
        correction: 'holm' (default), 'bonferroni' or 'none'.

    Returns:
        One MetricDrift per shared metric, in the reference's key order. ``reference_value`` /
        ``production_value`` are the means (rates for flags).
    """
    if correction not in CORRECTIONS:
        raise ConfigError(f"output drift: correction={correction!r}; choose one of {', '.join(CORRECTIONS)}")
    if not 0 < alpha < 1:
        raise ConfigError(f"output drift: alpha={alpha} must be in (0, 1)")
    from scipy import stats

    names = [k for k in reference if k in production]
    if not names:
        raise DataError(
            f"output drift: no metric on both sides (reference: {sorted(reference)}, "
            f"production: {sorted(production)})"
        )
    rows: list[tuple[str, str, float, float, float, float]] = []
    for name in names:
        ref = _as_array(name, "reference", reference[name])
        prod = _as_array(name, "production", production[name])
        if (ref.dtype == bool) != (prod.dtype == bool):
            raise DataError(f"output drift: metric '{name}' is boolean on one side and numeric on the other")
        if ref.dtype == bool:
            test, stat, p = two_proportion_test(ref, prod)
        else:
            res = stats.ks_2samp(ref, prod)
            test, stat, p = "ks_2samp", float(res.statistic), float(res.pvalue)
        rows.append((name, test, stat, p, float(ref.mean()), float(prod.mean())))
    adjusted = CORRECTIONS[correction](np.array([r[3] for r in rows]))
    return [
        MetricDrift(name, test, stat, p, float(adj), bool(adj < alpha), ref_v, prod_v)
        for (name, test, stat, p, ref_v, prod_v), adj in zip(rows, adjusted, strict=True)
    ]


def response_metrics(responses: list[str], rewards: list[float] | None = None) -> dict[str, np.ndarray]:
    """The output metrics of a set of responses, for :func:`output_drift`.

    Returns ``response_length`` [n] (whitespace-separated words, float), ``refusal`` [n] bool
    (:func:`rlhfops.measures.refusal.is_refusal`, the rule the red team uses) and, when ``rewards`` is
    given, ``reward_score`` [n].
    """
    out = {
        "response_length": np.array([len(r.split()) for r in responses], dtype=np.float64),
        "refusal": np.array([is_refusal(r) for r in responses], dtype=bool),
    }
    if rewards is not None:
        out["reward_score"] = np.asarray(rewards, dtype=np.float64)
    return out
