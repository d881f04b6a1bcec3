"""Annotation quality from preference labels: pure functions, dataclass results, no database.

A label is a rater's choice on a pair, in canonical terms (left/right already undone: ``"A"`` is
response 1): ``"A"``, ``"B"``, ``"tie"``, ``"both_bad"``; ``"skip"`` is accepted and ignored (no
judgement). Inputs are any iterable of :class:`Label`, of mappings or objects with the fields
``item`` (or ``item_id``), ``rater``, ``choice`` and optionally ``at`` (or ``created_at``) and
``batch``, or of tuples ``(item, rater, choice[, at[, batch]])``. One label per (item, rater): a later
duplicate replaces an earlier one.

What the annotation lead sees (issue 5):

* :func:`rater_agreement` -- per rater, the share of their labels that agree with the majority of the
  other raters on the item, and the raters x raters pairwise agreement matrix;
* :func:`gold_accuracy` -- accuracy on gold items per rater over windows (batch, time or count), with a
  drift flag when the recent accuracy dropped by ``drop`` or is under ``floor``;
* :func:`difficulty_report` -- agreement on easy vs hard items; "annotation collapse" when raters agree
  on the easy items but hard items are at chance (labels there carry no signal);
* :func:`overall_agreement` -- percent agreement and Krippendorff's alpha, warning under 0.70;
* :func:`calibration_result` -- a calibration round: pairwise and overall agreement, split items,
  pass at 0.65;
* :func:`rater_turnover` -- share of the current rater pool that is new, flagged over 30%;
* :func:`aggregate_pairs` -- the export rule: plurality per pair, ties / both-bad kept or dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rlhfops.annotate.agreement import krippendorff_alpha, percent_agreement
from rlhfops.annotate.label_table import (
    CHOICES,
    IGNORED,
    Label,
    LabelTable,
    as_labels,
    label_table,
    safe_metric,
)
from rlhfops.annotate.quality_drift import (
    DifficultyBucket,
    DifficultyReport,
    GoldReport,
    GoldWindow,
    RaterGold,
    RaterTurnover,
    difficulty_report,
    gold_accuracy,
    rater_turnover,
    raters_between,
    split_half_difficulty,
)
from rlhfops.errors import UserError

__all__ = [
    "CHOICES",
    "IGNORED",
    "AggregatedPair",
    "Aggregation",
    "CalibrationResult",
    "DifficultyBucket",
    "DifficultyReport",
    "GoldReport",
    "GoldWindow",
    "Label",
    "OverallAgreement",
    "RaterAgreement",
    "RaterAgreementReport",
    "RaterGold",
    "RaterTurnover",
    "SplitItem",
    "aggregate_pairs",
    "as_labels",
    "calibration_result",
    "difficulty_report",
    "gold_accuracy",
    "overall_agreement",
    "rater_agreement",
    "rater_turnover",
    "raters_between",
    "split_half_difficulty",
]

Policy = Literal["keep", "drop"]
_MAX_LABEL_PAIRS = (
    20_000_000  # above this many same-item label pairs, pairwise agreement uses matrix products
)

# ----------------------------------------------------------------------------------------------------
# Per rater: agreement with the others, pairwise matrix
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RaterAgreement:
    rater: str
    n_labels: int
    n_compared: int  # items where the other raters had a strict plurality (at least ``min_others`` labels)
    with_majority: float | None  # share of those where this rater chose the others' plurality
    mean_pairwise: float | None  # agreeing share over all (item, other rater) pairs


@dataclass(frozen=True)
class RaterAgreementReport:
    raters: list[str]
    per_rater: list[RaterAgreement]
    pairwise: np.ndarray  # float [R, R]: share of common items on which i and j chose the same; NaN if none
    common: np.ndarray  # int [R, R]: items both labelled

    def pairwise_dict(self) -> dict[str, float]:
        """``{"a|b": agreement}`` for rater pairs with common items (a < b)."""
        out = {}
        for i, a in enumerate(self.raters):
            for j in range(i + 1, len(self.raters)):
                if self.common[i, j]:
                    out[f"{a}|{self.raters[j]}"] = float(self.pairwise[i, j])
        return out


def _pairwise(t: LabelTable) -> tuple[np.ndarray, np.ndarray]:
    """(agreement [R, R], common items [R, R]) from every ordered pair of labels on the same item."""
    r = len(t.raters)
    per_item = np.bincount(t.item, minlength=len(t.items))
    if int((per_item**2).sum()) > _MAX_LABEL_PAIRS:  # dense overlap: raters x items matrix products
        codes = t.codes()
        present = (~np.isnan(codes)).astype(np.float64)
        common = (present @ present.T).round().astype(np.int64)
        agree = sum(
            (codes == c).astype(np.float64) @ (codes == c).T.astype(np.float64) for c in range(len(CHOICES))
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(common > 0, agree / np.maximum(common, 1), np.nan), common
    order = np.argsort(t.item, kind="stable")
    rater, choice, item = t.rater[order], t.choice[order], t.item[order]
    start = np.cumsum(per_item) - per_item
    reps = per_item[item]
    left = np.repeat(np.arange(len(item)), reps)
    right = start[item[left]] + (np.arange(len(left)) - np.repeat(np.cumsum(reps) - reps, reps))
    key = rater[left] * r + rater[right]
    common = np.bincount(key, minlength=r * r).reshape(r, r)
    agree = np.bincount(key, weights=choice[left] == choice[right], minlength=r * r).reshape(r, r)
    with np.errstate(invalid="ignore", divide="ignore"):
        pairwise = np.where(common > 0, agree / np.maximum(common, 1), np.nan)
    return pairwise, common


def rater_agreement(labels: Iterable[Any], min_others: int = 1) -> RaterAgreementReport:
    """Each rater against the others.

    ``with_majority``: over the items the rater labelled where the *other* raters gave at least
    ``min_others`` labels and one choice has strictly more of them than any other, the share where the
    rater chose it (ties among the others: the item is not counted). ``pairwise[i, j]``: share of the
    items labelled by both on which they chose the same; ``mean_pairwise`` pools a rater's row.
    Cost: one pass over the labels plus ``sum_items labels^2`` label pairs.
    """
    t = label_table(as_labels(labels))
    pairwise, common = _pairwise(t)
    n_r = len(t.raters)
    others = t.counts()[t.item] - np.eye(len(CHOICES), dtype=np.int64)[t.choice]  # [N, C] per label
    top = others.max(axis=1)
    usable = ((others == top[:, None]).sum(axis=1) == 1) & (others.sum(axis=1) >= max(min_others, 1))
    hit = usable & (others[np.arange(len(t.choice)), t.choice] == top)
    n_labels = np.bincount(t.rater, minlength=n_r)
    n_compared = np.bincount(t.rater, weights=usable, minlength=n_r).astype(np.int64)
    n_hit = np.bincount(t.rater, weights=hit, minlength=n_r)
    off = ~np.eye(n_r, dtype=bool)
    pairs = np.where(off, common, 0).sum(axis=1)
    agreeing = np.where(off & (common > 0), np.nan_to_num(pairwise) * common, 0).sum(axis=1)
    per = [
        RaterAgreement(
            rater,
            int(n_labels[i]),
            int(n_compared[i]),
            float(n_hit[i] / n_compared[i]) if n_compared[i] else None,
            float(agreeing[i] / pairs[i]) if pairs[i] else None,
        )
        for i, rater in enumerate(t.raters)
    ]
    return RaterAgreementReport(t.raters, per, pairwise, common)


# ----------------------------------------------------------------------------------------------------
# Overall agreement, calibration rounds, turnover
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverallAgreement:
    percent_agreement: float | None
    alpha: float | None  # Krippendorff's alpha, nominal
    n_items: int  # items with >= 2 labels
    n_labels: int
    n_raters: int
    threshold: float
    warning: str | None


def overall_agreement(labels: Iterable[Any], threshold: float = 0.70) -> OverallAgreement:
    """Percent agreement and alpha over all labels; a warning when agreement is under ``threshold``."""
    labs = as_labels(labels)
    t = label_table(labs)
    matrix = t.codes()
    pct = safe_metric(percent_agreement, matrix) if labs else None
    alpha = safe_metric(krippendorff_alpha, matrix) if labs else None
    n_items = int((t.counts().sum(axis=1) >= 2).sum())
    warning = None
    if pct is None:
        warning = "agreement undefined: no pair has two or more labels yet (set overlap k >= 2)"
    elif pct < threshold:
        warning = (
            f"overall agreement {pct:.0%} < {threshold:.0%}: labels this noisy train a weak reward model; "
            "run a calibration round and tighten the guidelines"
        )
    return OverallAgreement(pct, alpha, n_items, len(labs), len(t.raters), threshold, warning)


@dataclass(frozen=True)
class SplitItem:
    item: Hashable
    counts: dict[str, int]  # choice -> raters
    top_share: float  # share of the most common choice
    agreement: float  # share of agreeing rater pairs


@dataclass(frozen=True)
class CalibrationResult:
    raters: list[str]
    n_items: int
    overall: float | None  # percent agreement
    alpha: float | None
    pairwise: dict[str, float]  # "a|b" -> agreement on common items
    per_rater: list[RaterAgreement]
    split_items: list[SplitItem]  # most split first
    missing: dict[str, int]  # rater -> calibration items not labelled yet
    threshold: float

    @property
    def complete(self) -> bool:
        return not any(self.missing.values())

    @property
    def passed(self) -> bool:
        return self.overall is not None and self.overall >= self.threshold

    @property
    def status(self) -> str:
        return "open" if not self.complete else ("passed" if self.passed else "failed")

    @property
    def message(self) -> str:
        if self.status == "open":
            return f"open: {sum(1 for v in self.missing.values() if v)} rater(s) still labelling"
        if self.passed:
            return f"passed: overall agreement {self.overall:.0%} >= {self.threshold:.0%}"
        shown = "undefined" if self.overall is None else f"{self.overall:.0%}"
        return (
            f"failed: overall agreement {shown} < {self.threshold:.0%}; the guidelines are too vague: "
            f"discuss the {len(self.split_items)} split item(s), revise, and run a new round"
        )


def calibration_result(
    labels: Iterable[Any],
    items: Iterable[Hashable] | None = None,
    raters: Iterable[str] | None = None,
    threshold: float = 0.65,
    split_below: float = 0.75,
) -> CalibrationResult:
    """The result of a calibration round (every rater labels the same items).

    items / raters: the round's items and expected raters (default: those in the labels), for the
    ``missing`` count. Overall agreement is percent agreement (:func:`percent_agreement`); the round
    passes at ``>= threshold`` (default 0.65). Split items: items with 2+ labels whose most common
    choice has a share under ``split_below``, most split first -- the agenda of the calibration session.
    """
    labs = as_labels(labels)
    item_list = list(dict.fromkeys(items)) if items is not None else list(dict.fromkeys(x.item for x in labs))
    wanted = set(item_list)
    labs = [x for x in labs if x.item in wanted]
    rater_list = sorted(set(raters) if raters is not None else {x.rater for x in labs})
    report = rater_agreement(labs)
    matrix = label_table(labs).codes()
    by_item: dict[Hashable, Counter[str]] = {}
    for lab in labs:
        by_item.setdefault(lab.item, Counter())[lab.choice] += 1
    split = []
    for item in item_list:
        c = by_item.get(item, Counter())
        m = sum(c.values())
        if m >= 2 and max(c.values()) / m < split_below:
            agree = sum(v * (v - 1) for v in c.values()) / (m * (m - 1))
            split.append(SplitItem(item, dict(c), max(c.values()) / m, agree))
    split.sort(key=lambda s: (s.agreement, s.top_share))
    done = Counter(x.rater for x in labs)
    return CalibrationResult(
        rater_list,
        len(item_list),
        safe_metric(percent_agreement, matrix) if labs else None,
        safe_metric(krippendorff_alpha, matrix) if labs else None,
        report.pairwise_dict(),
        report.per_rater,
        split,
        {r: len(item_list) - done.get(r, 0) for r in rater_list},
        threshold,
    )


# ----------------------------------------------------------------------------------------------------
# Export aggregation
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AggregatedPair:
    item: Hashable
    choice: str | None  # the plurality choice; None when two choices tie for the top
    counts: dict[str, int]
    n_labels: int
    agreement: float  # share of the pair's labels equal to ``choice`` (0 when None)
    pairwise_agreement: float | None  # share of agreeing rater pairs (None with one label)
    kept: bool
    reason: str | None  # why dropped: too_few_labels, no_majority, tie, both_bad


@dataclass(frozen=True)
class Aggregation:
    pairs: list[AggregatedPair]
    kept: int
    dropped: dict[str, int]
    percent_agreement: float | None
    alpha: float | None
    policy: dict[str, str]


def aggregate_pairs(
    labels: Iterable[Any], *, tie: Policy = "drop", both_bad: Policy = "drop", min_labels: int = 1
) -> Aggregation:
    """The export rule: the plurality choice per pair (``skip`` ignored).

    A pair is dropped when it has fewer than ``min_labels`` labels, when two choices tie for the most
    votes (``no_majority``), or when its choice is ``tie`` / ``both_bad`` and that policy is ``"drop"``.
    Per pair: ``agreement`` = share of labels equal to the choice, ``pairwise_agreement`` = share of
    agreeing rater pairs. Overall: percent agreement and Krippendorff's alpha (nominal) over all labels.
    """
    for name, value in (("tie", tie), ("both_bad", both_bad)):
        if value not in ("keep", "drop"):
            raise UserError(f"aggregate_pairs: {name}={value!r}; use 'keep' or 'drop'")
    labs = as_labels(labels)
    by_item: dict[Hashable, Counter[str]] = {}
    for lab in labs:
        by_item.setdefault(lab.item, Counter())[lab.choice] += 1
    policy = {"tie": tie, "both_bad": both_bad}
    pairs, dropped = [], Counter()
    for item, c in by_item.items():
        n = sum(c.values())
        ranked = c.most_common()
        choice = None if len(ranked) > 1 and ranked[0][1] == ranked[1][1] else ranked[0][0]
        reason = None
        if n < min_labels:
            reason = "too_few_labels"
        elif choice is None:
            reason = "no_majority"
        elif choice in policy and policy[choice] == "drop":
            reason = choice
        if reason:
            dropped[reason] += 1
        pairwise = sum(v * (v - 1) for v in c.values()) / (n * (n - 1)) if n >= 2 else None
        agreement = c[choice] / n if choice else 0.0
        pairs.append(AggregatedPair(item, choice, dict(c), n, agreement, pairwise, reason is None, reason))
    matrix = label_table(labs).codes()
    return Aggregation(
        pairs,
        sum(p.kept for p in pairs),
        dict(dropped),
        safe_metric(percent_agreement, matrix) if labs else None,
        safe_metric(krippendorff_alpha, matrix) if labs else None,
        policy,
    )
