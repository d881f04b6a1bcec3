"""One evaluation: generate on a suite, measure, optionally compare with a baseline, store the result.

The result JSON holds ``meta`` (the summary the gate reads: the evaluation contract in docs/gate.md,
section "Evidence") and ``items`` (per item: prompt, candidate reply, checks, baseline reply, verdicts,
rewards). In a workspace it is registered as an ``evaluation`` artifact whose parents are the model
and the baseline; outside one it is written to ``out``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlhfops.data.files import atomic_write_text
from rlhfops.errors import UserError
from rlhfops.evaluate.generation import GENERATION_BATCH_SIZE, LoadedModel, mean_kl
from rlhfops.evaluate.measure import over_refusal_rate, redteam_summary, score_items, success_criteria
from rlhfops.judge import JudgeSettings, make_judge
from rlhfops.judge.http import JudgeError
from rlhfops.judge.reward_model import RewardModelJudge
from rlhfops.judge.settings import settings_from_workspace
from rlhfops.measures.kl_reading import REPORTED as KL_REPORTED
from rlhfops.models.loading import BUNDLED_NAME, resolve_model_dir
from rlhfops.redteam.split import select_half
from rlhfops.redteam.suite import load_suite

if TYPE_CHECKING:
    from rlhfops.evaluate.hacking import AlarmLimits


@dataclass
class EvalOptions:
    suite: str
    baseline: str | None = None
    judge: str | None = None  # default "rule" when there is a baseline
    reward_model: str | None = None
    reference: str | None = None  # KL reference; default: the baseline
    max_new_tokens: int = 128
    kl_prompts: int = 16
    limit: int | None = None
    seed: int = 0
    kind: str | None = None  # "side_by_side" for eval compare; else from the suite
    swap: bool = True
    redteam_half: str | None = None  # "train" / "heldout": only that half of the suite (redteam/split.py)
    batch_size: int = GENERATION_BATCH_SIZE  # replies per forward pass (generation and the KL's)
    alarms: AlarmLimits | None = None  # the alarms' thresholds (evaluate/hacking.py); None: the defaults


@dataclass
class EvalResult:
    meta: dict[str, Any]
    items: list[dict[str, Any]]
    artifact_id: str | None = None
    path: Path | None = None
    notes: list[str] = field(default_factory=list)


def limit_items(suite: Any, limit: int | None) -> list[Any]:
    """The first ``limit`` items (of each category for a red-team suite); all without a limit."""
    if not limit:
        return list(suite.items)
    if not suite.is_redteam:
        return list(suite.items[:limit])
    seen: dict[str, int] = {}
    out = []
    for it in suite.items:
        seen[it.category] = seen.get(it.category, 0) + 1
        if seen[it.category] <= limit:
            out.append(it)
    return out


@dataclass(frozen=True)
class ModelRef:
    path: str
    artifact_id: str | None


def resolve_model(ref: str, ws: Any | None) -> ModelRef:
    """A model directory and its artifact id (when the workspace knows it) from a path, an id or the
    bundled model's name."""

    p = resolve_model_dir(ref) if ref == BUNDLED_NAME else Path(ref)
    if p.exists():
        if not (p / "config.json").exists() and not (p / "adapter_config.json").exists():
            raise UserError(
                f"{p}: not a model directory (no config.json); give a saved model or an artifact id"
            )
        rec = ws.find_by_content(p) if ws is not None else None
        return ModelRef(str(p), rec.id if rec else None)
    if ws is None:
        raise UserError(f"model {ref!r}: no such directory (artifact ids work inside a workspace)")
    rec = ws.artifact(ref)
    return ModelRef(str(rec.path), rec.id)


def _spec(ws: Any | None) -> Any:
    if ws is None:
        return None
    try:
        return ws.current_spec().spec
    except UserError:
        return None


def alarm_limits(spec: Any | None) -> AlarmLimits:
    """The reward-hacking alarms' limits: the spec's ``gate.alarms``, or the defaults without a spec."""
    from rlhfops.evaluate.hacking import AlarmLimits

    return AlarmLimits() if spec is None else AlarmLimits.from_spec(spec.gate.alarms)


