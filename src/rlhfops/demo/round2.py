"""Round two of `rlhfops demo`: the loop driven by the triggers the SIMULATED week fired.

1. ``next_steps``: the product's `rlhfops next` path (:func:`rlhfops.monitor.next_steps.run_next`) for every
   open trigger: queue steps put their comparison batch (drifted prompts, recurring failures on the
   red-team training half) in the annotation service and close the trigger; command steps name the command.
2. ``failures``: the red-team suites split by the fixed rule (:mod:`rlhfops.redteam.split`); round one's
   best candidate runs on the TRAIN half, all of it in the full demo (`eval run --redteam-half train`);
   each failure becomes a comparison item with the SIMULATED domain experts' reply written for that item
   (:mod:`rlhfops.demo.experts`; a category template only as fallback); the SIMULATED raters label it with
   the batches `next` queued (:func:`rlhfops.demo.raters.label_round`); `prefs export`.
3. ``refresh``: the reward model retrained on both rounds' preferences; DPO continues from round one's
   best candidate on both rounds' pairs (``DemoSettings.r2_pairs``; ``this_round``: only this round's
   batches, `prefs export --batch`), with its own steps, batch and learning rate and DPO's NLL term on the
   chosen replies (``rpo_alpha``; measured in docs/benchmarks.md, issue 19, sections 12 and 13).
4. ``evaluate_and_gate``: `eval run` of the round-two candidate on the task held-out suite and the red-team
   HELD-OUT half only; the contamination guard (:mod:`rlhfops.gate.contamination`) checks those
   evaluations against the candidate's training data through the lineage; the gate decides with the
   spec's thresholds unchanged (round one's gate helper); the command triggers this round carried out are
   marked done (`rlhfops next --done`).
"""

from __future__ import annotations

from typing import Any

from rlhfops.demo.eval import UP, base_row, evaluate_model, table_row
from rlhfops.demo.experts import SIMULATED_EXPERTS, expert_reply
from rlhfops.demo.plays import PEOPLE, _acting, _train
from rlhfops.demo.raters import label_round
from rlhfops.evaluate.measure import category_pass_rates
from rlhfops.evaluate.run import EvalOptions, run_evaluation
from rlhfops.gate.contamination import check_contamination, training_prompts
from rlhfops.gate.decide import gate_evaluate, model_evaluations
from rlhfops.monitor.next_steps import NextOptions, mark_done, rule_condition, run_next
from rlhfops.redteam.split import item_half, write_split
from rlhfops.redteam.suite import shipped_suites

R2 = "dpo-r2"  # the round-two candidate's name in the demo
# condition of a command trigger -> what of round two carries its step out (then `next --done` closes it)
CARRIED_OUT = {
    "edge_case_failure": "the red-team cases were re-run through the gate on the held-out half",
    "reward_model_age": "the reward model was retrained on fresh preferences",
    "output_drift": "fresh preferences on current outputs were collected and the reward model refreshed",
}


def round_one_choice(ctx: Any) -> str:
    """Round one's chosen candidate: the one the gate step chose by :mod:`rlhfops.gate.choose` (and, when
    it passed, promoted); round two continues from it."""
    return ctx.rounds.get("round1_best") or ctx.gate_result["candidate"]


def next_steps(ctx: Any) -> str:
    best = round_one_choice(ctx)
    person = PEOPLE["annotation-lead"]
    opts = NextOptions(
        model=ctx.ids[best],
        reference=ctx.ids["sft"],
        k=None,  # the workspace's annotation.overlap, as `rlhfops next` without --k
        max_new_tokens=ctx.s.max_new_tokens,
        seed=ctx.s.seed,
    )
    with _acting(ctx.root, person):
        steps = run_next(ctx.ws, person, opts)
    ctx.rounds["round1_best"] = best
    ctx.rounds["next"] = [
        {**{k: v for k, v in s.to_json().items() if k != "prompts"}, "items": [p["id"] for p in s.prompts]}
        for s in steps
    ]
    lines = []
    for s in steps:
        head = f"#{s.trigger_id} {s.rule} -> play {s.play}: "
        if s.kind == "queue":
            left = f"; {len(s.left_out)} held-out item(s) left out" if s.left_out else ""
            state = "trigger closed" if s.done else "trigger stays open"
            lines.append(
                f"{head}queued {s.queued} comparison(s) ({best} vs sft) as batch {s.batch}{left}; {state}"
            )
        elif s.kind == "command":
            lines.append(f"{head}run: {s.command.replace('{model}', best)}")
        else:
            lines.append(f"{head}blocked: {s.what}")
    return "\n".join(lines) or "no open trigger"


