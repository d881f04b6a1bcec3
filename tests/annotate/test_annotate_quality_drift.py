"""Gold accuracy over time (rater drift) and item difficulty (annotation collapse)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from rlhfops.annotate.quality import difficulty_report, gold_accuracy, split_half_difficulty
from rlhfops.errors import UserError

T0 = datetime(2026, 5, 4, 9, 0)


def _gold_run(per_batch: dict[str, list[int]]):
    """Gold labels of two raters over batches: ``per_batch[rater]`` = correct answers per batch of 10."""
    gold = {f"g{b}-{i}": "A" for b in range(3) for i in range(10)}
    labels = []
    for rater, corrects in per_batch.items():
        for b, n_right in enumerate(corrects):
            for i in range(10):
                at = T0 + timedelta(days=b, minutes=i)
                labels.append((f"g{b}-{i}", rater, "A" if i < n_right else "B", at, f"batch-{b}"))
    labels.append(("not-gold", "steady", "B", T0, "batch-0"))  # ignored: not a gold item
    return labels, gold


def test_gold_drift_flags_the_rater_whose_accuracy_fell():
    labels, gold = _gold_run({"steady": [9, 9, 9], "drifter": [10, 10, 5]})
    rep = gold_accuracy(labels, gold)  # batches, drop 0.15, floor 0.6, min_gold 10
    by = {r.rater: r for r in rep.raters}
    # steady: baseline (batches 0-1) 18/20 = 0.9, recent (batch 2) 9/10 = 0.9 -> nothing
    s = by["steady"]
    assert (s.n, s.correct, s.baseline_accuracy, s.recent_accuracy, s.flagged) == (30, 27, 0.9, 0.9, False)
    # drifter: baseline 20/20 = 1.0, recent 5/10 = 0.5: dropped 0.5 >= 0.15 and under the 0.6 floor
    d = by["drifter"]
    assert (d.baseline_accuracy, d.recent_accuracy, d.drop) == (1.0, 0.5, 0.5)
    assert d.flagged and len(d.reasons) == 2
    assert "fell from 100% to 50%" in d.reasons[0] and "50% < floor 60%" in d.reasons[1]
    assert rep.flagged == ["drifter"]
    assert [w.key for w in d.windows] == ["batch-0", "batch-1", "batch-2"]
    assert [(w.n, w.correct) for w in d.windows] == [(10, 10), (10, 10), (10, 5)]
    # Wilson 95% for 9/10: centre (0.9 + z^2/20) / (1 + z^2/10), half z sqrt(0.009 + z^2/400) / (1 + z^2/10)
    # with z = 1.959964 -> (0.5958, 0.9821)
    lo, hi = s.windows[0].ci95
    assert (round(lo, 4), round(hi, 4)) == (0.5958, 0.9821)


def test_gold_drift_thresholds_and_time_and_count_windows():
    labels, gold = _gold_run({"steady": [9, 9, 9], "drifter": [10, 10, 9]})
    # drop 0.1 exactly reaches drop=0.1 but not the default 0.15
    assert gold_accuracy(labels, gold).flagged == []
    assert gold_accuracy(labels, gold, drop=0.1).flagged == ["drifter"]
    # a floor above 0.9 flags both
    assert gold_accuracy(labels, gold, floor=0.95).flagged == ["drifter", "steady"]
    # daily windows give the same three windows, keyed by their start
    rep = gold_accuracy(labels, gold, window="time", period=timedelta(days=1), drop=0.1)
    d = next(r for r in rep.raters if r.rater == "drifter")
    assert [w.key for w in d.windows] == [(T0 + timedelta(days=i)).isoformat() for i in range(3)]
    assert rep.flagged == ["drifter"]
    # count windows of 10 gold labels per rater: same split again
    rep = gold_accuracy(labels, gold, window="count", size=10, drop=0.1)
    d = next(r for r in rep.raters if r.rater == "drifter")
    assert [w.key for w in d.windows] == ["labels 1-10", "labels 11-20", "labels 21-30"]
    assert rep.flagged == ["drifter"]


def test_recent_window_extends_back_until_it_holds_min_gold():
    labels, gold = _gold_run({"drifter": [10, 10, 5]})
    # min_gold 15: the last batch (10 labels) is too few, so recent = batches 1-2 (15/20 = 0.75),
    # baseline = batch 0 (10/10): but the baseline has only 10 < 15 labels -> no drop verdict
    rep = gold_accuracy(labels, gold, min_gold=15)
    d = rep.raters[0]
    assert (d.recent_accuracy, d.baseline_accuracy, d.flagged) == (0.75, 1.0, False)
    # one window only: no baseline, only the floor applies
    rep = gold_accuracy(labels, gold, window="count", size=100, floor=0.9)
    d = rep.raters[0]
    assert (d.baseline_accuracy, d.recent_accuracy, d.flagged) == (None, 25 / 30, True)


def test_gold_accuracy_bad_input():
    labels, gold = _gold_run({"a": [9, 9, 9]})
    with pytest.raises(UserError, match="gold answer 'left'"):
        gold_accuracy(labels, {**gold, "g0-0": "left"})
    with pytest.raises(UserError, match="window='weekly'"):
        gold_accuracy(labels, gold, window="weekly")
    with pytest.raises(UserError, match="needs a batch"):
        gold_accuracy([(k, "a", "A") for k in gold], gold)
    with pytest.raises(UserError, match="needs a time"):
        gold_accuracy([(k, "a", "A") for k in gold], gold, window="time")


def _simulated(n_items=200, raters=10, easy_acc=0.97, hard_acc=0.5, seed=0):
    """Half easy, half hard pairs; raters pick the true answer with the bucket's accuracy."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(["A", "B"], size=n_items)
    labels, difficulty = [], {}
    for i in range(n_items):
        hard = i % 2 == 1
        difficulty[f"p{i}"] = 0.9 if hard else 0.1
        acc = hard_acc if hard else easy_acc
        for r in range(raters):
            other = "B" if truth[i] == "A" else "A"
            labels.append((f"p{i}", f"r{r}", truth[i] if rng.random() < acc else other))
    return labels, difficulty


