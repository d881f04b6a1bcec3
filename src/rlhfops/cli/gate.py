"""Play 5 commands: `rlhfops gate evaluate|choose|sign|log`, `rlhfops promote`, `rlhfops report`.

Thin: each command parses, calls one function of :mod:`rlhfops.gate` / :mod:`rlhfops.report` and
prints its result. Signing and promoting need the person's credential: ``--password-stdin`` (with
``--as NAME`` / $RLHFOPS_USER) or a personal API token (``--token-stdin`` or $RLHFOPS_TOKEN).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from rlhfops.cli.options import AS_OPT, PASSWORD_STDIN_OPT, TOKEN_STDIN_OPT, cli_signer
from rlhfops.errors import UserError
from rlhfops.gate import log as dlog
from rlhfops.gate.decide import gate_choose, gate_evaluate, gate_sign, promote
from rlhfops.measures.kl_reading import kl_note
from rlhfops.report import render

if TYPE_CHECKING:
    from rlhfops.gate.log import LogEntry
    from rlhfops.workspace.core import Workspace

gate_app = typer.Typer(help="The deployment gate (Play 5): evaluate thresholds, sign, decision log.")

MODEL_ARG = typer.Argument(
    ..., help="Model artifact id or a unique prefix (sft-model, dpo-model, ppo-model)."
)


def _fmt(x: object) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3f}"
    return str(x)


@gate_app.command("evaluate")
def gate_evaluate_cmd(
    model: str = MODEL_ARG,
    as_json: bool = typer.Option(False, "--json", help="Print JSON (results and merged evidence)."),
    check: bool = typer.Option(False, "--check", help="Exit 1 unless the gate passes (for CI pipelines)."),
) -> None:
    """Pass/fail per threshold of the signed spec, from the model's stored evaluations."""
    from rlhfops.workspace import require_workspace

    with require_workspace() as ws:
        g = gate_evaluate(ws, model)
    if as_json:
        typer.echo(json.dumps(g.to_json(), indent=2, sort_keys=True))
    else:
        _print_gate(g)
    if check and not g.passed:
        raise SystemExit(1)


def _print_gate(g) -> None:
    typer.echo(f"gate for {g.model[:12]} on spec {g.spec_hash[:12]}: {g.verdict.upper()}")
    for r in g.results:
        src = f" [{r.source[:12]}]" if r.source else ""
        detail = f"  ({r.detail})" if r.detail else ""
        if r.name == "kl" and r.observed is not None:  # how to read the number (not part of the verdict)
            detail += f"  ({kl_note(g.evidence.kl, g.evidence.kl_estimator)})"
        typer.echo(
            f"  {r.status:<11} {r.label}: {_fmt(r.observed)} {r.comparator} {_fmt(r.required)}{src}{detail}"
        )
    if not g.complete:
        typer.echo(f"incomplete: {g.why_incomplete()}")
    typer.echo(f"evaluations counted: {', '.join(e[:12] for e in g.evidence.counted) or 'none'}")


@gate_app.command("choose")
def gate_choose_cmd(
    models: list[str] = typer.Argument(..., help="Candidate models (artifact ids or unique prefixes)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (the ranking and the change)."),
) -> None:
    """Rank candidates for the gate owner (pass, fewest failed thresholds, main criterion); pick one.

    Passing every threshold ranks first, then the fewest failed thresholds (an incomplete verdict last),
    then the better rate of the spec's main criterion, then the order given. Prints the ranking and the
    chosen model's change over the base model on that criterion (rlhfops.gate.choose).
    """
    from rlhfops.workspace import require_workspace

    with require_workspace() as ws:
        c = gate_choose(ws, models)
    if as_json:
        typer.echo(json.dumps(c.to_json(), indent=2, sort_keys=True))
        return
    crit = c.criterion or "(the spec names no main criterion)"
    typer.echo(f"main criterion: {crit} ({c.direction})")
    for i, s in enumerate(c.ranking, 1):
        failed = f"; failed: {', '.join(s.failed)}" if s.failed else ""
        missing = f"; no evidence: {', '.join(s.missing)}" if s.missing else ""
        typer.echo(f"  {i}. {s.model[:12]} {s.verdict.upper():<10} rate {_fmt(s.rate)}{failed}{missing}")
    ch = c.change
    change = (
        "-"
        if ch.points is None
        else f"{ch.points:+.1f} points ({_fmt(ch.rate)} vs base {_fmt(ch.base_rate)})"
    )
    typer.echo(f"chosen: {c.model} ({c.reason}); change over the base: {change}")


