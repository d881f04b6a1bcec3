"""Rater quality over time and item difficulty: gold accuracy drift, easy vs hard items, turnover.

Pure functions on preference labels (see :mod:`rlhfops.annotate.label_table` for the accepted rows);
re-exported by :mod:`rlhfops.annotate.quality`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np

from rlhfops.annotate.agreement import krippendorff_alpha, percent_agreement
from rlhfops.annotate.label_table import CHOICES, Label, as_labels, label_table, safe_metric
from rlhfops.errors import UserError
from rlhfops.measures.intervals import wilson_interval

# ----------------------------------------------------------------------------------------------------
# Gold accuracy over time: drift
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoldWindow:
    key: str  # the batch, the window's start time (ISO) or "labels i-j"
    n: int
    correct: int
    accuracy: float
    ci95: tuple[float, float]  # Wilson score interval


@dataclass(frozen=True)
class RaterGold:
    rater: str
    n: int
    correct: int
    accuracy: float | None
    windows: list[GoldWindow]
    baseline_accuracy: float | None  # windows before the recent ones, pooled
    recent_accuracy: float | None  # the last windows, pooled until they hold >= min_gold labels
    drop: float | None  # baseline - recent
    flagged: bool
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GoldReport:
    raters: list[RaterGold]
    window: str
    drop: float
    floor: float
    min_gold: int

    @property
    def flagged(self) -> list[str]:
        return [r.rater for r in self.raters if r.flagged]


def _window_keys(
    gl: list[Label], window: str, period: timedelta, size: int, t0: datetime | None
) -> list[str]:
    if window == "batch":
        return [str(lab.batch) for lab in gl]
    if window == "time":
        assert t0 is not None
        return [(t0 + ((lab.at - t0) // period) * period).isoformat() for lab in gl]  # type: ignore[operator]
    return [f"labels {i // size * size + 1}-{i // size * size + size}" for i in range(len(gl))]


def gold_accuracy(
    labels: Iterable[Any],
    gold: Mapping[Hashable, str],
    *,
    window: Literal["batch", "time", "count"] = "batch",
    period: timedelta = timedelta(days=1),
    size: int = 20,
    drop: float = 0.15,
    floor: float = 0.6,
    min_gold: int = 10,
) -> GoldReport:
    """Accuracy on gold items per rater, per window, with a drift flag.

    gold: item -> the known answer (one of A / B / tie / both_bad). Windows: ``"batch"`` (the label's
    batch, ordered by the rater's first label in it: by time when every gold label has one, else by
    input order), ``"time"`` (``period``-long
    windows from the earliest gold label, needs ``at``) or ``"count"`` (each rater's gold labels in time
    order, ``size`` at a time). *Recent* is the last window, extended backwards until it holds at least
    ``min_gold`` labels; *baseline* is everything before. A rater is flagged when ``baseline - recent >=
    drop`` (both with >= ``min_gold`` labels) or when ``recent < floor`` (recent with >= ``min_gold``).
    Intervals: Wilson (1927) via :func:`rlhfops.measures.intervals.wilson_interval`.
    """
    if window not in ("batch", "time", "count"):
        raise UserError(f"gold_accuracy: window={window!r}; use batch, time or count")
    if size < 1 or min_gold < 1 or period <= timedelta(0):
        raise UserError(f"gold_accuracy: size ({size}), min_gold ({min_gold}) and period must be positive")
    bad = {k: v for k, v in gold.items() if v not in CHOICES}
    if bad:
        item, answer = next(iter(bad.items()))
        raise UserError(
            f"gold_accuracy: gold answer {answer!r} for item {item!r} is not one of {', '.join(CHOICES)}"
        )
    gl = [lab for lab in as_labels(labels) if lab.item in gold]
    if window == "batch" and any(lab.batch is None for lab in gl):
        raise UserError(
            "gold_accuracy: window='batch' needs a batch on every gold label; use window='time' or 'count'"
        )
    if window == "time" and any(lab.at is None for lab in gl):
        raise UserError("gold_accuracy: window='time' needs a time (at / created_at) on every gold label")
    if all(lab.at is not None for lab in gl):
        gl = sorted(gl, key=lambda lab: lab.at)  # type: ignore[arg-type, return-value]
    t0 = gl[0].at if gl else None
    shared = _window_keys(gl, window, period, size, t0) if window != "count" else None
    by_rater: dict[str, list[int]] = {}
    for i, lab in enumerate(gl):
        by_rater.setdefault(lab.rater, []).append(i)
    out = []
    for rater in sorted(by_rater):
        idx = by_rater[rater]
        mine = [gl[i] for i in idx]
        keys = (
            [shared[i] for i in idx] if shared is not None else _window_keys(mine, window, period, size, t0)
        )
        tally: dict[str, list[int]] = {}  # insertion order = chronological (or input) order
        for key, lab in zip(keys, mine, strict=True):
            tally.setdefault(key, [0, 0])
            tally[key][0] += 1
            tally[key][1] += int(lab.choice == gold[lab.item])
        wins = [GoldWindow(k, n, c, c / n, wilson_interval(c, n)) for k, (n, c) in tally.items()]
        out.append(_judge_rater(rater, wins, drop, floor, min_gold))
    return GoldReport(out, window, drop, floor, min_gold)


def _judge_rater(rater: str, wins: list[GoldWindow], drop: float, floor: float, min_gold: int) -> RaterGold:
    n, correct = sum(w.n for w in wins), sum(w.correct for w in wins)
    k = len(wins) - 1
    while k > 0 and sum(w.n for w in wins[k:]) < min_gold:
        k -= 1
    rn, rc = sum(w.n for w in wins[k:]), sum(w.correct for w in wins[k:])
    bn, bc = sum(w.n for w in wins[:k]), sum(w.correct for w in wins[:k])
    recent = rc / rn if rn else None
    baseline = bc / bn if bn else None
    reasons = []
    change = baseline - recent if baseline is not None and recent is not None else None
    if (
        change is not None and bn >= min_gold and rn >= min_gold and change >= drop - 1e-9
    ):  # a drop of exactly `drop` counts
        reasons.append(f"gold accuracy fell from {baseline:.0%} to {recent:.0%} (drop >= {drop:.0%})")
    if recent is not None and rn >= min_gold and recent < floor:
        reasons.append(f"recent gold accuracy {recent:.0%} < floor {floor:.0%}")
    return RaterGold(
        rater, n, correct, correct / n if n else None, wins, baseline, recent, change, bool(reasons), reasons
    )


# ----------------------------------------------------------------------------------------------------
# Item difficulty: easy vs hard, annotation collapse
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DifficultyBucket:
    name: str
    n_items: int
    n_labels: int
    percent_agreement: float | None
    chance_agreement: float | None  # sum_c n_c (n_c - 1) / (n (n - 1)) over the bucket's pairable labels
    alpha: float | None  # Krippendorff's alpha (nominal): agreement above chance


@dataclass(frozen=True)
class DifficultyReport:
    method: str
    buckets: list[DifficultyBucket]
    collapse: bool
    message: str | None


def split_half_difficulty(
    labels: Iterable[Any], seed: int = 0, min_labels: int = 4
) -> tuple[dict[Hashable, float], list[Label]]:
    """Difficulty without outside information, without circularity.

    For each item with at least ``min_labels`` labels, the labels are split at random (seeded) in two
    halves: the first half's disagreement (1 - its percent agreement) is the item's difficulty, the
    second half is returned for measuring. Agreement measured on the same labels that defined
    difficulty would make hard items disagree by construction.
    """
    rng = np.random.default_rng(seed)
    by_item: dict[Hashable, list[Label]] = {}
    for lab in as_labels(labels):
        by_item.setdefault(lab.item, []).append(lab)
    difficulty, held_out = {}, []
    for item, labs in by_item.items():
        if len(labs) < min_labels:
            continue
        perm = rng.permutation(len(labs))
        half = len(labs) // 2
        first = Counter(labs[i].choice for i in perm[:half])
        pairs = half * (half - 1)
        difficulty[item] = 1.0 - sum(c * (c - 1) for c in first.values()) / pairs
        held_out.extend(labs[i] for i in perm[half:])
    return difficulty, held_out


def _buckets(difficulty: Mapping[Hashable, Any], n_buckets: int) -> tuple[dict[Hashable, str], list[str]]:
    """(item -> bucket, bucket names from easiest to hardest)."""
    values = list(difficulty.values())
    if all(isinstance(v, str) for v in values):
        names = sorted(set(values), key=lambda b: (b.lower() != "easy", b.lower() == "hard", b))
        return {k: str(v) for k, v in difficulty.items()}, names
    d = np.asarray(values, dtype=np.float64)
    names = {2: ["easy", "hard"], 3: ["easy", "medium", "hard"]}.get(n_buckets) or [
        f"q{i + 1}" for i in range(n_buckets)
    ]
    edges = np.quantile(d, np.linspace(0, 1, n_buckets + 1)[1:-1])
    idx = np.searchsorted(edges, d, side="left")  # items equal to an edge go to the easier bucket
    used = set(idx.tolist())
    return {k: names[int(i)] for k, i in zip(difficulty, idx, strict=True)}, [
        name for i, name in enumerate(names) if i in used
    ]


def _bucket_stats(name: str, labs: list[Label]) -> DifficultyBucket:
    t = label_table(labs)
    counts = t.counts()  # [U, C]
    m = counts.sum(axis=1)
    pooled = counts[m >= 2].sum(axis=0).astype(np.float64)
    n = pooled.sum()
    chance = float((pooled * (pooled - 1)).sum() / (n * (n - 1))) if n >= 2 else None
    matrix = t.codes()
    return DifficultyBucket(
        name,
        len(t.items),
        len(labs),
        safe_metric(percent_agreement, matrix) if labs else None,
        chance,
        safe_metric(krippendorff_alpha, matrix) if labs else None,
    )


def difficulty_report(
    labels: Iterable[Any],
    difficulty: Mapping[Hashable, Any] | None = None,
    *,
    n_buckets: int = 2,
    easy_min: float = 0.8,
    chance_margin: float = 0.1,
    seed: int = 0,
) -> DifficultyReport:
    """Agreement per difficulty bucket, and an annotation-collapse flag.

    difficulty: item -> a number (higher = harder; e.g. 1 - |rubric score difference|, a reward-model
    margin's negative, the share of experts who missed a gold item), bucketed by quantiles into
    ``n_buckets`` ("easy", "hard" for 2), or item -> bucket name ("easy", "hard", ...). Without it,
    :func:`split_half_difficulty` is used. Collapse: the easiest bucket's percent agreement is
    ``>= easy_min`` while the hardest bucket's Krippendorff alpha is ``<= chance_margin``, i.e. raters
    agree where it is obvious but their labels on hard pairs are no better than chance.
    """
    labs = as_labels(labels)
    method = "given"
    if difficulty is None:
        difficulty, labs = split_half_difficulty(labs, seed=seed)
        method = "split-half disagreement"
        if not difficulty:
            raise UserError(
                "difficulty_report: no item has 4+ labels for split-half difficulty; pass difficulty="
            )
    if n_buckets < 2:
        raise UserError(f"difficulty_report: n_buckets={n_buckets}; at least 2 (easy, hard)")
    bucket_of, order = _buckets(difficulty, n_buckets)
    grouped: dict[str, list[Label]] = {}
    for lab in labs:
        if lab.item in bucket_of:
            grouped.setdefault(bucket_of[lab.item], []).append(lab)
    buckets = [_bucket_stats(name, grouped.get(name, [])) for name in order]
    easy, hard = buckets[0], buckets[-1]
    collapse, message = False, None
    if len(buckets) < 2 or easy.percent_agreement is None or hard.alpha is None:
        message = "collapse not assessed: the easy or hard bucket has no measurable agreement"
    elif easy.percent_agreement >= easy_min and hard.alpha <= chance_margin:
        collapse = True
        message = (
            f"annotation collapse: {easy.name} items {easy.percent_agreement:.0%} agreement but {hard.name} "
            f"items at chance (alpha {hard.alpha:.2f} <= {chance_margin}); hard-pair labels carry no signal: "
            "review the guidelines on hard cases in a calibration session"
        )
    return DifficultyReport(method, buckets, collapse, message)


@dataclass(frozen=True)
class RaterTurnover:
    share: float | None  # joined / pool now (None: empty pool now)
    share_left: float | None  # left / pool before
    joined: list[str]
    left: list[str]
    stayed: list[str]
    threshold: float
    flagged: bool


def rater_turnover(before: Iterable[str], after: Iterable[str], threshold: float = 0.30) -> RaterTurnover:
    """Turnover between two periods' rater pools: the share of the current pool that is new.

    Same definition as the monitor's trigger (``rlhfops.monitor.facts``): flagged when it exceeds
    ``threshold`` (30%: new raters have not been through calibration; re-enter Play 3).
    """
    b, a = set(before), set(after)
    joined, left, stayed = sorted(a - b), sorted(b - a), sorted(a & b)
    share = len(joined) / len(a) if a else None
    share_left = len(left) / len(b) if b else None
    return RaterTurnover(
        share, share_left, joined, left, stayed, threshold, share is not None and share > threshold
    )


def raters_between(labels: Iterable[Any], start: datetime | None, end: datetime | None) -> set[str]:
    """Raters with at least one label at ``start <= at < end`` (None: unbounded); needs label times."""
    out = set()
    for lab in as_labels(labels, keep_skips=True):
        if lab.at is None:
            raise UserError(f"raters_between: label of {lab.rater!r} on item {lab.item!r} has no time")
        if (start is None or lab.at >= start) and (end is None or lab.at < end):
            out.add(lab.rater)
    return out
