"""Side-by-side judging in both orders (position bias control, see :mod:`rlhfops.evaluate.stats`)."""

from __future__ import annotations

from typing import Any

from rlhfops.evaluate.stats import combine_swapped, count_outcomes, outcome_for_candidate, win_rate_summary


def judge_pairs(
    judge: Any, prompts: list[str], candidate: list[str], baseline: list[str], swap: bool = True
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-item verdicts and the win-rate summary of ``candidate`` over ``baseline``.

    With ``swap`` each pair is judged as (candidate, baseline) and as (baseline, candidate); the summary
    adds ``position_consistency`` (share of items whose two verdicts agree) and ``first_position_share``
    (share of non-tie verdicts that picked the left reply; 0.5 for an unbiased judge).
    """
    items: list[dict[str, Any]] = []
    left = decided = agree = 0
    for p, c, b in zip(prompts, candidate, baseline, strict=True):
        v1 = judge.judge(p, c, b)
        row: dict[str, Any] = {"verdict_candidate_first": v1}
        o1 = outcome_for_candidate(v1, "A")
        outcome = o1
        verdicts = [v1]
        if swap:
            v2 = judge.judge(p, b, c)
            row["verdict_candidate_second"] = v2
            o2 = outcome_for_candidate(v2, "B")
            outcome = combine_swapped(o1, o2)
            agree += o1 == o2
            verdicts.append(v2)
        for v in verdicts:
            if v != "tie":
                decided += 1
                left += v == "A"
        row["outcome"] = outcome
        items.append(row)
    summary = win_rate_summary(
        *count_outcomes([r["outcome"] for r in items]), judge=getattr(judge, "name", "?")
    )
    summary["swapped"] = swap
    if swap:
        summary["position_consistency"] = agree / len(items)
    summary["first_position_share"] = left / decided if decided else None
    return items, summary
