"""KL calibration: one PPO cycle per KL setting from the same start, each checkpoint evaluated.

Users run 2-4 such cycles by hand today. ``rlhfops train ppo --kl-sweep 0.01,0.05,0.2`` runs them in
one command (values are beta with a fixed controller, or target KL with ``--sweep-kind target``) and
writes ``kl_sweep.json`` and ``kl_sweep.md``: held-out reward, KL to the reference, length,
diversity, judge score and alarms per value, plus a recommended value with the reason. The reference's
held-out evaluation is computed by the first run and reused by the others (same start, prompts and seed).

Each run also records its **frontier**: per iteration, the held-out reward-model score and the independent
judge's score (``judge``) against the KL to the reference (summed k3, never negative), starting at the
reference (iteration 0, KL 0). Plotted, it shows where more optimisation stops paying: the reward model's
score keeps rising with KL while the judge's flattens or falls (reward over-optimisation, Gao et al. 2022,
"Scaling laws for reward model overoptimization"). A sweep evaluates every iteration (``eval_every`` 0
becomes 1) so the frontier has a point per iteration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhfops.errors import ConfigError
from rlhfops.train.ppo_config import PPOConfig
from rlhfops.train.rundir import atomic_write_text, default_run_dir


@dataclass
class SweepResult:
    out_dir: Path
    rows: list[dict[str, Any]]
    recommended: float | None
    reason: str


def parse_values(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(
            f"--kl-sweep {text!r}: expected comma-separated numbers, e.g. 0.01,0.05,0.2"
        ) from None
    if not 2 <= len(values) <= 6 or any(v < 0 for v in values):
        raise ConfigError(f"--kl-sweep {text!r}: give 2 to 6 non-negative values")
    return values


def _start_unbeaten(rows: list[dict[str, Any]], key: str, start_key: str) -> float | None:
    """The start's ``start_key`` value when no run's ``key`` is above it (equal is not above), else None."""
    start = rows[0].get(start_key)
    return start if start is not None and all(r[key] <= start for r in rows) else None


def recommend(rows: list[dict[str, Any]]) -> tuple[float | None, str]:
    """The value with the best held-out judge score (else reward) among runs with no alarm.

    Ties go to the larger KL penalty (the more conservative run). With every run alarmed, the one with
    the fewest alarms is named, and the reason says so. When no run's held-out reward is above the
    starting model's, the reason says that too: such runs did not move enough to choose a penalty from.
    When no run's judge score is above the starting model's, the reason says so: the recommended penalty
    is then the least bad, and the starting model beats every run on the judge.
    """
    if not rows:
        return None, "no runs"
    key = "judge_score" if all(r.get("judge_score") is not None for r in rows) else "score"
    clean = [r for r in rows if r["alarms"] == 0]
    pool = clean or sorted(rows, key=lambda r: r["alarms"])[:1]
    best = max(pool, key=lambda r: (round(r[key], 6), r["value"]))
    if clean:
        reason = (
            f"highest held-out {key.replace('_', ' ')} ({best[key]:.3f}) among the {len(clean)} "
            f"run(s) without reward-hacking alarms; KL to the reference {best['kl']:.2f}"
        )
    else:
        reason = (
            f"every run raised alarms; this one raised the fewest ({best['alarms']}): raise the KL penalty"
        )
    start_judge = (
        _start_unbeaten(rows, "judge_score", "reference_judge_score") if key == "judge_score" else None
    )
    if start_judge is not None:
        reason += (
            f"; but no run raised the independent judge's score above the start's ({start_judge:.3f}): what "
            "the reward model paid for, the judge did not (over-optimisation, Gao et al. 2022; the frontier "
            "shows where it began) -- keep the starting model, or raise the penalty and shorten the run"
        )
    start = _start_unbeaten(rows, "score", "reference_score")
    if start is not None:
        reason += (
            f"; but no run raised the held-out reward above the start's ({start:.3f}): the cycles were too "
            "short (or the learning rate too low) to tell the penalties apart -- run more iterations"
        )
    return best["value"], reason


def frontier_points(
    records: list[dict[str, Any]], final: dict[str, Any] | None, last_step: int
) -> list[dict]:
    """``[{step, kl, score, judge_score}]`` from a PPO run's metrics records and final held-out evaluation.

    Step 0 is the reference (``eval_reference``, KL 0); then each record with a held-out ``eval``; then the
    final evaluation at ``last_step``. ``judge_score`` is None without a judge.
    """
    points: list[dict[str, Any]] = []

    def add(step: int, ev: dict[str, Any] | None, kl: float | None = None) -> None:
        if ev and "score" in ev:
            k = ev.get("kl", 0.0) if kl is None else kl
            points.append({"step": step, "kl": k, "score": ev["score"], "judge_score": ev.get("judge_score")})

    for r in records:
        if "eval_reference" in r:
            add(0, r["eval_reference"], kl=0.0)
        elif "eval" in r and isinstance(r.get("step"), int):
            add(r["step"], r["eval"])
    if not any(p["step"] == last_step for p in points):
        add(last_step, final)
    return sorted(points, key=lambda p: p["step"])


def score_difference(
    policy: dict[str, Any] | None, reference: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The held-out reward-model score of the policy minus the reference's, per prompt (both evaluations
    sample the same prompts with the same seed, so the pairs share a prompt): the mean difference and its
    95% Student t interval (:func:`rlhfops.measures.intervals.t_interval`). None without per-prompt scores
    on both sides or when their counts differ (not the same prompts)."""
    import numpy as np  # heavy: only when a sweep reads its scores

    from rlhfops.measures.intervals import t_interval

    a, b = (policy or {}).get("scores"), (reference or {}).get("scores")
    if not a or not b or len(a) != len(b):
        return None
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    lo, hi = t_interval(d)
    return {"mean": float(d.mean()), "ci": [lo, hi], "n": len(d)}