@gate_app.command("sign")
def gate_sign_cmd(
    model: str = MODEL_ARG,
    decision: str = typer.Option(..., "--decision", help="approve or reject."),
    reason: str = typer.Option(
        ..., "--reason", help="Why (kept in the decision log; >= 10 characters to approve over failures)."
    ),
    no_report: bool = typer.Option(
        False, "--no-report", help="Do not write the decision's HTML report (reports/gate-<id>-<entry>.html)."
    ),
    as_: str = AS_OPT,
    password_stdin: bool = PASSWORD_STDIN_OPT,
    token_stdin: bool = TOKEN_STDIN_OPT,
) -> None:
    """Sign the gate for a model (gate owner only; complete evaluation; current signed spec).

    Needs the gate owner's password (--password-stdin) or API token (--token-stdin / $RLHFOPS_TOKEN);
    the decision is signed with their Ed25519 key."""
    from rlhfops.workspace import require_workspace

    with require_workspace() as ws:
        signer = cli_signer(ws, as_, password_stdin, token_stdin, "gate sign")
        e = gate_sign(ws, model, signer, decision, reason)
        report = "" if no_report else _decision_report(ws, e)
    tail = f" OVERRIDE over failed thresholds: {', '.join(e.get('failed'))}" if e.get("override") else ""
    typer.echo(
        f"decision log entry {e.seq}: {e.get('decision')} {e.get('model_kind')} {e.get('model')[:12]} "
        f"by {e.get('person')} (verdict {e.get('verdict')}){tail}"
    )
    typer.echo(f"entry hash {e.hash}")
    if report:
        typer.echo(f"report: {report}")


def _decision_report(ws: Workspace, entry: LogEntry) -> str:
    """Write the signed decision's HTML report to ``reports/gate-<model>-<entry>.html`` and store it as a
    ``report`` artifact (parents: the model and its decisions); returns its path, or "" with a warning
    when it fails: the decision is recorded, a report problem must not hide that."""
    out = ws.root / "reports" / f"gate-{str(entry.get('model'))[:12]}-{entry.seq:04d}.html"
    try:
        path, _ = render.gate_report(ws, str(entry.get("model")), out, register=True)
    except Exception as err:  # the log entry stands whatever happens here
        warnings.warn(f"gate sign: decision recorded, report not written: {err}", stacklevel=2)
        return ""
    return str(path)


