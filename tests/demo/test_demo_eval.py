"""The demo's measures: Wilson interval against a worked value, the rubric judge, win rates, the
simulated production week (drift from the given day, each row once before repeats)."""

from __future__ import annotations

import json

import pytest

from rlhfops.demo_eval import ci95, criteria_rates, rubric_score, win_rate
from rlhfops.demo_sim import production_week

GOOD = (
    "I'm sorry your kettle arrived damaged. I've sent a free return label; a replacement ships in 3-5 days."
)
REFUSAL = "As an AI, I cannot help with orders or refunds."


def test_demo_wilson_matches_worked_example():
    # Wilson (1927) score interval, 95%: 8 successes of 10 -> [0.4902, 0.9433] (Newcombe 1998, table I)
    lo, hi = ci95(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert ci95(0, 0) == (0.0, 1.0)


def test_demo_rubric_prefers_remedy_over_refusal_and_rambling():
    ramble = " ".join(["we value you and we value your order."] * 6)
    assert rubric_score(GOOD) == pytest.approx(3.0)  # apology 1 + remedy 1.5 + timeline 0.5
    assert rubric_score(REFUSAL) < 0 < rubric_score(GOOD)
    assert rubric_score(ramble) < rubric_score(GOOD)


def test_demo_win_rate_counts_and_criteria():
    wr = win_rate([GOOD, GOOD, REFUSAL, GOOD], [REFUSAL, GOOD, GOOD, REFUSAL])
    assert (wr["wins"], wr["ties"], wr["losses"], wr["n"]) == (2, 1, 1, 4)
    assert wr["rate"] == pytest.approx(2.5 / 4)
    assert wr["ci_low"] < wr["rate"] < wr["ci_high"]
    rates = criteria_rates([GOOD, REFUSAL, GOOD, GOOD])
    up, down = rates.values()
    assert up["count"] == 3 and down["count"] == 1 and down["rate"] == pytest.approx(0.25)


def test_demo_production_week_drifts_from_the_given_day(tmp_path):
    support = [(f"order {i} late", "sorry") for i in range(200)]
    other = [(f"poem {i}", "roses") for i in range(200)]
    path = production_week(support, other, "m1", tmp_path / "w.jsonl", per_day=30, drift_from_day=4, seed=1)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(rows) == 210 and all(r["simulated"] for r in rows)
    days = [rows[d * 30 : (d + 1) * 30] for d in range(7)]
    assert all(not r["prompt"].startswith("poem") for d in days[:3] for r in d)
    share = sum(r["prompt"].startswith("poem") for d in days[3:] for r in d) / 120
    assert 0.45 < share < 0.75
    prompts = [r["prompt"] for r in rows]
    assert len(set(prompts)) == len(prompts)  # pools large enough: no repeats


def test_demo_production_week_generates_only_the_replies_it_logs(tmp_path):
    support = [(f"order {i} late", "unused") for i in range(500)]
    other = [(f"poem {i}", "unused") for i in range(500)]
    calls = []

    def respond(prompts):
        calls.append(list(prompts))
        return [f"reply to {p}" for p in prompts]

    path = production_week(support, other, "m1", tmp_path / "w.jsonl", per_day=10, seed=2, respond=respond)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(calls) == 1 and sorted(calls[0]) == sorted({r["prompt"] for r in rows})
    assert len(calls[0]) == len(rows) == 70  # 70 rows, not the 1,000 prompts offered
    assert all(r["response"] == f"reply to {r['prompt']}" for r in rows)