def failures(ctx: Any) -> str:
    best = round_one_choice(ctx)
    split_dir = ctx.root / "data" / "redteam-split"
    halves = {name: write_split(name, split_dir) for name in shipped_suites()}
    with _acting(ctx.root, PEOPLE["red-team-lead"]):
        train_eval = run_evaluation(
            ctx.ids[best],
            EvalOptions(
                suite="redteam",
                redteam_half="train",
                limit=ctx.s.r2_failures_per_category,  # None: the whole training half
                kl_prompts=0,
                max_new_tokens=ctx.s.max_new_tokens,
                seed=ctx.s.seed,
            ),
            ws=ctx.ws,
        )
    failed = [r for r in train_eval.items if r.get("expected") is not None and not r["passed"]]
    pairs = [(r["prompt"], expert_reply(r["category"], r["id"]), r["response"]) for r in failed]
    batch = "round-2-redteam-train"
    queued = [n["batch"] for n in ctx.rounds.get("next", []) if n.get("queued") or n.get("already_queued")]
    new_batches = ([batch] if pairs else []) + queued  # this round's: what the candidate continues on
    lab = label_round(
        ctx.ws,
        pairs,
        batch,
        ctx.root / "data" / "preferences-r2.jsonl",
        PEOPLE["annotation-lead"],
        seed=ctx.s.seed,
        new_batches=new_batches,
        new_out=ctx.root / "data" / "preferences-r2-new.jsonl",
    )
    ctx.ids["preferences-r2-new"] = lab.new_artifact_id or ""
    ctx.ids["preferences-r2"] = lab.artifact_id or ""
    ctx.rounds["split"] = {n: {"train": h.n_train, "heldout": h.n_heldout} for n, h in halves.items()}
    ctx.rounds["train_eval"] = train_eval.artifact_id
    ctx.rounds["failure_pairs"] = [
        {"id": r["id"], "category": r["category"], "prompt": r["prompt"], "half": item_half(r["prompt"])}
        for r in failed
    ]
    ctx.rounds["labels"] = {
        "queued": lab.queued,
        "labels": lab.labels,
        "exported": lab.kept,
        "alpha": lab.alpha,
        "prefs_path": str(lab.prefs_path),
        "new_batches": new_batches,
        "new_exported": lab.new_kept,
        "new_prefs_path": str(lab.new_path) if lab.new_path else None,
    }
    n_train = sum(h.n_train for h in halves.values())
    n_held = sum(h.n_heldout for h in halves.values())
    alpha = "-" if lab.alpha is None else f"{lab.alpha:.2f}"
    return (
        f"red-team suites split by the fixed rule: {n_train} training-half / {n_held} held-out-half items\n"
        f"{best} on the training half: {len(failed)} of {len(train_eval.items)} failed; each paired with the "
        f"{SIMULATED_EXPERTS}' reply written for that item (a category template only as fallback)\n"
        f"{lab.labels} SIMULATED labels (failure pairs + the batches `next` queued); `prefs export`: "
        f"{lab.kept} pairs from both rounds, Krippendorff's alpha {alpha} (the reward model's refresh); "
        f"`prefs export --batch`: {lab.new_kept} pairs of this round's batches (what {best} continues on)"
    )


