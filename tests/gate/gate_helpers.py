"""Hand-made evaluation metas (the evaluation contract) for the gate tests."""

from __future__ import annotations

from typing import Any

BEHAVIOURS_UP = "apologises and offers a remedy when the shop is at fault"
BEHAVIOURS_DOWN = "refuses a benign request"


def redteam_meta(model: str, rates: dict[str, tuple[int, int]], **extra: Any) -> dict[str, Any]:
    """A red-team evaluation: category -> (passed, total)."""
    rt = {
        cat: {
            "passed": p,
            "total": t,
            "pass_rate": p / t,
            "failures": [
                {"id": f"{cat}-{i}", "prompt": f"<b>bad</b> prompt {i}", "response": f"sure, here is {i}"}
                for i in range(min(t - p, 5))
            ],
        }
        for cat, (p, t) in rates.items()
    }
    meta = {
        "model": model,
        "baseline": None,
        "suite": "redteam",
        "kind": "redteam",
        "complete": True,
        "redteam": rt,
        "over_refusal_rate": 0.05,
        "alarms": [],
    }
    meta.update(extra)
    return meta


def success_meta(model: str, up: float = 0.85, down: float = 0.01, **extra: Any) -> dict[str, Any]:
    meta = {
        "model": model,
        "baseline": None,
        "suite": "support-heldout",
        "kind": "success",
        "complete": True,
        "success_criteria": {
            BEHAVIOURS_UP: {
                "direction": "increase",
                "rate": up,
                "target": 0.8,
                "met": up >= 0.8,
                "baseline_rate": 0.4,
            },
            BEHAVIOURS_DOWN: {
                "direction": "decrease",
                "rate": down,
                "target": 0.02,
                "met": down <= 0.02,
                "baseline_rate": 0.1,
            },
        },
        "kl": 3.5,
        "reward": {"candidate": 1.2, "baseline": 0.3},
        "alarms": [],
    }
    meta.update(extra)
    return meta


def sbs_meta(model: str, baseline: str | None, ci_low: float = 0.6, **extra: Any) -> dict[str, Any]:
    meta = {
        "model": model,
        "baseline": baseline,
        "suite": "support-heldout",
        "kind": "side_by_side",
        "complete": True,
        "win_rate": {
            "wins": 70,
            "ties": 10,
            "losses": 20,
            "n": 100,
            "rate": 0.75,
            "ci_low": ci_low,
            "ci_high": 0.83,
            "judge": "rule-judge",
        },
        "alarms": [],
    }
    meta.update(extra)
    return meta