def run_kl_sweep(base: PPOConfig, values: list[float], kind: str = "beta") -> SweepResult:
    from rlhfops.train.ppo import PPOTrainer

    if kind not in ("beta", "target"):
        raise ConfigError(f"--sweep-kind {kind!r}: expected beta or target")
    out_dir = Path(base.output_dir or default_run_dir("ppo-sweep"))
    rows: list[dict[str, Any]] = []
    shared_reference: dict[str, Any] | None = None
    for value in values:
        change: dict[str, Any] = {"output_dir": str(out_dir / f"{kind}-{value:g}")}
        if base.eval_every == 0:
            change["eval_every"] = 1  # a frontier point per iteration
        if kind == "beta":
            change.update(beta=value, kl_controller="fixed")
        else:
            change.update(target_kl=value, kl_controller="adaptive")
        cfg = PPOConfig.model_validate({**base.model_dump(), **change})
        trainer = PPOTrainer(cfg)
        trainer.shared_reference_eval = shared_reference  # the start is the same for every value
        result = trainer.run_all()
        ev = result.summary.get("eval", {})
        shared_reference = shared_reference or ev.get("reference")
        pol = ev.get("policy") or {}
        rows.append(
            {
                "value": value,
                "run_dir": str(result.run_dir),
                "score": pol.get("score", float("nan")),
                "kl": pol.get("kl", float("nan")),
                "response_length": pol.get("response_length", float("nan")),
                "distinct_2": pol.get("distinct_2", float("nan")),
                "judge_score": pol.get("judge_score"),
                "alarms": ev.get("alarm", 0),
                "alarm_names": [a["name"] for a in ev.get("alarms", [])],
                "reference_score": (ev.get("reference") or {}).get("score"),
                "reference_judge_score": (ev.get("reference") or {}).get("judge_score"),
                # held-out reward over the start (the reference), paired by prompt, with its 95% interval
                "score_gain": score_difference(pol, ev.get("reference")),
                "frontier": frontier_points(trainer.run.read_metrics(), pol, trainer.total_steps),
            }
        )
    value, reason = recommend(rows)
    report = {"kind": kind, "values": values, "rows": rows, "recommended": value, "reason": reason}
    atomic_write_text(out_dir / "kl_sweep.json", json.dumps(report, indent=2))
    atomic_write_text(out_dir / "kl_sweep.md", render_table(report))
    return SweepResult(out_dir, rows, value, reason)


def render_table(report: dict[str, Any]) -> str:
    head = f"| {report['kind']} | reward | reward - start [95% CI] | KL (summed k3, >= 0) | length "
    head += "| distinct-2 | judge | alarms |\n|---|---|---|---|---|---|---|---|\n"
    lines = []
    for r in report["rows"]:
        judge = "-" if r["judge_score"] is None else f"{r['judge_score']:.3f}"
        alarms = ", ".join(r["alarm_names"]) or "none"
        g = r.get("score_gain")
        gain = "-" if not g else f"{g['mean']:+.3f} [{g['ci'][0]:+.3f}, {g['ci'][1]:+.3f}]"
        lines.append(
            f"| {r['value']:g} | {r['score']:.3f} | {gain} | {r['kl']:.2f} | {r['response_length']:.1f} | "
            f"{r['distinct_2']:.3f} | {judge} | {alarms} |\n"
        )
    rec = report["recommended"]
    out = head + "".join(lines) + f"\nRecommended: {rec:g} — {report['reason']}\n"
    front = [(r["value"], p) for r in report["rows"] for p in r.get("frontier", [])]
    if front:
        out += "\nFrontier (held-out, per iteration):\n\n"
        out += f"| {report['kind']} | iteration | KL (summed k3, >= 0) | reward | judge |\n"
        out += "|---|---|---|---|---|\n"
        for v, p in front:
            judge = "-" if p["judge_score"] is None else f"{p['judge_score']:.3f}"
            out += f"| {v:g} | {p['step']} | {p['kl']:.3f} | {p['score']:.3f} | {judge} |\n"
    return out
