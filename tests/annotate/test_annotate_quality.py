"""Annotation quality: per-rater agreement, overall, calibration, turnover, export aggregation.

Each expected number is worked out by hand in the comments.
"""

from __future__ import annotations

import itertools
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhfops.annotate.quality import (
    CHOICES,
    Label,
    aggregate_pairs,
    as_labels,
    calibration_result,
    overall_agreement,
    rater_agreement,
    rater_turnover,
    raters_between,
)
from rlhfops.errors import UserError

# 3 raters x 4 pairs
SMALL = [
    ("p1", "r1", "A"),
    ("p1", "r2", "A"),
    ("p1", "r3", "A"),
    ("p2", "r1", "A"),
    ("p2", "r2", "B"),
    ("p2", "r3", "B"),
    ("p3", "r1", "tie"),
    ("p3", "r2", "tie"),
    ("p3", "r3", "both_bad"),
    ("p4", "r1", "B"),
    ("p4", "r2", "A"),
]


def test_rater_agreement_hand_example():
    rep = rater_agreement(SMALL)
    assert rep.raters == ["r1", "r2", "r3"]
    by = {r.rater: r for r in rep.per_rater}
    # r1: p1 others {A,A} -> agrees; p2 others {B,B} -> no; p3 others {tie, both_bad} -> no plurality,
    #     not counted; p4 others {A} -> no. 1 of 3.
    assert (by["r1"].n_compared, by["r1"].with_majority, by["r1"].n_labels) == (3, pytest.approx(1 / 3), 4)
    # r2: p1 yes; p2 others {A, B} and p3 others {tie, both_bad} not counted; p4 others {B} -> no. 1 of 2.
    assert (by["r2"].n_compared, by["r2"].with_majority) == (2, pytest.approx(1 / 2))
    # r3: p1 yes; p2 not counted; p3 others {tie, tie} -> chose both_bad, no. 1 of 2.
    assert (by["r3"].n_compared, by["r3"].with_majority) == (2, pytest.approx(1 / 2))
    # pairwise: r1-r2 4 common, agree on p1, p3 -> 1/2; r1-r3 3 common, p1 -> 1/3;
    #   r2-r3 3 common, p1, p2 -> 2/3
    expected = np.array([[1, 1 / 2, 1 / 3], [1 / 2, 1, 2 / 3], [1 / 3, 2 / 3, 1]])
    np.testing.assert_allclose(rep.pairwise, expected, atol=1e-12)
    assert rep.common.tolist() == [[4, 4, 3], [4, 4, 3], [3, 3, 3]]
    assert rep.pairwise_dict() == pytest.approx({"r1|r2": 1 / 2, "r1|r3": 1 / 3, "r2|r3": 2 / 3})
    # mean_pairwise pools the row: r1 (2 + 1) / (4 + 3), r2 (2 + 2) / 7, r3 (1 + 2) / 6
    assert [r.mean_pairwise for r in rep.per_rater] == pytest.approx([3 / 7, 4 / 7, 1 / 2])
    # min_others=2: r1 loses p4 (one other label) -> 1 of 2
    assert rater_agreement(SMALL, min_others=2).per_rater[0].with_majority == pytest.approx(1 / 2)


def _loop_rater_agreement(labels):
    table = {}
    for item, rater, choice in labels:
        table.setdefault(item, {})[rater] = choice
    raters = sorted({r for _i, r, _c in labels})
    with_majority = {}
    for r in raters:
        hits = n = 0
        for votes in table.values():
            if r not in votes:
                continue
            others = Counter(c for q, c in votes.items() if q != r)
            ranked = others.most_common()
            if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
                continue
            n += 1
            hits += votes[r] == ranked[0][0]
        with_majority[r] = hits / n if n else None
    pairwise = {}
    for a, b in itertools.combinations(raters, 2):
        common = [v for v in table.values() if a in v and b in v]
        if common:
            pairwise[f"{a}|{b}"] = sum(v[a] == v[b] for v in common) / len(common)
    return with_majority, pairwise


label_rows = st.lists(
    st.tuples(st.integers(0, 6), st.sampled_from(["ann", "bob", "cy", "dee"]), st.sampled_from(CHOICES)),
    min_size=1,
    max_size=40,
    unique_by=lambda t: (t[0], t[1]),
)


@settings(max_examples=150, deadline=None)
@given(rows=label_rows)
def test_rater_agreement_equals_a_loop(rows):
    with_majority, pairwise = _loop_rater_agreement(rows)
    rep = rater_agreement(rows)
    assert {r.rater: r.with_majority for r in rep.per_rater} == pytest.approx(with_majority)
    assert rep.pairwise_dict() == pytest.approx(pairwise)