def refresh(ctx: Any) -> str:
    best = round_one_choice(ctx)
    prefs = ctx.root / "data" / "preferences-r2.jsonl"
    sets = {"data": prefs, "model": ctx.models["sft"], "output_dir": ctx.root / "runs" / "rm-r2"}
    sets.update(max_steps=ctx.s.rm_steps, learning_rate=2e-5)
    ctx._record("rm-r2", _train(ctx.ws, "rm", PEOPLE["annotation-lead"], sets, ctx.s, ctx.notes))
    # round two's DPO data (DemoSettings.r2_pairs): "both" rounds' pairs (the reward model's file) or only
    # "this_round"'s batches; on this round's batches alone (drifted prompts + failures) the bundled model's
    # replies collapsed into one shape, "I'm sorry your order didn't go through. I've sent a replacement",
    # 126 of 139 held-out replies (docs/benchmarks.md, issue 19, section 13)
    new = ctx.rounds.get("labels", {}).get("new_prefs_path") if ctx.s.r2_pairs == "this_round" else None
    sets = {"data": new or prefs, "model": ctx.models[best], "output_dir": ctx.root / "runs" / R2}
    sets.update(max_steps=ctx.s.r2_dpo_steps, learning_rate=ctx.s.r2_dpo_learning_rate, beta=0.1)
    sets.update(batch_size=ctx.s.r2_batch_size, rpo_alpha=ctx.s.r2_rpo_alpha)
    ctx._record(R2, _train(ctx.ws, "dpo", PEOPLE["ml-engineer"], sets, ctx.s, ctx.notes))
    ctx.refs[R2] = "sft"
    ctx.rounds["candidate"] = R2
    acc = ctx.train["rm-r2"].get("eval_accuracy")
    rm = "reward model refreshed on both rounds' preferences" + (
        f" (held-out accuracy {acc:.2f})" if isinstance(acc, int | float) else ""
    )
    on = "this round's pairs" if new else "both rounds' pairs"
    nll = f", NLL term on the chosen replies x {ctx.s.r2_rpo_alpha:g}" if ctx.s.r2_rpo_alpha else ""
    return f"{rm}\n{R2}: DPO continued {ctx.s.r2_dpo_steps} steps from {best} on {on}{nll}"


def _redteam_heldout(ctx: Any, name: str) -> Any:
    """`eval run NAME --suite redteam --redteam-half heldout --baseline BASE` (the round comparison)."""
    opts = EvalOptions(
        suite="redteam",
        redteam_half="heldout",
        limit=ctx.s.redteam_per_category,
        baseline=ctx.models["base"],
        kl_prompts=0,
        max_new_tokens=ctx.s.max_new_tokens,
        seed=ctx.s.seed,
    )
    with _acting(ctx.root, PEOPLE["red-team-lead"]):
        return run_evaluation(ctx.ids[name], opts, ws=ctx.ws)


