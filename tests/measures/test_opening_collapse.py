"""One opening for every kind of prompt (measures.diversity.opening_collapse), on plain lists of replies
shaped like docs/benchmarks.md section 13: the round-two collapse fires, round one's DPO and the base do
not."""

from __future__ import annotations

import pytest

from rlhfops.measures.diversity import (
    COLLAPSE_GROUP_SHARE,
    COLLAPSE_OPENING_SHARE,
    opening_collapse,
)

COLLAPSED = "I'm sorry your order didn't go through. I've sent a replacement for your order."
REMEDY = "I'm sorry your {} arrived broken. I've sent a free replacement and a return label."
APOLOGY = "I'm sorry for the trouble with the {}; here is what I can do."
# held-out red-team half (6 categories, 16-20 items, 107 in all) + the 32 task prompts: 139 replies
SIZES = {
    "harmful_requests": 18,
    "no_reliable_answer": 20,
    "false_premise_sycophancy": 19,
    "prompt_injection": 17,
    "benign_but_risky_looking": 17,
    "adversarial_client": 16,
    "task": 32,
}


def varied(group: str, i: int) -> str:
    """A reply whose opening no other reply shares."""
    return f"{group} reply {i}: something else entirely."


def shaped(counts: dict[str, int], text: str) -> dict[str, list[str]]:
    """``counts[g]`` replies of group g open like ``text`` (formatted with i), the rest are varied."""
    return {
        g: [text.format(i) if i < counts.get(g, 0) else varied(g, i) for i in range(n)]
        for g, n in SIZES.items()
    }


def test_section_13_round_two_collapse_fires():
    # 126 of 139 open "i'm sorry your": 13 varied replies spread over the red-team categories
    varied_n = dict(zip(SIZES, [3, 2, 3, 2, 2, 1, 0], strict=True))
    groups = shaped({g: n - varied_n[g] for g, n in SIZES.items()}, COLLAPSED)
    got = opening_collapse(groups)
    assert got.n_replies == 139 and got.opening == "i'm sorry your"
    assert got.share == pytest.approx(126 / 139) and got.n_groups == 7 and len(got.groups_led) == 7
    assert got.collapsed


def test_round_one_dpo_and_base_shapes_do_not_fire():
    # round one's DPO: 69/139 "i'm sorry your", the task prompts and some categories, the others varied
    r1 = shaped(
        {"task": 30, "adversarial_client": 15, "benign_but_risky_looking": 12, "prompt_injection": 12}, REMEDY
    )
    got = opening_collapse(r1)
    assert (got.opening, got.n_replies) == ("i'm sorry your", 139) and got.share == pytest.approx(69 / 139)
    assert not got.collapsed
    # the base: 71/139 "i'm sorry for", about half of every group -- the commonest opening everywhere
    half = {g: round(n * 71 / 139) for g, n in SIZES.items()}
    half["task"] += 71 - sum(half.values())
    base = opening_collapse(shaped(half, APOLOGY))
    assert base.opening == "i'm sorry for" and base.share == pytest.approx(71 / 139)
    assert len(base.groups_led) == 7 and not base.collapsed  # every group, but half the replies


def test_share_edge():
    # 4 groups of 4; the opening in 3 of each: 12/16 = 0.75, the commonest everywhere
    at = {g: ["a b c d"] * 3 + [f"{g} x y"] for g in "pqrs"}
    assert opening_collapse(at).share == 0.75 == COLLAPSE_OPENING_SHARE and opening_collapse(at).collapsed
    under = {**at, "s": ["a b c d"] * 2 + ["s x y", "s z w"]}  # 11/16 = 0.6875, still leads in s (tie)
    got = opening_collapse(under)
    assert got.share == pytest.approx(11 / 16) and len(got.groups_led) == 4 and not got.collapsed
    assert opening_collapse(under, min_share=11 / 16).collapsed  # the parameter is the edge
    assert not opening_collapse(at, min_share=0.75 + 1e-9).collapsed


def test_groups_edge_and_ties_count_as_leading():
    # the opening fills two big groups; c, d, e answer with their own formula
    two = {
        "a": ["x y z 1"] * 30,
        "b": ["x y z 2"] * 30,
        "c": ["c c c"] * 5,
        "d": ["d d d"] * 5,
        "e": ["e e e"] * 5,
    }
    got = opening_collapse(two)
    assert got.share == pytest.approx(60 / 75) and got.groups_led == ("a", "b") and not got.collapsed  # 2/5
    three = {**two, "c": ["x y z"] * 5}  # leads in 3 of 5 = 0.6, share 65/75
    got = opening_collapse(three)
    assert len(got.groups_led) / got.n_groups == 0.6 == COLLAPSE_GROUP_SHARE and got.collapsed
    assert not opening_collapse(three, min_groups=0.6 + 1e-9).collapsed
    assert opening_collapse(two, min_groups=0.4).collapsed
    tie = {**two, "c": ["c c c"] * 2 + ["x y z"] * 2}  # a tie in c (its own formula first): it leads too
    assert opening_collapse(tie).groups_led == ("a", "b", "c") and opening_collapse(tie).collapsed


def test_one_group_empty_groups_and_openings_as_opening_share_reads_them():
    assert not opening_collapse({"task": [COLLAPSED] * 10}).collapsed  # one kind of prompt: not this alarm
    assert not opening_collapse(
        {"task": [COLLAPSED] * 10, "empty": []}
    ).collapsed  # empty groups do not count
    nothing = opening_collapse({})
    assert (nothing.share, nothing.n_replies, nothing.collapsed) == (0.0, 0, False)
    # case and spacing ignored; 3 words by default, ``words`` changes it
    mixed = {"a": ["I'm  SORRY your x"] * 2, "b": ["i'm sorry YOUR y"] * 2}
    assert opening_collapse(mixed).collapsed and opening_collapse(mixed).opening == "i'm sorry your"
    assert not opening_collapse(mixed, words=4).collapsed  # "... x" vs "... y": two openings of 0.5
    with pytest.raises(ValueError, match="words must be >= 1"):
        opening_collapse(mixed, words=0)
