"""CLI commands for evaluation and red-teaming: `rlhfops eval run|compare`, `rlhfops redteam list`.

Thin: parse, call :func:`rlhfops.evaluate.run.run_evaluation` (or the suite loader), print.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from rlhfops.cli.options import AS_OPT
from rlhfops.errors import UserError
from rlhfops.evaluate.generation import GENERATION_BATCH_SIZE
from rlhfops.evaluate.run import EvalOptions, run_evaluation
from rlhfops.judge.settings import make_judge, settings_from_workspace
from rlhfops.measures.kl_reading import kl_note
from rlhfops.redteam.split import HALVES, write_split
from rlhfops.redteam.suite import HELDOUT, REDTEAM, load_suite, shipped_suites

eval_app = typer.Typer(help="Evaluate a model on a suite; side-by-side comparisons (Play 5).")
redteam_app = typer.Typer(help="Red-team suites shipped with rlhfops and your own.")

JUDGE_OPT = typer.Option(
    None,
    "--judge",
    help="Judge for side-by-side: rule, policy (the spec's policy facts), rm:PATH, lm:PATH, openai "
    "(judge: section of rlhfops.yaml), openai:MODEL@URL, or human (eval compare only: the raters, "
    "through the annotation queue). "
    "Default: the judge: section of rlhfops.yaml (kind rule unless set).",
)
MAX_NEW_OPT = typer.Option(128, "--max-new-tokens", min=1, help="Longest reply generated per prompt.")
BATCH_OPT = typer.Option(
    GENERATION_BATCH_SIZE,
    "--batch-size",
    min=1,
    help="Replies generated per forward pass (lower it for a large model on a small GPU).",
)
OUT_OPT = typer.Option(
    None, "--out", help="Also (outside a workspace: only) write the result JSON to this file."
)


def _ws() -> Any:
    from rlhfops.workspace import find_workspace

    return find_workspace()


def _run(model: str, opts: Any, out: Path | None) -> Any:
    ws = _ws()
    try:
        return run_evaluation(model, opts, ws=ws, out=out)
    finally:
        if ws is not None:
            ws.close()


def _print_summary(res: Any) -> None:
    m = res.meta
    typer.echo(f"evaluation of {str(m['model'])[:12]} on {m['suite']} ({m['kind']}, {m['n_items']} items)")
    for cat, row in (m.get("redteam") or {}).items():
        typer.echo(f"  {cat:<28} {row['passed']:>3}/{row['total']:<3} pass {row['pass_rate']:.1%}")
    if m.get("over_refusal_rate") is not None:
        typer.echo(f"  over-refusal rate: {m['over_refusal_rate']:.1%}")
    for name, row in (m.get("success_criteria") or {}).items():
        cmp = ">=" if row["direction"] == "increase" else "<="
        ok = "met" if row["met"] else "NOT met"
        rate = "no item measures it" if row["rate"] is None else f"{row['rate']:.1%} of {row['n']}"
        typer.echo(f"  {name}: {rate} ({cmp} {row['target']:.0%}: {ok})")
    wr = m.get("win_rate")
    if wr:
        typer.echo(
            f"  win rate {wr['rate']:.3f} [{wr['ci_low']:.3f}, {wr['ci_high']:.3f}] "
            f"(W/T/L {wr['wins']}/{wr['ties']}/{wr['losses']}, judge {wr['judge']}, both orders)"
        )
    if m.get("reward"):
        typer.echo(
            f"  reward: candidate {m['reward']['candidate']:.3f} vs baseline {m['reward']['baseline']:.3f}"
        )
    if m.get("kl") is not None:
        typer.echo(f"  KL to reference: {m['kl']:.3f} ({kl_note(m['kl'], m.get('kl_estimator'))})")
    for a in m.get("alarms") or []:
        typer.echo(f"  ALARM {a['name']}: {a['evidence']}")
    for note in res.notes:
        typer.echo(f"  note: {note}")
    if not m.get("complete"):
        typer.echo("  INCOMPLETE: some items failed to run")
    where = f"artifact {res.artifact_id[:12]} ({res.path})" if res.artifact_id else str(res.path)
    typer.echo(f"stored: {where}")


@eval_app.command("run")
def eval_run_cmd(
    model: str = typer.Argument(..., help="Model directory or artifact id."),
    suite: str = typer.Option(
        ..., "--suite", help="redteam, a shipped category, support-heldout, or a .jsonl file / directory."
    ),
    baseline: str | None = typer.Option(
        None,
        "--baseline",
        help="Baseline model (directory or artifact id): before/after rates; on task-prompt suites also the "
        "side-by-side win rate and reward-hacking alarms; the default KL reference.",
    ),
    judge: str | None = JUDGE_OPT,
    reward_model: str | None = typer.Option(
        None, "--reward-model", help="Reward model directory: mean reward of candidate and baseline."
    ),
    reference: str | None = typer.Option(
        None, "--reference", help="KL reference model (default: the baseline)."
    ),
    max_new_tokens: int = MAX_NEW_OPT,
    batch_size: int = BATCH_OPT,
    kl_prompts: int = typer.Option(16, "--kl-prompts", min=0, help="Held-out prompts used for the KL."),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Evaluate only the first N items (of each category in a red-team suite)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for the sampled KL replies."),
    redteam_half: str | None = typer.Option(
        None,
        "--redteam-half",
        help="Evaluate only one half of the suite by the fixed split rule (`rlhfops redteam split`): "
        "heldout (for the gate) or train.",
    ),
    out: Path | None = OUT_OPT,
    as_json: bool = typer.Option(False, "--json", help="Print the summary (meta) as JSON."),
) -> None:
    """Generate replies on a suite, measure them, and store the result (an evaluation artifact)."""
    if redteam_half is not None and redteam_half not in HALVES:
        raise UserError(f"eval run: --redteam-half {redteam_half!r}: use one of {', '.join(HALVES)}")

    opts = EvalOptions(
        suite=suite,
        baseline=baseline,
        judge=judge,
        reward_model=reward_model,
        reference=reference,
        max_new_tokens=max_new_tokens,
        kl_prompts=kl_prompts,
        limit=limit,
        seed=seed,
        redteam_half=redteam_half,
        batch_size=batch_size,
    )
    res = _run(model, opts, out)
    if as_json:
        typer.echo(json.dumps({"artifact": res.artifact_id, **res.meta}, indent=2))
    else:
        _print_summary(res)


@eval_app.command("compare")
def eval_compare_cmd(
    candidate: str = typer.Argument(..., help="Candidate model (directory or artifact id)."),
    baseline: str = typer.Argument(..., help="Baseline model (directory or artifact id)."),
    prompts: Path = typer.Option(..., "--prompts", help='JSONL of {"prompt": ...} rows (or a suite file).'),
    judge: str | None = JUDGE_OPT,
    max_new_tokens: int = MAX_NEW_OPT,
    batch_size: int = BATCH_OPT,
    limit: int | None = typer.Option(None, "--limit", min=1, help="Compare only the first N prompts."),
    show: int = typer.Option(3, "--show", min=0, help="Print this many pairs side by side."),
    out: Path | None = OUT_OPT,
    k: int | None = typer.Option(
        None, "--k", min=1, help="--judge human: raters per pair (default: annotation.overlap)."
    ),
    batch: str | None = typer.Option(
        None, "--batch", help="--judge human: batch name (default: sbs-<candidate>-vs-<baseline>)."
    ),
    reward_model: str | None = typer.Option(
        None,
        "--reward-model",
        help="--judge human: reward model directory; its scores are stored so the result can raise the "
        "reward-up-while-people-disagree alarm.",
    ),
) -> None:
    """Side-by-side: both models answer the prompts; a judge picks per pair in both orders.

    With --judge human the pairs go to the raters instead (the annotation queue, left/right randomised
    per rater); `rlhfops eval collect BATCH` turns their labels into the win rate the gate reads.
    """
    if judge == "human":
        _queue_human(candidate, baseline, prompts, max_new_tokens, limit, k, batch, reward_model)
        return

    opts = EvalOptions(
        suite=str(prompts),
        baseline=baseline,
        judge=judge,
        max_new_tokens=max_new_tokens,
        limit=limit,
        kind="side_by_side",
        kl_prompts=0,
        batch_size=batch_size,
    )
    res = _run(candidate, opts, out)
    for row in res.items[:show]:
        typer.echo(f"--- {row['id']} [{row.get('outcome', '?')}]\nprompt:    {row['prompt'][:200]}")
        typer.echo(f"candidate: {row['response'][:200]}\nbaseline:  {row.get('baseline_response', '')[:200]}")
    _print_summary(res)


def _queue_human(
    candidate: str,
    baseline: str,
    prompts: Path,
    max_new_tokens: int,
    limit: int | None,
    k: int | None,
    batch: str | None,
    reward_model: str | None,
) -> None:
    from rlhfops.evaluate.human import queue_side_by_side

    ws = _ws()
    if ws is None:
        raise UserError(
            "eval compare --judge human: run it inside a workspace (the raters' queue lives there)"
        )
    try:
        q = queue_side_by_side(
            ws,
            candidate,
            baseline,
            str(prompts),
            k=k,
            batch=batch,
            reward_model=reward_model,
            max_new_tokens=max_new_tokens,
            limit=limit,
        )
    finally:
        ws.close()
    typer.echo(
        f"queued {q.queued} pair(s) for {q.k} rater(s) each in batch {q.batch} "
        f"({q.already_queued} already queued; {q.identical} prompt(s) with identical replies count as ties)"
    )
    typer.echo(f"when the raters are done: rlhfops eval collect {q.batch}")


@eval_app.command("collect")
def eval_collect_cmd(
    batch: str = typer.Argument(..., help="The batch `eval compare --judge human` queued."),
    partial: bool = typer.Option(
        False, "--partial", help="Store a result although some pairs lack labels (marked incomplete)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary (meta) as JSON."),
) -> None:
    """Win rates from the raters' labels on a human side-by-side batch, stored as an evaluation."""
    from rlhfops.evaluate.human import collect_side_by_side

    ws = _ws()
    if ws is None:
        raise UserError("eval collect: run it inside a workspace")
    try:
        res = collect_side_by_side(ws, batch, partial=partial)
    finally:
        ws.close()
    if as_json:
        typer.echo(json.dumps({"artifact": res.artifact_id, **res.meta}, indent=2))
        return
    wr = res.meta["win_rate"]
    share = wr.get("first_position_share")
    typer.echo(
        f"raters: {', '.join(wr['raters'])} ({wr['n_labels']} labels); left-side share of decided labels: "
        + (f"{share:.2f}" if share is not None else "-")
    )
    _print_summary(res)