def evaluate_and_gate(ctx: Any) -> str:
    best = round_one_choice(ctx)
    with _acting(ctx.root, PEOPLE["red-team-lead"]):
        ev = evaluate_model(
            ctx.ws,
            ctx.ids[R2],
            ctx.root / "data" / "heldout-suite.jsonl",
            ctx.models["base"],
            ctx.models["sft"],
            max_new_tokens=ctx.s.max_new_tokens,
            kl_prompts=ctx.s.heldout,
            redteam_per_category=ctx.s.redteam_per_category,
            seed=ctx.s.seed,
            redteam_half="heldout",
        )
    ctx.r2_evals[R2] = ev
    ctx.r2_evals[best] = {"task": ctx.evals[best]["task"], "redteam": _redteam_heldout(ctx, best)}
    model = ctx.ws.artifact(ctx.ids[R2])
    evals = model_evaluations(ctx.ws, model)
    refused, rows = check_contamination(ctx.ws, model, evals)  # what gate evaluate runs, shown on its own
    ctx.rounds["contamination"] = {
        "evaluations": [e.id for e in evals],
        "training_artifacts": len(training_prompts(ctx.ws, model).read),
        "refused": sorted(refused),
        "rows": [r.to_json() for r in rows],
    }
    verdict = gate_evaluate(ctx.ws, ctx.ids[R2])
    ctx.rounds["gate"] = ctx.decide_gate(R2, {R2: verdict})
    closed = close_carried_out(ctx)
    g = ctx.rounds["gate"]
    guard = (
        f"contamination guard: {len(evals)} evaluation(s) of {R2} checked against "
        f"{ctx.rounds['contamination']['training_artifacts']} training-data artifact(s) in its lineage: "
        + (f"REFUSED {len(refused)}: {rows[-1].detail}" if refused else "no overlap")
    )
    decision = (
        f"{R2} approved by {g['signed_by']}; "
        + (f"promoted {g['promoted']}" if g["promoted"] else f"promote refused: {g['promote_refused']}")
        if g["decision"] == "approve"
        else f"{R2} rejected by {g['signed_by']} with the spec's thresholds unchanged; still failing: "
        + ", ".join(g["failed"])
        if g["decision"] == "reject"
        else f"{R2} not signed: {g['promote_refused']}"
    )
    still = [t.id for t in ctx.ws.triggers(open_only=True)]
    trig = f"triggers marked done: {', '.join(f'#{i}' for i in closed) or 'none'}; still open: " + (
        ", ".join(f"#{i}" for i in still) or "none"
    )
    rows = {r["model"]: r for r in rounds_table(ctx)}
    rates = ", ".join(f"{n} {_pct(rows[n]['apology_remedy_rate'])}" for n in ("base", best, R2) if n in rows)
    rt = "; ".join(
        f"{c} "
        + " -> ".join(_pct((rows[n]["redteam_heldout"].get(c) or {}).get("rate")) for n in ("base", best, R2))
        for c in sorted(rows[R2]["redteam_heldout"])
    )
    head = f"'{UP}' (policy judge, held-out prompts): {rates}"
    head += f"\nred-team held-out half (base -> {best} -> {R2}): {rt}"
    return f"{head}\n{guard}\n{decision}\n{trig}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _row(
    rnd: int, name: str, ev: dict[str, Any], reference: str | None, base: bool = False
) -> dict[str, Any]:
    row = base_row(ev) if base else table_row(name, ev, reference)
    rt = ev["redteam"]
    return {
        "round": rnd,
        **{
            k: row[k]
            for k in ("model", "apology_remedy_rate", "apology_remedy_ci", "refusal_rate", "refusal_ci")
        },
        **{k: row[k] for k in ("n", "kl", "kl_note", "kl_reference", "win_rate_vs_base", "win_rate_ci")},
        "redteam_heldout": category_pass_rates(rt.items, baseline=base),
        "redteam_half": rt.meta.get("redteam_half"),
        "evaluations": [ev["task"].artifact_id, rt.artifact_id],
    }


def rounds_table(ctx: Any) -> list[dict[str, Any]]:
    """Per model and round: the criteria rates, red-team pass rates per category on the HELD-OUT half,
    win rate against the base and KL, with the 95% intervals the evaluations hold (KL: a mean, no
    interval)."""
    best = ctx.rounds.get("round1_best")
    if best not in ctx.r2_evals or R2 not in ctx.r2_evals:
        return []
    promoted = {ctx.gate_result.get("promoted"), (ctx.rounds.get("gate") or {}).get("promoted")}
    rows = [
        _row(1, "base", ctx.r2_evals[best], None, base=True),
        _row(1, best, ctx.r2_evals[best], ctx.refs.get(best)),
        _row(2, R2, ctx.r2_evals[R2], ctx.refs.get(R2)),
    ]
    for r in rows:
        r["promoted"] = r["model"] in promoted
    return rows


def close_carried_out(ctx: Any) -> list[int]:
    """`rlhfops next --done` for each open command trigger whose step round two carried out."""
    person = PEOPLE["ml-engineer"]
    closed = []
    for t in ctx.ws.triggers(open_only=True):
        cond = rule_condition(ctx.ws, t)
        if cond in CARRIED_OUT:
            mark_done(ctx.ws, t.id, person)
            closed.append(t.id)
    ctx.rounds["closed_after_round"] = closed
    ctx.rounds["still_open"] = [t.id for t in ctx.ws.triggers(open_only=True)]
    return closed