def test_bucket_stats_hand_example():
    labels = [("e1", "x", "A"), ("e1", "y", "A"), ("e1", "z", "A"), ("e2", "x", "A"), ("e2", "y", "B")]
    labels += [("h1", "x", "A"), ("h1", "y", "B")]
    rep = difficulty_report(labels, {"e1": "easy", "e2": "easy", "h1": "hard"})
    easy, hard = rep.buckets
    # easy: e1 {A,A,A} 1, e2 {A,B} 0 -> 0.5; pooled A 4, B 1: chance = 4*3 / (5*4) = 0.6
    # alpha = 1 - (n-1)(n - sum o_cc) / (n^2 - sum n_c^2) with o_AA = 6/2 = 3: 1 - 4 * 2 / (25 - 17) = 0
    assert (easy.name, easy.n_items, easy.n_labels) == ("easy", 2, 5)
    assert (easy.percent_agreement, easy.chance_agreement, easy.alpha) == (0.5, 0.6, pytest.approx(0.0))
    assert (hard.name, hard.percent_agreement, hard.chance_agreement) == ("hard", 0.0, 0.0)
    assert rep.method == "given"


def test_annotation_collapse_flagged_when_hard_items_are_at_chance():
    labels, difficulty = _simulated(hard_acc=0.5)
    rep = difficulty_report(labels, difficulty)
    easy, hard = rep.buckets
    assert [b.name for b in rep.buckets] == ["easy", "hard"] and easy.n_items == hard.n_items == 100
    # easy: pairwise agreement ~ 0.97^2 + 0.03^2 = 0.94; hard: ~0.5, at chance (alpha ~ 0)
    assert easy.percent_agreement > 0.9
    assert abs(hard.alpha) < 0.05 and abs(hard.percent_agreement - hard.chance_agreement) < 0.05
    assert rep.collapse and "annotation collapse" in rep.message


def test_no_collapse_when_hard_items_still_carry_signal():
    labels, difficulty = _simulated(hard_acc=0.8)
    rep = difficulty_report(labels, difficulty)
    # hard: agreement ~ 0.8^2 + 0.2^2 = 0.68 vs chance ~0.5 -> alpha ~ 0.35
    assert rep.buckets[-1].alpha > 0.25
    assert not rep.collapse and rep.message is None
    # numeric difficulty with three buckets: quantile edges, names easy / medium / hard
    graded = {k: (0.1 if v < 0.5 else 0.5 + 0.1 * (int(k[1:]) % 4)) for k, v in difficulty.items()}
    rep3 = difficulty_report(labels, graded, n_buckets=3)
    assert [b.name for b in rep3.buckets] == ["easy", "medium", "hard"]
    assert sum(b.n_items for b in rep3.buckets) == 200


def test_split_half_difficulty_finds_the_hard_items_without_a_given_difficulty():
    labels, truth_difficulty = _simulated(hard_acc=0.5, raters=10)
    difficulty, held_out = split_half_difficulty(labels, seed=1)
    assert len(difficulty) == 200 and len(held_out) == 200 * 5
    # the first halves' disagreement separates the buckets (measured on disjoint labels)
    hard = np.mean([difficulty[k] for k, v in truth_difficulty.items() if v > 0.5])
    easy = np.mean([difficulty[k] for k, v in truth_difficulty.items() if v < 0.5])
    assert easy < 0.1 < 0.4 < hard
    rep = difficulty_report(labels, seed=1)
    assert rep.method == "split-half disagreement"
    assert rep.buckets[0].percent_agreement > rep.buckets[-1].percent_agreement + 0.3
    assert rep.buckets[-1].alpha < 0.1  # the hard bucket is at chance on the held-out halves
    with pytest.raises(UserError, match="4\\+ labels"):
        difficulty_report([("p", "a", "A"), ("p", "b", "B")])
