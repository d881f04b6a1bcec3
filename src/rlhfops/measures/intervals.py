"""Confidence intervals: Wilson score (proportions), Student t and percentile bootstrap (means).

Pure functions of counts / arrays; the normal and t quantiles come from scipy (imported when first used).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from rlhfops.errors import DataError


@lru_cache(maxsize=32)
def _z(confidence: float) -> float:
    """Two-sided standard-normal quantile z_{(1+c)/2} (cached: few distinct levels are ever used)."""
    from scipy import stats

    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson (1927, JASA 22) score interval for a binomial proportion p = k/n.

    centre = (p + z^2/2n) / (1 + z^2/n), half = z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n),
    clipped to [0, 1]; recommended over the Wald interval by Brown, Cai & DasGupta (2001, Stat. Sci. 16).
    ``successes`` may be fractional (ties counted as half a win). Raises DataError when n <= 0.
    """
    if n <= 0:
        raise DataError("wilson_interval: n must be > 0")
    z = _z(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # exactly 0 (1) at p = 0 (1), as the formula gives without floating-point rounding
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)
    hi = 1.0 if successes >= n else min(1.0, centre + half)
    return float(lo), float(hi)


def t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Student t interval for a mean: x_bar +- t_{(1+c)/2, n-1} s / sqrt(n).

    values [n]; (nan, nan) when n < 2.
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1)) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def bootstrap_interval(
    values: np.ndarray, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (Efron & Tibshirani 1993, ch. 13). values [n] -> (low, high).

    ``n_resamples`` resamples of size n drawn with ``numpy.random.default_rng(seed)``; (nan, nan) if n < 2.
    """
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_resamples, len(x)))].mean(1)
    lo, hi = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def half_tie_interval(
    wins: int, ties: int, losses: int, confidence: float = 0.95
) -> tuple[float, float, float]:
    """(s, low, high) for the win rate with ties as half-wins, s = (W + T/2) / n.

    Wald interval with the exact multinomial variance of a linear function of proportions: per item the
    outcome is x in {1, 1/2, 0}, so Var(s) = (p_w + p_t/4 - s^2) / n (Agresti, *Categorical Data
    Analysis*, 3rd ed., §1.2 and §16.1), and s +- z sqrt(Var(s)) clipped to [0, 1]. Raises ValueError
    when there are no comparisons.
    """
    n = wins + ties + losses
    if n <= 0:
        raise ValueError("no comparisons")
    pw, pt = wins / n, ties / n
    s = pw + pt / 2
    var = max(pw + pt / 4 - s * s, 0.0) / n
    half = _z(confidence) * math.sqrt(var)
    return s, max(0.0, s - half), min(1.0, s + half)
