"""How a KL value is read by a person: which estimator produced it, and whether it can be negative.

rlhfops reports KL(policy || reference) per reply as the summed k3 estimator (Schulman 2020,
"Approximating KL Divergence"; :func:`rlhfops.train.kl.sequence_kl`): unbiased and never negative.
Evaluations record it as ``meta.kl_estimator = "k3"`` (:data:`REPORTED`). Evaluations and PPO runs
written before that (no estimator recorded) may hold the summed k1 (log-ratio) estimate, which is
unbiased too but can be negative on a few sampled replies; a negative value is then shown with that
explanation rather than as a bare number that reads like a bug. Pure, no torch.
"""

from __future__ import annotations

REPORTED = "k3"  # the estimator every KL rlhfops shows to people is computed with (summed over a reply)
NON_NEGATIVE = frozenset({"k2", "k3"})
UNIT = "nats per reply"
NOTE = "summed k3 estimator, never negative"
NEGATIVE_NOTE = (
    "negative: an older record without a named estimator (the summed k1 log-ratio, which can fall below "
    "zero on a few sampled replies; the true KL cannot); re-run `rlhfops eval run` for the k3 estimate"
)


def kl_note(value: float | None, estimator: str | None) -> str:
    """The explanation that goes next to a KL ``value`` measured with ``estimator`` (None: not recorded)."""
    if value is None:
        return ""
    if estimator in NON_NEGATIVE:
        return f"{UNIT}, summed {estimator} estimator, never negative"
    if estimator is not None:
        return f"{UNIT}, {estimator} estimator" + (", which can be negative" if value < 0 else "")
    return f"{UNIT}; {NEGATIVE_NOTE}" if value < 0 else f"{UNIT}; estimator not recorded"


def curve_note(values: list[float]) -> str:
    """The KL axis label of a training curve (PPO logs the summed k3 as ``kl``; older runs may not)."""
    if any(v < 0 for v in values):
        return "KL to the reference (an older run's k1 estimate: can be negative)"
    return f"KL to the reference ({NOTE})"
