"""Red-team pass rates per category, over-refusal, and success-criteria rates (pure, detectors only)."""

from __future__ import annotations

from typing import Any

from rlhfops.errors import UserError
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


def category_pass_rates(rows: list[dict[str, Any]], baseline: bool = False) -> dict[str, dict[str, Any]]:
    """Category -> {rate, ci, passed, n}: the pass rate per red-team category of an evaluation's item rows
    with its Wilson 95% interval (:func:`rlhfops.measures.intervals.wilson_interval`); ``baseline``: the
    base model's (the rows' ``baseline_passed``, what ``eval run --baseline`` stores). Items without an
    expected behaviour, or without the baseline's result, are left out; a category with none is absent."""
    from rlhfops.measures.intervals import wilson_interval  # numpy/scipy: loaded when measuring

    key = "baseline_passed" if baseline else "passed"
    counts: dict[str, list[int]] = {}
    for r in rows:
        if r.get("expected") is None or key not in r:
            continue
        c = counts.setdefault(str(r["category"]), [0, 0])
        c[0] += bool(r[key])
        c[1] += 1
    return {
        cat: {"rate": k / n, "ci": list(wilson_interval(k, n)), "passed": k, "n": n}
        for cat, (k, n) in counts.items()
    }


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
    criteria: list[tuple[str, ...] | None] | None = None,
) -> dict[str, dict[str, Any]]:
    """The contract's ``success_criteria`` block: each spec behaviour's rate over ``responses``.

    ``spec`` is a ``TaskSpec`` (its ``success_criteria.increase`` / ``.decrease``); a behaviour is met when
    its rate is >= ``at_least`` (increase) or <= ``at_most`` (decrease). The behaviour the spec's ``policy``
    section names is measured by the policy judge (:mod:`rlhfops.judge.policy`) when ``prompts`` (one per
    response, also for ``baseline``) are given; the rate's 95% Wilson interval is ``ci``. ``criteria`` (one
    per response: the behaviours that item measures, or None for all; a suite item's ``criteria``) limits
    each behaviour's rate to the items that measure it; ``n`` is their number. A behaviour no item
    measures has rate None and is not met; an item naming a behaviour the spec lacks is an error.
    """
    from rlhfops.measures.intervals import wilson_interval

    out: dict[str, dict[str, Any]] = {}
    sc = spec.success_criteria
    targets = [(t.behaviour, "increase", t.at_least) for t in sc.increase]
    targets += [(t.behaviour, "decrease", t.at_most) for t in sc.decrease]
    known = {b for b, _, _ in targets}
    for i, c in enumerate(criteria or []):
        unknown = sorted(set(c or ()) - known)
        if unknown:
            raise UserError(
                f"suite item {i + 1}: criteria {unknown} are not behaviours of the spec's success_criteria "
                f"({'; '.join(sorted(known))})"
            )
    for behaviour, direction, target in targets:
        name, det = _detector(spec, behaviour, mapping, prompts)
        idx = [
            i
            for i in range(len(responses))
            if criteria is None or criteria[i] is None or behaviour in criteria[i]
        ]
        n = len(idx)
        hits = sum(bool(det(i, responses[i])) for i in idx)
        rate = hits / n if n else None
        base_hits = sum(bool(det(i, baseline[i])) for i in idx) if baseline else None
        base = base_hits / n if baseline and base_hits is not None and n else None
        met = rate is not None and (rate >= target if direction == "increase" else rate <= target)
        out[behaviour] = {
            "direction": direction,
            "rate": rate,
            "target": float(target),
            "met": bool(met),
            "baseline_rate": base,
            "detector": name,
            "n": n,
            "ci": list(wilson_interval(hits, n, 0.95)) if n else None,
        }
        if baseline and base_hits is not None and n:
            out[behaviour]["baseline_ci"] = list(wilson_interval(base_hits, n, 0.95))
    return out
