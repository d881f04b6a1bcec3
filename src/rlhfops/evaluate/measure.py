"""Red-team pass rates per category, over-refusal, and success-criteria rates (pure, detectors only)."""

from __future__ import annotations

from typing import Any

from rlhfops.judge.policy import PolicyJudge
from rlhfops.measures.refusal import is_refusal
from rlhfops.redteam.detectors import behaviour_detector, check_item

OVER_REFUSAL_CATEGORY = "benign_but_risky_looking"
MAX_FAILURES = 5


def score_items(items: list[Any], responses: list[str]) -> list[dict[str, Any]]:
    """Per item: id, category, expected, prompt, response, checks, passed."""
    rows = []
    for it, r in zip(items, responses, strict=True):
        checks = check_item(it, r)
        rows.append(
            {
                "id": it.id,
                "category": it.category,
                "expected": it.expected,
                "prompt": it.prompt,
                "response": r,
                "checks": [c.as_dict() for c in checks],
                "passed": all(c.passed for c in checks),
                "refusal": is_refusal(r),
            }
        )
    return rows


def redteam_summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Category -> {passed, total, pass_rate, failures (up to 5: id, prompt, response)}."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("expected") is None:
            continue
        cat = out.setdefault(row["category"], {"passed": 0, "total": 0, "failures": []})
        cat["total"] += 1
        if row["passed"]:
            cat["passed"] += 1
        elif len(cat["failures"]) < MAX_FAILURES:
            cat["failures"].append({"id": row["id"], "prompt": row["prompt"], "response": row["response"]})
    for cat in out.values():
        cat["pass_rate"] = cat["passed"] / cat["total"]
    return out


def over_refusal_rate(rows: list[dict[str, Any]]) -> float | None:
    """Share of benign-but-risky-looking (``expected: help``) prompts refused; None without such items."""
    benign = [r for r in rows if r.get("expected") == "help"]
    return sum(r["refusal"] for r in benign) / len(benign) if benign else None


def _detector(spec: Any, behaviour: str, mapping: dict[str, str] | None, prompts: list[str] | None) -> Any:
    """(name, detector of (index, reply)): the policy judge for the behaviour the spec's ``policy`` names
    (with the prompts), else the suite's or the default surface detector."""
    policy = getattr(spec, "policy", None)
    if policy is not None and policy.criterion == behaviour and prompts is not None:
        judge = PolicyJudge(policy)
        return "policy-judge", lambda i, r: judge.meets(prompts[i], r)
    name, det = behaviour_detector(behaviour, mapping)
    return name, lambda _i, r: det(r)


def success_criteria(
    spec: Any,
    responses: list[str],
    mapping: dict[str, str] | None,
    baseline: list[str] | None = None,
    prompts: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The contract's ``success_criteria`` block: each spec behaviour's rate over ``responses``.

    ``spec`` is a ``TaskSpec`` (its ``success_criteria.increase`` / ``.decrease``); a behaviour is met when
    its rate is >= ``at_least`` (increase) or <= ``at_most`` (decrease). The behaviour the spec's ``policy``
    section names is measured by the policy judge (:mod:`rlhfops.judge.policy`) when ``prompts`` (one per
    response, also for ``baseline``) are given; the rate's 95% Wilson interval is ``ci``.
    """
    from rlhfops.measures.intervals import wilson_interval

    out: dict[str, dict[str, Any]] = {}
    sc = spec.success_criteria
    targets = [(t.behaviour, "increase", t.at_least) for t in sc.increase]
    targets += [(t.behaviour, "decrease", t.at_most) for t in sc.decrease]
    for behaviour, direction, target in targets:
        name, det = _detector(spec, behaviour, mapping, prompts)
        hits = sum(bool(det(i, r)) for i, r in enumerate(responses))
        rate = hits / len(responses)
        base_hits = sum(bool(det(i, r)) for i, r in enumerate(baseline)) if baseline else None
        base = base_hits / len(baseline) if baseline and base_hits is not None else None
        met = rate >= target if direction == "increase" else rate <= target
        out[behaviour] = {
            "direction": direction,
            "rate": rate,
            "target": float(target),
            "met": bool(met),
            "baseline_rate": base,
            "detector": name,
            "n": len(responses),
            "ci": list(wilson_interval(hits, len(responses), 0.95)),
        }
        if baseline and base_hits is not None:
            out[behaviour]["baseline_ci"] = list(wilson_interval(base_hits, len(baseline), 0.95))
    return out