@gate_app.command("log")
def gate_log_cmd(
    verify: bool = typer.Option(
        False, "--verify", help="Check signatures, the hash chain and that the database matches the log."
    ),
    head: bool = typer.Option(
        False, "--head", help="Print the head hash (to anchor elsewhere); with --verify"
    ),
    repair: bool = typer.Option(
        False, "--repair", help="Complete a half-done append left by a crash (checked first)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the entries as JSON."),
    anchor: list[str] = typer.Argument(None, help="With --verify --head: the anchored head hash H."),
) -> None:
    """The decision log: every sign and promote, oldest first.

    --verify checks every signature, the chain and the database (exit 2 naming the first bad entry; exit 1
    for a crash's half-done append, which --repair completes). --head prints the head hash;
    `--verify --head H` also checks that the anchored head H is in the log.
    """
    from rlhfops.workspace import require_workspace

    if anchor and not (verify and head and len(anchor) == 1):
        raise UserError(
            f"gate log: unexpected argument {' '.join(anchor)!r}; use `gate log --verify --head H`"
        )
    expect = anchor[0] if anchor else None
    with require_workspace() as ws:
        if repair:
            typer.echo(dlog.repair(ws))
            return
        if verify or head:
            v = dlog.verify(ws, head=expect if verify else None)
        if head and not verify:
            if not v.ok:
                raise dlog.DecisionLogError(f"decision log {dlog.log_path(ws)}: {v.problem}")
            typer.echo(v.head)
            return
        if verify:
            for note in v.notes:
                typer.echo(f"note: {note}")
            if not v.ok:
                raise dlog.DecisionLogError(f"decision log {dlog.log_path(ws)}: {v.problem}")
            if v.pending:
                typer.echo(f"decision log: {v.entries} entries verified; {v.pending}", err=True)
                raise SystemExit(1)
            anchored = f"; anchored head {expect[:12]} found" if expect else ""
            typer.echo(
                f"decision log OK: {v.entries} entries, signatures, hash chain and database agree{anchored} "
                f"(head {v.head})"
            )
            return
        entries = dlog.entries(ws, verified=False)
    if as_json:
        typer.echo(json.dumps([{**e.data, "hash": e.hash} for e in entries], indent=2, sort_keys=True))
        return
    if not entries:
        typer.echo("decision log: empty")
        return
    for e in entries:
        ovr = " OVERRIDE" if e.get("override") else ""
        reason = f": {e.get('reason')}" if e.get("reason") else ""
        typer.echo(
            f"{e.seq:>4} {e.get('logged_at', '')} {_what(e.data)}{ovr} "
            f"{e.get('model_kind', '')} {str(e.get('model', ''))[:12]} by {e.get('person')}{reason}"
        )
    promos = [e for e in entries if e.get("action") == "promote"]
    if promos:
        d = promos[-1]
        typer.echo(
            f"deployed: {d.get('model_kind')} {d.get('model')} (entry {d.seq}; not verified: --verify)"
        )
    else:
        typer.echo("deployed: none")


def _what(entry: dict) -> str:
    """'sign approve', 'sign reject' or 'promote'."""
    action = str(entry.get("action", "?"))
    return f"{action} {entry.get('decision')}" if action == "sign" else action


def promote_cmd(
    model: str = MODEL_ARG,
    as_: str = AS_OPT,
    password_stdin: bool = PASSWORD_STDIN_OPT,
    token_stdin: bool = TOKEN_STDIN_OPT,
) -> None:
    """Make a model the deployed one: gate owner only, after a pass and a signature (the only way).

    Refuses without a pass (or an approval over the failures with a reason), without the gate owner's
    approval, when the spec or the evidence changed since the approval, and when Plays 1-4 are not met.
    Needs the gate owner's password (--password-stdin) or API token (--token-stdin / $RLHFOPS_TOKEN).
    """
    from rlhfops.workspace import require_workspace

    with require_workspace() as ws:
        signer = cli_signer(ws, as_, password_stdin, token_stdin, "promote")
        e = promote(ws, model, signer)
    ovr = " (approved over failed thresholds: override)" if e.get("override") else ""
    typer.echo(f"deployed: {e.get('model_kind')} {e.get('model')} by {e.get('person')}{ovr}")
    typer.echo(f"decision log entry {e.seq}, hash {e.hash}")


def report_cmd(
    model: str = MODEL_ARG,
    out: Path = typer.Option(
        None, "--out", help="HTML file to write (default: <workspace>/reports/gate-<id>.html)."
    ),
    no_register: bool = typer.Option(False, "--no-register", help="Do not store it as a report artifact."),
) -> None:
    """Write the HTML gate report of a model (thresholds, red team, win rates, curves, lineage).

    Sections: gate thresholds, success criteria before vs after, red team per category with failing
    examples, win rates with 95% CIs, KL and reward curves per training iteration, lineage, decisions.
    """
    from rlhfops.workspace import require_workspace

    with require_workspace() as ws:
        path, aid = render.gate_report(ws, model, out, register=not no_register)
    typer.echo(f"report written to {path}" + (f" (artifact {aid[:12]})" if aid else ""))


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.add_typer(gate_app, name="gate")
    app.command("promote")(promote_cmd)
    app.command("report")(report_cmd)