def _compare(
    opts: EvalOptions, prompts: list[str], cand: list[str], base: list[str], meta: dict, rows: list, ws: Any
) -> list:
    """Judge the pairs (both orders), reward model scores, alarms; fills ``meta`` and ``rows``."""
    from rlhfops.evaluate.hacking import evaluation_alarms, response_stats
    from rlhfops.evaluate.sbs import judge_pairs

    notes: list[str] = []
    settings = settings_from_workspace(ws) if ws is not None else JudgeSettings()
    spec = _spec(ws)
    judge = make_judge(opts.judge or "settings", settings, getattr(spec, "policy", None))
    judge_c = judge_b = None
    try:
        verdicts, meta["win_rate"] = judge_pairs(judge, prompts, cand, base, swap=opts.swap)
        for row, v in zip(rows, verdicts, strict=True):
            row.update(v)
        if hasattr(judge, "score"):
            judge_c = [judge.score(p, r) for p, r in zip(prompts, cand, strict=True)]
            judge_b = [judge.score(p, r) for p, r in zip(prompts, base, strict=True)]
    except JudgeError as err:
        meta["complete"] = False
        meta["win_rate"] = None
        notes.append(f"judge failed: {err}")
    rew_c = rew_b = None
    if opts.reward_model:
        rm = RewardModelJudge(opts.reward_model)
        rew_c, rew_b = rm.scores(prompts, cand), rm.scores(prompts, base)
        meta["reward"] = {"candidate": sum(rew_c) / len(rew_c), "baseline": sum(rew_b) / len(rew_b)}
        for row, a, b in zip(rows, rew_c, rew_b, strict=True):
            row["reward"], row["baseline_reward"] = a, b
    meta["alarms"] = evaluation_alarms(
        response_stats(cand, rew_c, judge_c), response_stats(base, rew_b, judge_b), opts.alarms
    )
    return notes


def _opening_collapse(
    opts: EvalOptions, items: list[Any], cand: list[str], base: list[str] | None, meta: dict
) -> None:
    """Add ``opening_collapse`` to ``meta["alarms"]`` when it fires (any kind of suite, with or without a
    baseline). Only a firing alarm creates ``alarms`` on an evaluation that computes no others (a red-team
    run): an empty list would read as "no reward-hacking alarm open" to the gate and the monitor, which
    this one check does not show."""
    from rlhfops.evaluate.hacking import opening_collapse_alarms

    found = opening_collapse_alarms(cand, [it.category for it in items], opts.alarms, base)
    if found:
        meta["alarms"] = list(meta.get("alarms") or []) + found