@redteam_app.command("list")
def redteam_list_cmd() -> None:
    """Shipped red-team suites with their item counts and expected behaviour."""
    total = 0
    for name in shipped_suites():
        suite = load_suite(name)
        expected = ", ".join(sorted({i.expected or "-" for i in suite.items}))
        typer.echo(f"{name:<28} {len(suite.items):>4} items  expected: {expected}")
        total += len(suite.items)
    typer.echo(f"{REDTEAM:<28} {total:>4} items  (all categories above)")
    typer.echo(
        f"{HELDOUT:<28} {len(load_suite(HELDOUT).items):>4} items  (held-out prompts: success criteria)"
    )
    typer.echo(
        "your own: --suite PATH (a .jsonl file or a directory of them; format in rlhfops.redteam.suite)"
    )


judge_app = typer.Typer(help="Judges (AI feedback): how far to trust one before it becomes a reward.")


@judge_app.command("calibrate")
def judge_calibrate(
    judge: str = typer.Option(
        ...,
        "--judge",
        help="The judge: rule, rm:PATH, lm:PATH, openai or openai:MODEL@URL.",
        show_default=False,
    ),
    out: Path = typer.Option(Path("judge-calibration.json"), "--out", "-o", help="Report (JSON)."),
    as_: str = AS_OPT,
) -> None:
    """Score a judge on the human-labelled pairs: agreement with the raters' majority and Cohen's kappa,
    overall (both orders) and per criterion; registers a judge-calibration artifact that `train ppo`
    with `reward_judge` checks against the spec's gate.min_agreement."""
    from rlhfops.judge.calibrate import calibrate
    from rlhfops.workspace import acting_person, require_workspace

    with require_workspace() as ws:
        person = acting_person(as_)
        res = calibrate(ws, make_judge(judge, settings_from_workspace(ws)), judge, out, person)

    def shown(a) -> str:
        if a.n == 0:
            return "no pairs"
        kappa = "undefined" if a.kappa is None else f"{a.kappa:.3f}"
        lo, hi = a.interval
        return f"{a.n} pairs: agreement {a.agreement:.1%} (95% CI {lo:.1%}-{hi:.1%}), Cohen's kappa {kappa}"

    typer.echo(f"judge {judge}: {shown(res.overall)}; position-inconsistent {res.position_inconsistent}")
    for name, a in res.per_criterion.items():
        typer.echo(f"  {name}: {shown(a)}")
    if res.skipped:
        typer.echo(f"not scored: {res.skipped}")
    typer.echo(f"wrote {res.path}; artifact {res.artifact_id}")


@redteam_app.command("split")
def redteam_split_cmd(
    suite: str = typer.Argument(
        "redteam",
        help="Suite to split: redteam (all shipped categories), a category, or a .jsonl file / dir.",
    ),
    out: Path = typer.Option(Path("redteam-split"), "--out", help="Directory for the two files."),
) -> None:
    """Split a suite by the fixed rule (prompt hash) into NAME.train.jsonl and NAME.heldout.jsonl."""
    res = write_split(suite, out)
    typer.echo(f"training half: {res.n_train} items -> {res.train}")
    typer.echo(f"held-out half: {res.n_heldout} items -> {res.heldout}")
    typer.echo(
        "evaluate for the gate on the held-out half only: rlhfops eval run MODEL --suite ... "
        "--redteam-half heldout"
    )


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.add_typer(eval_app, name="eval")
    app.add_typer(judge_app, name="judge")
    app.add_typer(redteam_app, name="redteam")
