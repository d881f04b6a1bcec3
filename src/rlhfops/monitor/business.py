"""Business metrics in production against the baseline recorded in the task spec (Play 1).

Three metrics, each with a 95% confidence interval (``confidence`` is configurable):

* ``task_completion_rate`` -- share of outputs whose task was completed (higher is better): a
  proportion with the Wilson score interval (Wilson 1927, JASA 22; recommended over the Wald interval by
  Brown, Cai & DasGupta 2001, Statistical Science 16);
* ``review_minutes_per_output`` -- human review minutes per output (lower is better): the mean with a
  Student t interval, mean +- t_{1-a/2, n-1} s / sqrt(n) (valid for large n by the CLT even when
  minutes are skewed); ``method="bootstrap"`` gives a percentile bootstrap interval instead
  (Efron & Tibshirani 1993, ch. 13);
* ``client_flag_rate`` -- share of outputs a client flagged as an error (lower is better): Wilson.

``better`` is True when the whole interval lies on the good side of the baseline, False when it lies
wholly on the bad side, and None when the interval contains the baseline (not distinguishable), when
the baseline is missing or when no record carries the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlhfops.errors import ConfigError
from rlhfops.measures.intervals import bootstrap_interval, t_interval, wilson_interval

# name -> (record field, kind, higher is better)
METRICS: dict[str, tuple[str, str, bool]] = {
    "task_completion_rate": ("task_completed", "proportion", True),
    "review_minutes_per_output": ("review_minutes", "mean", False),
    "client_flag_rate": ("client_flag", "proportion", False),
}


@dataclass(frozen=True)
class BusinessMetric:
    """A business metric now vs its baseline: point estimate, CI, and whether it is better."""

    name: str
    baseline: float | None
    current: float | None
    ci_low: float | None
    ci_high: float | None
    better: bool | None
    n: int


def _field(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, Mapping) else getattr(record, name, None)


def _verdict(baseline: float | None, lo: float, hi: float, higher_better: bool) -> bool | None:
    if baseline is None or not np.isfinite(lo) or not np.isfinite(hi):
        return None
    if lo > baseline:
        return higher_better
    if hi < baseline:
        return not higher_better
    return None


def compare_to_baseline(
    baseline: Mapping[str, float],
    records: Iterable[Any],
    confidence: float = 0.95,
    method: str = "t",
) -> list[BusinessMetric]:
    """Compare production records against the spec's business baseline.

    Args:
        baseline: metric name -> baseline value (keys of :data:`METRICS`; missing ones give better=None).
        records: ProductionRecord objects or dicts with the optional fields ``task_completed`` (bool),
            ``review_minutes`` (float >= 0) and ``client_flag`` (bool); a None field is not counted.
        confidence: interval level.
        method: 't' (Student t) or 'bootstrap' for the review-minutes interval.

    Returns:
        One BusinessMetric per entry of :data:`METRICS`, in that order.
    """
    unknown = sorted(set(baseline) - set(METRICS))
    if unknown:
        raise ConfigError(f"business baseline: unknown metric(s) {unknown}; valid: {', '.join(METRICS)}")
    if method not in ("t", "bootstrap"):
        raise ConfigError(f"business metrics: method={method!r}; use 't' or 'bootstrap'")
    values: dict[str, list[float]] = {name: [] for name in METRICS}
    for rec in records:
        for name, (fld, _, _) in METRICS.items():
            v = _field(rec, fld)
            if v is not None:
                values[name].append(float(v))
    out = []
    for name, (_, kind, higher_better) in METRICS.items():
        x = np.asarray(values[name], dtype=np.float64)
        base = baseline.get(name)
        base = None if base is None else float(base)
        if len(x) == 0:
            out.append(BusinessMetric(name, base, None, None, None, None, 0))
            continue
        if kind == "proportion":
            lo, hi = wilson_interval(int(x.sum()), len(x), confidence)
        elif method == "t":
            lo, hi = t_interval(x, confidence)
        else:
            lo, hi = bootstrap_interval(x, confidence)
        ok = np.isfinite(lo)
        out.append(
            BusinessMetric(
                name,
                base,
                float(x.mean()),
                float(lo) if ok else None,
                float(hi) if ok else None,
                _verdict(base, lo, hi, higher_better),
                len(x),
            )
        )
    return out
