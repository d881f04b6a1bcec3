"""The SIMULATED production week of the demo: drift from the given day, each row once before repeats."""

from __future__ import annotations

import json

from rlhfops.demo.sim import production_week


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