def run_evaluation(
    model: str, opts: EvalOptions, ws: Any | None = None, out: Path | None = None
) -> EvalResult:
    """Evaluate ``model`` on ``opts.suite``; store in ``ws`` (an artifact) or write ``out``."""
    if ws is None and out is None:
        raise UserError("not in a workspace: give --out FILE for the result JSON")
    if opts.batch_size < 1:
        raise UserError(f"eval: --batch-size {opts.batch_size}; at least 1 reply per forward pass")
    suite = select_half(load_suite(opts.suite), opts.redteam_half)
    items = limit_items(suite, opts.limit)
    cand_ref = resolve_model(model, ws)
    base_ref = resolve_model(opts.baseline, ws) if opts.baseline else None
    if ws is not None and cand_ref.artifact_id is None:
        raise UserError(
            f"{model}: not a registered model artifact; give its id (`rlhfops train` registers the models it "
            "trains, `rlhfops artifact add base-model` a starting model)"
        )
    kind = opts.kind or ("redteam" if suite.is_redteam else "success")
    prompts = [it.prompt for it in items]
    cand_model = LoadedModel.load(cand_ref.path)
    cand = cand_model.respond(prompts, opts.max_new_tokens, batch_size=opts.batch_size, seed=opts.seed)
    meta: dict[str, Any] = {
        "model": cand_ref.artifact_id or cand_ref.path,
        "baseline": (base_ref.artifact_id or base_ref.path) if base_ref else None,
        "suite": suite.name,
        "kind": kind,
        "complete": True,
        "n_items": len(items),
        "max_new_tokens": opts.max_new_tokens,
    }
    if opts.redteam_half:
        meta["redteam_half"] = opts.redteam_half
    rows = score_items(items, cand)
    if kind == "redteam":
        meta["redteam"] = redteam_summary(rows)
        meta["over_refusal_rate"] = over_refusal_rate(rows)
    base = None
    if base_ref is not None:
        base_model = LoadedModel.load(base_ref.path)
        base = base_model.respond(prompts, opts.max_new_tokens, batch_size=opts.batch_size, seed=opts.seed)
        for row, b in zip(rows, base, strict=True):
            row["baseline_response"] = b
        if kind == "redteam":  # before vs after, per category
            base_rows = score_items(items, base)
            for cat, row in redteam_summary(base_rows).items():
                meta["redteam"][cat]["baseline_pass_rate"] = row["pass_rate"]
            meta["baseline_over_refusal_rate"] = over_refusal_rate(base_rows)
            for row, b in zip(rows, base_rows, strict=True):
                row["baseline_passed"] = b["passed"]
    spec = _spec(ws)
    if opts.alarms is None:  # the spec's (signed) limits in a workspace, else the defaults
        opts = replace(opts, alarms=alarm_limits(spec))
    meta["alarm_limits"] = opts.alarms.record()  # the gate refuses results measured with other limits
    if kind == "success" and spec is not None:
        criteria = [it.criteria for it in items]
        meta["success_criteria"] = success_criteria(spec, cand, suite.behaviours, base, prompts, criteria)
    notes: list[str] = []
    if base is not None and kind != "redteam":  # win rates and alarms on task prompts, not on probes
        notes += _compare(opts, prompts, cand, base, meta, rows, ws)
    _opening_collapse(opts, items, cand, base, meta)
    ref_path = opts.reference or (base_ref.path if base_ref else None)
    if ref_path and opts.kl_prompts > 0:
        ref = (
            base_model
            if base_ref and ref_path == base_ref.path
            else LoadedModel.load(resolve_model(ref_path, ws).path)
        )
        meta["kl"] = mean_kl(
            cand_model, ref, prompts[: opts.kl_prompts], opts.max_new_tokens, opts.seed, opts.batch_size
        )
        meta["kl_estimator"] = KL_REPORTED  # what a reader of the number needs (rlhfops.measures.kl_reading)
    result = EvalResult(meta=meta, items=rows, notes=notes)
    judge = (meta.get("win_rate") or {}).get("judge") or opts.judge or "rlhfops.redteam.detectors"
    _store(
        result,
        ws,
        out,
        [cand_ref.artifact_id, base_ref.artifact_id if base_ref else None],
        suite_digest=prompt_set_digest([(it.id, it.prompt) for it in items]),
        judge=str(judge),
    )
    return result


def prompt_set_digest(items: list[Any]) -> str:
    """SHA-256 of the canonical JSON of the prompt set evaluated (what the attestation binds)."""
    from rlhfops.workspace.attest import sha256_json

    return sha256_json([list(x) if isinstance(x, tuple) else x for x in items])


def _store(
    result: EvalResult,
    ws: Any | None,
    out: Path | None,
    parents: list[str | None],
    *,
    suite_digest: str,
    judge: str,
) -> None:
    """Write the result to ``out`` and, in a workspace, record it with its signed attestation."""
    payload = json.dumps({"meta": result.meta, "items": result.items, "notes": result.notes}, indent=1)
    if ws is None:
        if out is None:
            raise UserError("not in a workspace: give --out FILE for the result JSON")
        out = atomic_write_text(out, payload)
        result.path = out
        return
    from rlhfops.workspace.identity import acting_person
    from rlhfops.workspace.provenance import record_evaluation

    result.artifact_id = record_evaluation(
        ws,
        result.meta,
        result.items,
        result.notes,
        [p for p in parents if p],
        acting_person(),
        suite_digest=suite_digest,
        judge=judge,
    )
    result.path = ws.artifact(result.artifact_id).path
    if out is not None:
        Path(out).write_text(payload, encoding="utf-8")
