"""CLI commands for monitoring: `rlhfops monitor ingest|drift|logs`, `rlhfops triggers [list|check|close]`,
`rlhfops next` (each open trigger's next step).

Thin: each command parses, calls one function of :mod:`rlhfops.monitor` and prints its result.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from rlhfops.cli.options import AS_OPT
from rlhfops.config import parse_overrides
from rlhfops.errors import UserError
from rlhfops.monitor.rewards import reward_model_scorer

monitor_app = typer.Typer(help="Production monitoring: ingest logs, input/output drift, business metrics.")
triggers_app = typer.Typer(
    help="The trigger table: open triggers say which play to re-enter, with their evidence.",
    invoke_without_command=True,
)
RULES_OPT = typer.Option(
    None,
    "--rules",
    help="Trigger table (YAML) to use instead of the workspace's (monitor.triggers_file, triggers.yaml) "
    "or the bundled default.",
)


@monitor_app.command("ingest")
def ingest(
    file: Path = typer.Argument(
        ..., help="Production log: .jsonl, .jsonl.gz, .ndjson or .csv (with header)."
    ),
    batch_size: int = typer.Option(2000, "--batch-size", help="Records held in memory at once."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    as_: str = AS_OPT,
) -> None:
    """Check every row of a production log, then store it as a production-log artifact.

    Fields: prompt, response, model_id, time (ISO 8601) required; id, task_completed, review_minutes,
    client_flag optional. A bad row stops the import with its row number; nothing is stored.
    """
    from rlhfops.monitor.logs import ingest_to_workspace
    from rlhfops.workspace import acting_person, require_workspace

    with require_workspace() as ws:
        res = ingest_to_workspace(ws, file, acting_person(as_), batch_size=batch_size)
    if as_json:
        typer.echo(json.dumps(res.to_json(), indent=2, sort_keys=True))
        return
    s = res.summary
    models = ", ".join(f"{m} ({n})" for m, n in sorted(s.models.items()))
    again = " (already stored: same content)" if res.already_stored else ""
    typer.echo(f"production-log {res.artifact_id[:12]}: {s.rows} rows from {file}{again}")
    typer.echo(f"models: {models}; time {s.time_min:%Y-%m-%d %H:%M} .. {s.time_max:%Y-%m-%d %H:%M} UTC")
    typer.echo(
        f"with task_completed {s.with_task_completed}, review_minutes {s.with_review_minutes}, "
        f"client_flag {s.with_client_flag}"
    )


@monitor_app.command("logs")
def logs(as_json: bool = typer.Option(False, "--json", help="Print JSON records.")) -> None:
    """List the stored production-log batches: id, rows, models, time range."""
    from rlhfops.monitor.logs import log_artifacts
    from rlhfops.workspace import require_workspace

    with require_workspace() as ws:
        arts = log_artifacts(ws)
    if as_json:
        typer.echo(json.dumps([a.to_json() for a in arts], indent=2))
        return
    if not arts:
        typer.echo("no production logs yet; add one with `rlhfops monitor ingest FILE`")
    for a in arts:
        m = a.meta
        span = f"{m.get('time_min')} .. {m.get('time_max')}"
        typer.echo(f"{a.id[:12]}  {m.get('rows')} rows  {m.get('source')}  {span}")


@monitor_app.command("drift")
def drift(
    window: str = typer.Option(
        "1000", "--window", help="Window: a number of rows (1000) or a time span (7d, 12h, 30m)."
    ),
    step: str = typer.Option(
        None, "--step", help="Stride between windows (default: the window: no overlap)."
    ),
    windows: int = typer.Option(5, "--windows", min=1, help="Test the last N windows (the newest decides)."),
    since: str = typer.Option(None, "--since", help="Only production rows at or after this ISO date-time."),
    model: str = typer.Option(
        None, "--model", help="Model artifact to compare with (default: the deployed/latest model)."
    ),
    model_id: str = typer.Option(None, "--model-id", help="Only production rows with this model_id."),
    train_prompts: Path = typer.Option(
        None, "--train-prompts", help="Data file of training prompts (default: the model's lineage)."
    ),
    reference: Path = typer.Option(
        None,
        "--reference",
        help="Reference outputs (rows with response[, reward, prompt]) instead of the "
        "model's gate evaluation.",
    ),
    reward_model: str = typer.Option(
        None,
        "--reward-model",
        help="Reward model (artifact id or directory) to score production and reference responses; "
        "adds reward_score to output drift.",
    ),
    sets: list[str] = typer.Option(
        None, "--set", help="Drift setting key=value (alpha, auc_threshold, rule, n_permutations, ...)."
    ),
    rules: Path = RULES_OPT,
    no_triggers: bool = typer.Option(False, "--no-triggers", help="Store the report; open no triggers."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    as_: str = AS_OPT,
) -> None:
    """Input drift (MMD + domain classifier on embeddings), output drift (length, refusals, reward;
    KS + Holm) and business metrics vs the baseline; stores a drift-report and opens triggers."""
    from rlhfops.monitor.drift_run import DriftSettings, drift_config, parse_span, run_drift
    from rlhfops.workspace import acting_person, require_workspace

    with require_workspace() as ws:
        settings = DriftSettings(
            window=parse_span(window),
            step=parse_span(step) if step else None,
            max_windows=windows,
            since=_parse_time(since),
            model=model,
            model_id=model_id,
            train_prompts=train_prompts,
            reference=reference,
            config=drift_config(ws, parse_overrides(sets)),
        )
        settings.alpha = settings.config.alpha
        scorer = None
        if reward_model:
            rm_path = Path(reward_model)
            scorer = reward_model_scorer(rm_path if rm_path.is_dir() else ws.artifact(reward_model).path)
        res = run_drift(
            ws, settings, acting_person(as_), rules=rules, triggers=not no_triggers, scorer=scorer
        )
    if as_json:
        out = {"report_id": res.report_id, "report": res.report}
        if res.check is not None:
            out["triggers"] = [f.to_json() for f in res.check.firings]
        typer.echo(json.dumps(out, indent=2, sort_keys=True))
        return
    _print_report(res)


def _parse_time(text: str | None):
    if text is None:
        return None

    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(
            f"--since {text!r}: not an ISO 8601 date-time (e.g. 2025-03-01 or 2025-03-01T12:00Z)"
        ) from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def _print_report(res) -> None:
    r = res.report
    latest = r["input"]["latest"]
    typer.echo(f"drift-report {res.report_id[:12]} (model {str(r['model'])[:12]}; {r['training_note']})")
    typer.echo(f"input: {latest['evidence']}")
    for w in r["input"]["windows"][:-1]:
        typer.echo(
            f"  earlier window ({w['rows']} rows): {'drifted' if w['drifted'] else 'no drift'}, "
            f"AUC {w['auc']:.3f}, MMD p {w['mmd_p']:.3g}"
        )
    for c in latest["new_clusters"]:
        typer.echo(f"  new cluster: {c['size']} rows ({c['share']:.0%}), e.g.:")
        for e in c["examples"][:3]:
            typer.echo(f"    - {e['prompt'][:100]}")
    out = r["output"]
    if out["metrics"]:
        typer.echo(f"output vs {out['reference']}:")
        for m in out["metrics"]:
            flag = "DRIFTED" if m["drifted"] else "ok"
            typer.echo(
                f"  {m['name']}: {m['reference_value']:.3g} -> {m['production_value']:.3g} "
                f"({m['test']} p_adj={m['p_adjusted']:.3g}) {flag}"
            )
    if out.get("skipped"):
        typer.echo(f"output: {out['skipped']}")
    for b in r["business"]:
        if b["n"] == 0:
            continue
        base = "no baseline" if b["baseline"] is None else f"baseline {b['baseline']:.3g}"
        ci = f"[{b['ci_low']:.3g}, {b['ci_high']:.3g}]" if b["ci_low"] is not None else "[n/a]"
        verdict = {True: "better", False: "worse", None: "not distinguishable"}[b["better"]]
        typer.echo(f"business {b['name']}: {b['current']:.3g} {ci} vs {base}: {verdict} (n={b['n']})")
    if res.check is not None:
        _print_check(res.check, False)


def _print_triggers(rows: list[dict], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    if not rows:
        typer.echo("open triggers: none")
        return
    for t in rows:
        typer.echo(
            f"#{t['id']}  -> Play {t['play']} ({t['play_name']})  [{t['rule']}]  {t['opened_at'][:16]}"
        )
        typer.echo(f"      {t['evidence']}")


@triggers_app.callback()
def triggers_default(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON records.")
) -> None:
    """List the open triggers (same as `rlhfops triggers list`)."""
    if ctx.invoked_subcommand is None:
        triggers_list(as_json)


@triggers_app.command("list")
def triggers_list(as_json: bool = typer.Option(False, "--json", help="Print JSON records.")) -> None:
    """List the open triggers: id, the play to re-enter, the rule and its evidence."""
    from rlhfops.monitor.engine import open_triggers
    from rlhfops.workspace import require_workspace

    with require_workspace() as ws:
        rows = open_triggers(ws)
    _print_triggers(rows, as_json)


@triggers_app.command("check")
def triggers_check(
    rules: Path = RULES_OPT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    as_: str = AS_OPT,
) -> None:
    """Evaluate the trigger table on the workspace facts; open a trigger for each new firing.

    Facts: reward-hacking alarms, red-team failures, rater turnover, reward model age, latest drift report.
    """
    from rlhfops.monitor.engine import check_workspace_triggers
    from rlhfops.workspace import acting_person, require_workspace

    with require_workspace() as ws:
        res = check_workspace_triggers(ws, acting_person(as_), rules=rules)
    _print_check(res, as_json)


def _print_check(res, as_json: bool) -> None:
    if as_json:
        out = {"rules": res.rules_source, "firings": [f.to_json() for f in res.firings], "notes": res.notes}
        typer.echo(json.dumps(out, indent=2, sort_keys=True))
        return
    typer.echo(f"trigger table: {res.rules_source}")
    if not res.firings:
        typer.echo("no rule fires")
    for f in res.firings:
        if f.trigger_id is not None:
            state = f"opened #{f.trigger_id}"
        elif f.open_trigger is not None:
            state = f"still open #{f.open_trigger}"
        else:
            state = "already raised"
        typer.echo(f"{state}: -> Play {f.firing.play} [{f.firing.rule_id}] {f.firing.evidence}")
        if f.comparison_batch:
            typer.echo(f"  next comparison batch: prompts artifact {f.comparison_batch[:12]}")
    for note in res.notes:
        typer.echo(f"note: {note}")


@triggers_app.command("open")
def triggers_open(
    play: int = typer.Option(..., "--play", min=1, max=5, help="The play to re-enter (1-5)."),
    rule: str = typer.Option(..., "--rule", help="What was seen, e.g. net_new_task."),
    evidence: str = typer.Option(..., "--evidence", help="One line of evidence (what, where, how much)."),
    as_: str = AS_OPT,
) -> None:
    """Open a trigger by hand (e.g. a net-new task seen by the product team); prints its id."""
    from rlhfops.workspace import acting_person, require_workspace

    if not rule.strip() or not evidence.strip():
        raise UserError("triggers open: --rule and --evidence must not be empty")
    with require_workspace() as ws:
        person = acting_person(as_)
        tid = ws.open_trigger(play, rule.strip(), evidence.strip(), f"manual:{person}")
    typer.echo(f"trigger {tid} opened: -> Play {play} [{rule.strip()}] by {person}")


@triggers_app.command("close")
def triggers_close(
    trigger_id: int = typer.Argument(..., help="Id of an open trigger (from `rlhfops triggers`)."),
    as_: str = AS_OPT,
) -> None:
    """Close an open trigger (the play was re-entered or the evidence was reviewed)."""
    from rlhfops.workspace import acting_person, require_workspace

    with require_workspace() as ws:
        person = acting_person(as_)
        ws.close_trigger(trigger_id, person)
    typer.echo(f"trigger {trigger_id} closed by {person}")


@triggers_app.command("rules")
def triggers_rules(
    init: bool = typer.Option(
        False, "--init", help="Copy the bundled table to triggers.yaml in the workspace to tune it."
    ),
    rules: Path = RULES_OPT,
) -> None:
    """Show the trigger table in use (rule, play, condition); --init copies the default to edit."""
    from rlhfops.monitor.engine import workspace_rules
    from rlhfops.monitor.triggers import init_rules_file
    from rlhfops.workspace import require_workspace

    with require_workspace() as ws:
        if init:
            typer.echo(f"wrote {init_rules_file(ws.root)}; edit thresholds there")
        table, source = workspace_rules(ws, rules)
    typer.echo(f"trigger table: {source}")
    for r in table:
        params = ", ".join(f"{k}={v}" for k, v in r.params.items() if v is not None)
        off = "" if r.enabled else " (disabled)"
        typer.echo(f"{r.id}{off}: -> Play {r.play} when {r.condition}({params})")


def next_cmd(
    done: int = typer.Option(
        None, "--done", help="Record that this trigger's step was done and close the trigger."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; load no model, write nothing."),
    model: str = typer.Option(
        None, "--model", help="Current candidate for the pairs' first reply (default: the deployed model)."
    ),
    reference: str = typer.Option(
        None,
        "--reference",
        help="Model for the second reply (default: the SFT model in the candidate's lineage).",
    ),
    k: int = typer.Option(None, "--k", min=1, max=50, help="Raters per pair (default: annotation.overlap)."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1, help="Longest reply generated."),
    seed: int = typer.Option(0, "--seed", help="Generation seed."),
    rules: Path = RULES_OPT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON records."),
    as_: str = AS_OPT,
) -> None:
    """Turn each open trigger into its next step: queue its comparison batch (drifted prompts, recurring
    failures) for the raters and close it, or say which command to run and why (close it with --done ID)."""
    from rlhfops.monitor.next_steps import NextOptions, mark_done, run_next
    from rlhfops.workspace import acting_person, require_workspace

    opts = NextOptions(model, reference, k, max_new_tokens, seed, dry_run)
    with require_workspace() as ws:
        person = acting_person(as_)
        steps = (
            [mark_done(ws, done, person, rules)] if done is not None else run_next(ws, person, opts, rules)
        )
    if as_json:
        typer.echo(json.dumps([s.to_json() for s in steps], indent=2, sort_keys=True))
        return
    if not steps:
        typer.echo("open triggers: none; nothing to do")
    for s in steps:
        typer.echo(f"#{s.trigger_id} [{s.rule}] -> {s.what}")  # blocked: the reason
        if done is not None:
            typer.echo(f"      done: trigger {s.trigger_id} closed by {person}")
        elif s.kind == "blocked":
            typer.echo("      blocked: nothing recorded; the trigger stays open")
        elif s.kind == "command":
            again = " (recorded earlier)" if s.recorded_before else ""
            typer.echo(f"      run: {s.command}{again}; then `rlhfops next --done {s.trigger_id}`")
        elif dry_run:
            typer.echo(f"      would queue {len(s.prompts)} prompt(s) as batch {s.batch} (dry run)")
        else:
            state = f"closed trigger {s.trigger_id}" if s.done else "trigger stays open: no pair to queue"
            typer.echo(
                f"      queued {s.queued} pair(s) as batch {s.batch} ({s.already_queued} already queued, "
                f"{s.identical} with identical replies; {str(s.model)[:12]} vs {str(s.reference)[:12]}); "
                f"{state}"
            )


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.command("next")(next_cmd)
    app.add_typer(monitor_app, name="monitor")
    app.add_typer(triggers_app, name="triggers")
