"""Simulated raters (demo): deterministic, marked simulated, follow the choice model, one rater drifts."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from rlhfops.annotate.quality import aggregate_pairs, gold_accuracy
from rlhfops.annotate.simulate import (
    SimPair,
    SimRater,
    default_raters,
    simulate_labels,
    strength_from_scores,
)
from rlhfops.errors import UserError


def _pairs(n=400, seed=0):
    rng = np.random.default_rng(seed)
    pairs = [SimPair(f"p{i}", float(rng.normal(0, 1.5)), bool(rng.random() < 0.05)) for i in range(n)]
    gold = [SimPair(f"g{i}", float(rng.choice([-1, 1]) * rng.uniform(1.5, 3))) for i in range(60)]
    return pairs, gold


def test_deterministic_by_seed_and_marked_simulated():
    pairs, gold = _pairs()
    a = simulate_labels(pairs, gold_pairs=gold, seed=3)
    b = simulate_labels(pairs, gold_pairs=gold, seed=3)
    c = simulate_labels(pairs, gold_pairs=gold, seed=4)
    assert a.labels == b.labels and a.gold == b.gold
    assert [x.choice for x in a.labels] != [x.choice for x in c.labels]
    assert a.simulated and "SIMULATED" in a.note
    assert all(x.simulated for x in a.labels) and all(r.simulated for r in a.raters)
    assert all(x.rater.startswith("sim-") for x in a.labels)


def test_assignment_k_distinct_raters_gold_blind_and_never_twice():
    pairs, gold = _pairs()
    sim = simulate_labels(pairs, k=3, batch_size=50, gold_pairs=gold, gold_per_batch=6)
    production = [x for x in sim.labels if not x.is_gold]
    per_item = Counter(x.item for x in production)
    assert set(per_item.values()) == {3} and len(per_item) == 400
    keys = [(x.item, x.rater) for x in sim.labels]
    assert len(keys) == len(set(keys))  # no rater sees an item (gold included) twice
    gold_per = Counter((x.rater, x.batch) for x in sim.labels if x.is_gold)
    assert set(gold_per.values()) == {6} and len(gold_per) == 8 * 8  # 8 raters x 8 batches
    assert sim.gold == {p.item: ("A" if p.strength > 0 else "B") for p in gold}
    # times increase with the batch
    first = {x.batch: x.at for x in sorted(sim.labels, key=lambda x: x.at)}
    assert list(first) == [f"sim-batch-{i}" for i in range(1, 9)]


def _shares(pair, rater, n=4000, **kw):
    pairs = [SimPair(i, pair.strength, pair.both_bad) for i in range(n)]
    sim = simulate_labels(pairs, [rater], k=1, batch_size=n, seed=7, **kw)
    c = Counter(x.choice for x in sim.labels)
    return {k: v / n for k, v in c.items()}


def test_choice_model_probabilities():
    tol = 4 * math.sqrt(0.25 / 4000)  # 4 binomial standard deviations
    sharp = SimRater("sim-a", temperature=1.0, lapse=0.0)
    # Bradley-Terry: P(A) = sigmoid(s / T) = sigmoid(1) = 0.7311
    assert _shares(SimPair(0, 1.0), sharp)["A"] == pytest.approx(1 / (1 + math.exp(-1)), abs=tol)
    assert _shares(SimPair(0, -2.0), SimRater("sim-b", temperature=0.5, lapse=0.0))["A"] == pytest.approx(
        1 / (1 + math.exp(4)), abs=tol
    )
    # a full lapse is a coin flip whatever the strength
    assert _shares(SimPair(0, 5.0), SimRater("sim-c", lapse=1.0))["A"] == pytest.approx(0.5, abs=tol)
    # expected accuracy formula: (1 - e) sigmoid(|s| / T) + e / 2
    r = SimRater("sim-d", temperature=0.8, lapse=0.2)
    assert _shares(SimPair(0, 1.2), r)["A"] == pytest.approx(r.expected_accuracy(1.2), abs=tol)
    # near-equal pairs are ties at tie_rate (when allowed), both-bad pairs both_bad at the recall
    ties = _shares(SimPair(0, 0.0), sharp, tie_rate=0.5)
    assert ties["tie"] == pytest.approx(0.5, abs=tol) and ties["A"] == pytest.approx(0.25, abs=tol)
    assert "tie" not in _shares(SimPair(0, 0.0), sharp, allow_tie=False)
    assert _shares(SimPair(0, 1.0, both_bad=True), sharp)["both_bad"] == pytest.approx(0.8, abs=tol)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_drifting_rater_is_the_one_gold_accuracy_flags(seed):
    pairs, gold = _pairs(seed=seed)
    raters = default_raters(8, drifting=1, seed=seed)
    assert raters[-1].name.endswith("-drifting") and raters[-1].drift > 0
    assert sum(r.drift > 0 for r in raters) == 1
    sim = simulate_labels(pairs, raters, gold_pairs=gold, gold_per_batch=6, seed=seed)
    rep = gold_accuracy(sim.labels, sim.gold)
    assert rep.flagged == [raters[-1].name]
    drifter = next(r for r in rep.raters if r.rater == raters[-1].name)
    assert drifter.windows[0].accuracy > drifter.windows[-1].accuracy


def test_majority_of_simulated_raters_recovers_clear_preferences():
    pairs, _gold = _pairs()
    sim = simulate_labels(pairs, k=5, seed=0)
    agg = aggregate_pairs(sim.labels)
    truth = {
        p.item: ("A" if p.strength > 0 else "B") for p in pairs if abs(p.strength) > 1.5 and not p.both_bad
    }
    got = {p.item: p.choice for p in agg.pairs}
    right = sum(got[i] == t for i, t in truth.items())
    assert right / len(truth) > 0.9


def test_strength_and_bad_input():
    assert strength_from_scores(4, 2, scale=2) == 1.0
    with pytest.raises(UserError, match="scale must be > 0"):
        strength_from_scores(4, 2, scale=0)
    pairs, _ = _pairs(10)
    with pytest.raises(UserError, match="k=9 raters per pair but 8"):
        simulate_labels(pairs, k=9)
    with pytest.raises(UserError, match="start with 'sim-'"):
        simulate_labels(pairs, [SimRater("alice")], k=1)
    with pytest.raises(UserError, match="unique"):
        simulate_labels(pairs + pairs[:1], k=1)
    with pytest.raises(UserError, match="temperature > 0"):
        simulate_labels(pairs, [SimRater("sim-x", temperature=0)], k=1)
    with pytest.raises(UserError, match="no pairs"):
        simulate_labels([], k=1)