@settings(max_examples=60, deadline=None)
@given(rows=label_rows)
def test_rater_agreement_dense_path_equals_label_pairs(rows):
    from rlhfops.annotate import quality

    sparse = rater_agreement(rows)
    old = quality._MAX_LABEL_PAIRS
    quality._MAX_LABEL_PAIRS = -1
    try:
        dense = rater_agreement(rows)
    finally:
        quality._MAX_LABEL_PAIRS = old
    np.testing.assert_array_equal(dense.common, sparse.common)
    np.testing.assert_allclose(dense.pairwise, sparse.pairwise, atol=1e-12)
    assert dense.per_rater == sparse.per_rater


def test_overall_agreement_warns_under_threshold():
    # per pair: p1 1, p2 {A,B,B} 2/6, p3 {tie,tie,both_bad} 2/6, p4 {B,A} 0 -> 5/12
    res = overall_agreement(SMALL)
    assert res.percent_agreement == pytest.approx(5 / 12)
    assert (res.n_items, res.n_labels, res.n_raters) == (4, 11, 3)
    assert res.warning is not None and "42% < 70%" in res.warning
    good = overall_agreement([(i, r, "A") for i in range(5) for r in "xyz"] + [(9, "x", "A"), (9, "y", "B")])
    # 5 unanimous pairs and one split: (5 + 0) / 6 = 0.833 >= 0.70
    assert good.percent_agreement == pytest.approx(5 / 6) and good.warning is None
    assert overall_agreement(SMALL, threshold=0.4).warning is None
    lonely = overall_agreement([("p1", "r1", "A"), ("p2", "r2", "B")])
    assert lonely.percent_agreement is None and "undefined" in lonely.warning


def _calibration_labels():
    votes = {
        "c1": "AAAA",  # agreement 1
        "c2": "AAAB",  # 6/12 = 0.5, top share 0.75 -> not split (under 0.75 is)
        "c3": "AABB",  # 4/12 = 1/3, top share 0.5 -> split
        "c4": "BBBB",  # 1
        "c5": ["tie"] * 4,  # 1
    }
    return [(item, f"r{j + 1}", c) for item, cs in votes.items() for j, c in enumerate(cs)]


def test_calibration_result_passes_and_lists_split_items():
    res = calibration_result(_calibration_labels())
    # overall = (1 + 0.5 + 1/3 + 1 + 1) / 5 = 23/30 = 0.767 >= 0.65
    assert res.overall == pytest.approx(23 / 30)
    assert res.passed and res.complete and res.status == "passed"
    assert [s.item for s in res.split_items] == ["c3"]
    assert res.split_items[0].counts == {"A": 2, "B": 2} and res.split_items[0].agreement == pytest.approx(
        1 / 3
    )
    # pairwise r1|r4: c1 A=A, c2 A!=B, c3 A!=B, c4, c5 equal -> 3/5
    assert res.pairwise["r1|r4"] == pytest.approx(3 / 5)
    assert res.pairwise["r1|r2"] == pytest.approx(1.0)
    assert res.n_items == 5 and res.missing == {"r1": 0, "r2": 0, "r3": 0, "r4": 0}
    assert "passed: overall agreement 77% >= 65%" == res.message


def test_calibration_result_fails_and_reports_open_rounds():
    labels = [
        (f"c{i}", r, c) for i in range(4) for r, c in zip(["r1", "r2", "r3"], ["A", "B", "tie"], strict=True)
    ]
    labels += [("c9", "r1", "A"), ("c9", "r2", "A"), ("c9", "r3", "A")]
    res = calibration_result(labels)
    # four items with no agreeing pair, one unanimous: 1/5 = 0.2 < 0.65
    assert res.overall == pytest.approx(0.2) and not res.passed and res.status == "failed"
    assert "failed: overall agreement 20% < 65%" in res.message and "4 split item(s)" in res.message
    # a rater who has not labelled yet keeps the round open; items outside the round are ignored
    res = calibration_result(
        labels + [("other", "r1", "A")], items=["c9", "c0"], raters=["r1", "r2", "r3", "r4"]
    )
    assert res.n_items == 2 and res.missing == {"r1": 0, "r2": 0, "r3": 0, "r4": 2}
    assert res.status == "open" and res.overall == pytest.approx(0.5)  # c9 1, c0 0


