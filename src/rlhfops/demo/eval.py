"""Play 5 of `rlhfops demo`: evaluation through the product's own path, the one `rlhfops eval run` uses.

Each candidate is evaluated by :func:`rlhfops.evaluate.run.run_evaluation` twice, as a user would run
``rlhfops eval run MODEL --suite heldout.jsonl --baseline BASE --judge policy`` and
``rlhfops eval run MODEL --suite redteam --limit N --baseline BASE``: the held-out success criteria (the
spec's main criterion measured by the policy judge, :mod:`rlhfops.judge.policy`), the side-by-side win
rate against the base model (policy judge, both orders, :mod:`rlhfops.evaluate.stats`), KL to the
reference, and the shipped red-team suites. The results are the signed ``evaluation`` artifacts `eval run`
writes; this module only reads them back into the demo's table. No measure is computed here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlhfops.data.files import atomic_write_text
from rlhfops.evaluate.run import EvalOptions, run_evaluation
from rlhfops.measures.kl_reading import kl_note

UP = "apologises and offers a remedy when the shop is at fault"
DOWN = "refuses a benign request"
HELDOUT_SUITE = "support-heldout-demo"


def write_heldout_suite(path: Path, held: list[dict[str, Any]]) -> Path:
    """The held-out prompt rows (``prompt``, optional ``criteria``: the spec behaviours a prompt measures)
    as an evaluation suite file (a header line, then one item per prompt)."""

    rows = [{"suite": HELDOUT_SUITE}] + [
        {"id": f"heldout-{i + 1}", **{k: r[k] for k in ("prompt", "criteria") if k in r}}
        for i, r in enumerate(held)
    ]
    return atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def evaluate_model(
    ws: Any,
    model_id: str,
    suite: Path,
    baseline: str,
    reference: str | None,
    *,
    max_new_tokens: int,
    kl_prompts: int,
    redteam_per_category: int,
    seed: int = 0,
    redteam_half: str | None = None,
) -> dict[str, Any]:
    """The two `eval run` evaluations of one model; returns their results (meta, items, artifact ids).
    ``redteam_half`` (``--redteam-half``): only that half of the red-team suites (round two: ``heldout``)."""

    common = {"baseline": baseline, "max_new_tokens": max_new_tokens, "seed": seed}
    task = run_evaluation(
        model_id,
        EvalOptions(suite=str(suite), judge="policy", reference=reference, kl_prompts=kl_prompts, **common),
        ws=ws,
    )
    rt = run_evaluation(
        model_id,
        EvalOptions(
            suite="redteam", limit=redteam_per_category, kl_prompts=0, redteam_half=redteam_half, **common
        ),
        ws=ws,
    )
    return {"task": task, "redteam": rt}


def table_row(name: str, ev: dict[str, Any], reference: str | None) -> dict[str, Any]:
    """One model's row of the demo's table, read from its evaluation results."""
    meta = ev["task"].meta
    sc = meta.get("success_criteria") or {}
    up, down = sc.get(UP, {}), sc.get(DOWN, {})
    wr = meta.get("win_rate") or {}
    return {
        "model": name,
        "apology_remedy_rate": up.get("rate"),
        "apology_remedy_ci": up.get("ci"),
        "refusal_rate": down.get("rate"),
        "refusal_ci": down.get("ci"),
        "n": up.get("n"),
        "kl": meta.get("kl"),
        "kl_note": kl_note(meta.get("kl"), meta.get("kl_estimator")),
        "kl_reference": reference,
        "win_rate_vs_base": wr.get("rate"),
        "win_rate_ci": [wr.get("ci_low"), wr.get("ci_high")] if wr else None,
        "judge": wr.get("judge"),
        "redteam_pass": {c: r["pass_rate"] for c, r in (ev["redteam"].meta.get("redteam") or {}).items()},
        "evaluations": [ev["task"].artifact_id, ev["redteam"].artifact_id],
    }


def base_row(ev: dict[str, Any]) -> dict[str, Any]:
    """The base model's row: the baseline side of a candidate's evaluations (same prompts, same judge)."""
    meta = ev["task"].meta
    sc = meta.get("success_criteria") or {}
    up, down = sc.get(UP, {}), sc.get(DOWN, {})
    return {
        "model": "base",
        "apology_remedy_rate": up.get("baseline_rate"),
        "apology_remedy_ci": up.get("baseline_ci"),
        "refusal_rate": down.get("baseline_rate"),
        "refusal_ci": down.get("baseline_ci"),
        "n": up.get("n"),
        "kl": 0.0,
        "kl_note": "the base model itself",
        "kl_reference": None,
        "win_rate_vs_base": None,
        "win_rate_ci": None,
        "judge": None,
        "redteam_pass": {
            c: r.get("baseline_pass_rate") for c, r in (ev["redteam"].meta.get("redteam") or {}).items()
        },
        "evaluations": [],
    }


def side_by_side(ev: dict[str, Any], n: int) -> list[dict[str, str]]:
    """The first ``n`` held-out prompts with the base's and the candidate's replies (from the artifact)."""
    return [
        {"prompt": r["prompt"], "before": r.get("baseline_response", ""), "after": r["response"]}
        for r in ev["task"].items[:n]
    ]
