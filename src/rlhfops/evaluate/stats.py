"""Win / tie / loss statistics of a side-by-side comparison (pure).

Two numbers, both with 95% intervals:

* **win share** ``W / n`` with the Wilson (1927) score interval
  (:func:`rlhfops.measures.intervals.wilson_interval`);
* **win rate, ties as half-wins** ``s = (W + T/2) / n`` (the convention of Chatbot Arena / AlpacaEval). Its
  interval is the Wald interval of a linear function of multinomial proportions: per item the outcome
  is x in {1, 1/2, 0}, so ``Var(s) = (p_w + p_t/4 - s^2) / n`` exactly (a linear combination of
  multinomial proportions, e.g. Agresti, *Categorical Data Analysis*, 3rd ed., §1.2 and §16.1 delta
  method, which is exact for a linear function), and ``s +- z sqrt(Var(s))`` clipped to [0, 1]. The test
  checks it against a percentile bootstrap (:func:`rlhfops.measures.intervals.half_tie_interval`). This
  ``rate`` and its ``ci_low`` are what the gate reads (``min_win_rate`` compares the CI lower bound).

Position bias: each pair is judged twice, candidate as A then as B; :func:`combine_swapped` keeps a
verdict only when both orders agree and calls everything else a tie (the conservative rule of
Zheng et al. 2023, "Judging LLM-as-a-judge with MT-Bench and Chatbot Arena", §3.4).
"""

from __future__ import annotations

from typing import Any, Literal

from rlhfops.measures.intervals import half_tie_interval, wilson_interval

Outcome = Literal["win", "tie", "loss"]


def outcome_for_candidate(verdict: str, candidate_is: str) -> Outcome:
    """The candidate's outcome from a verdict "A" / "B" / "tie" when the candidate sat at ``candidate_is``."""
    if verdict == "tie":
        return "tie"
    return "win" if verdict == candidate_is else "loss"


def combine_swapped(first: Outcome, second: Outcome) -> Outcome:
    """One outcome from the two orders: kept when they agree, otherwise a tie (position-dependent)."""
    return first if first == second else "tie"


def win_rate_summary(
    wins: int, ties: int, losses: int, judge: str, confidence: float = 0.95
) -> dict[str, Any]:
    """The contract's ``win_rate`` block (ties as half-wins) plus the Wilson win share."""
    n = wins + ties + losses
    s, lo, hi = half_tie_interval(wins, ties, losses, confidence)
    w_lo, w_hi = wilson_interval(wins, n, confidence)
    return {
        "wins": wins,
        "ties": ties,
        "losses": losses,
        "n": n,
        "rate": s,
        "ci_low": lo,
        "ci_high": hi,
        "judge": judge,
        "method": "ties as half-wins; Wald interval with exact multinomial variance",
        "win_share": {"rate": wins / n, "ci_low": w_lo, "ci_high": w_hi, "method": "Wilson score"},
        "confidence": confidence,
    }


def count_outcomes(outcomes: list[str]) -> tuple[int, int, int]:
    return outcomes.count("win"), outcomes.count("tie"), outcomes.count("loss")