def test_rater_turnover_flags_over_30_percent():
    t = rater_turnover(["a", "b", "c", "d", "e"], ["a", "b", "c", "x", "y"])
    assert (t.share, t.share_left, t.joined, t.left, t.flagged) == (0.4, 0.4, ["x", "y"], ["d", "e"], True)
    # exactly 30% is not over 30%
    before = [f"r{i}" for i in range(10)]
    after = before[:7] + ["n1", "n2", "n3"]
    assert rater_turnover(before, after).share == pytest.approx(0.3)
    assert not rater_turnover(before, after).flagged
    assert rater_turnover(before, after, threshold=0.25).flagged
    assert rater_turnover(["a"], []).share is None


def test_raters_between_uses_label_times():
    from datetime import datetime

    d = datetime
    labels = [
        ("p1", "ann", "A", d(2026, 1, 1)),
        ("p2", "bob", "B", d(2026, 2, 1)),
        ("p3", "cy", "skip", d(2026, 2, 2)),
    ]
    assert raters_between(labels, None, d(2026, 1, 15)) == {"ann"}
    assert raters_between(labels, d(2026, 1, 15), None) == {"bob", "cy"}
    with pytest.raises(UserError, match="has no time"):
        raters_between([("p1", "ann", "A")], None, None)


def test_aggregate_pairs_majority_and_policies():
    labels = [
        ("p1", "r1", "A"), ("p1", "r2", "A"), ("p1", "r3", "B"),  # A 2/3, pairs agreeing 2/6
        ("p2", "r1", "A"), ("p2", "r2", "B"),  # no majority
        ("p3", "r1", "tie"), ("p3", "r2", "tie"), ("p3", "r3", "A"),  # tie
        ("p4", "r1", "both_bad"), ("p4", "r2", "both_bad"),  # both bad, unanimous
        ("p5", "r1", "B"),  # one label
        ("p6", "r1", "B"), ("p6", "r2", "skip"), ("p6", "r3", "B"),  # skip ignored -> B 2/2
    ]  # fmt: skip
    agg = aggregate_pairs(labels)
    by = {p.item: p for p in agg.pairs}
    assert (by["p1"].choice, by["p1"].agreement, by["p1"].pairwise_agreement) == (
        "A",
        pytest.approx(2 / 3),
        pytest.approx(1 / 3),
    )
    assert by["p1"].kept and by["p1"].counts == {"A": 2, "B": 1}
    assert (by["p2"].choice, by["p2"].kept, by["p2"].reason, by["p2"].agreement) == (
        None,
        False,
        "no_majority",
        0,
    )
    assert (by["p3"].choice, by["p3"].kept, by["p3"].reason) == ("tie", False, "tie")
    assert (by["p4"].choice, by["p4"].reason) == ("both_bad", "both_bad")
    assert (by["p5"].kept, by["p5"].pairwise_agreement) == (True, None)
    assert (by["p6"].choice, by["p6"].n_labels, by["p6"].agreement) == ("B", 2, 1.0)
    assert agg.kept == 3 and agg.dropped == {"no_majority": 1, "tie": 1, "both_bad": 1}
    kept = aggregate_pairs(labels, tie="keep", both_bad="keep", min_labels=2)
    assert {p.item for p in kept.pairs if p.kept} == {"p1", "p3", "p4", "p6"}
    assert kept.dropped == {"no_majority": 1, "too_few_labels": 1}
    assert kept.policy == {"tie": "keep", "both_bad": "keep"}
    # overall numbers are the agreement module's over the same labels (skip removed)
    assert agg.percent_agreement == pytest.approx((1 / 3 + 0 + 1 / 3 + 1 + 1) / 5)
    with pytest.raises(UserError, match="tie='maybe'"):
        aggregate_pairs(labels, tie="maybe")


def test_as_labels_accepts_rows_objects_and_mappings():
    from datetime import datetime

    at = datetime(2026, 3, 1)
    rows = [
        Label("p1", "ann", "A"),
        {"item_id": 7, "rater": "bob", "choice": "B", "created_at": at, "batch": "b1"},
        SimpleNamespace(item_id=8, rater="cy", choice="tie", created_at=at),
        ("p1", "ann", "B"),  # a later duplicate replaces the earlier label
        ("p2", "dee", "skip"),
    ]
    labs = as_labels(rows)
    assert labs == [
        Label(7, "bob", "B", at, "b1"),
        Label(8, "cy", "tie", at, None),
        Label("p1", "ann", "B"),
    ]
    assert len(as_labels(rows, keep_skips=True)) == 4
    with pytest.raises(UserError, match=r"label row 1 \(item 'p2', rater 'bob'\): choice 'left'"):
        as_labels([("p1", "ann", "A"), ("p2", "bob", "left")])
    with pytest.raises(UserError, match="item and rater are required"):
        as_labels([{"rater": "ann", "choice": "A"}])
