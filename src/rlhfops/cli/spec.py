"""Play 1 commands: `rlhfops spec check|sign|show`, `people add|list`, `baseline record|show`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rlhfops.cli.options import AS_OPT, PASSWORD_STDIN_OPT, TOKEN_STDIN_OPT, cli_granter, cli_signer
from rlhfops.errors import UserError
from rlhfops.spec.check import SpecError, check_spec_file

spec_app = typer.Typer(help="The task spec (Play 1): check it, sign it, show its signatures.")
people_app = typer.Typer(help="People and their roles in the workspace (one role per `people add`).")
baseline_app = typer.Typer(
    help="The business baseline, measured before any RLHF work (kept for before/after)."
)


@spec_app.command("check")
def spec_check(
    file: Path = typer.Argument(None, help="Spec file to check (default: the workspace's spec)."),
) -> None:
    """Validate the spec against its schema; prints every problem with file:line, exits 2 if any."""
    if file is None:
        from rlhfops.workspace import require_workspace

        with require_workspace() as ws:
            file = ws.spec_path
    result = check_spec_file(file)
    if len(result.problems) == 1 and result.spec is None:  # one problem: one line
        raise SpecError(str(result.problems[0]))
    if not result.ok:
        for problem in result.problems:
            typer.echo(str(problem), err=True)
        raise SpecError(
            f"{file}: {len(result.problems)} problem(s); fix them and run `rlhfops spec check` again"
        )
    spec = result.spec
    names = ", ".join(c.name for c in spec.criteria)  # type: ignore[union-attr]
    typer.echo(f"{file}: OK (sha256 {result.sha256[:12]}; criteria: {names})")


@spec_app.command("sign")
def spec_sign(
    role: str = typer.Option(..., "--role", help="Sign as business-owner or technical-lead."),
    as_: str = AS_OPT,
    password_stdin: bool = PASSWORD_STDIN_OPT,
    token_stdin: bool = TOKEN_STDIN_OPT,
) -> None:
    """Sign the spec's current content (its SHA-256) in a role you hold; an edit makes it stale.

    Needs your password (--password-stdin) or API token (--token-stdin / $RLHFOPS_TOKEN); the sign-off
    is signed with your Ed25519 key."""
    from rlhfops.workspace import require_workspace
    from rlhfops.workspace.identity import check_role

    norm = check_role(role)
    with require_workspace() as ws:
        signer = cli_signer(ws, as_, password_stdin, token_stdin, "spec sign")
        sig = ws.sign_spec(norm, signer)
        version = ws.current_spec()
    typer.echo(
        f"signed spec {sig.spec_hash[:12]} as {sig.role}: {sig.person} at {sig.signed_at:%Y-%m-%d %H:%M} UTC"
    )
    if version.missing_roles:
        typer.echo(f"still to sign: {', '.join(version.missing_roles)}")


@spec_app.command("show")
def spec_show(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The spec's current hash, whether it passes the check, its signatures and stale ones."""
    from rlhfops.workspace import require_workspace

    with require_workspace() as ws:
        v = ws.current_spec()
    data = {
        "file": str(v.path),
        "sha256": v.hash,
        "valid": v.check.ok,
        "problems": [str(p) for p in v.check.problems],
        "signatures": [
            {"role": s.role, "person": s.person, "signed_at": s.signed_at.isoformat()} for s in v.signatures
        ],
        "stale_signatures": [
            {
                "role": s.role,
                "person": s.person,
                "spec_hash": s.spec_hash,
                "signed_at": s.signed_at.isoformat(),
            }
            for s in v.stale_signatures
        ],
        "missing_signatures": v.missing_roles,
        "signed_and_current": v.is_signed_and_current,
    }
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"spec {v.path} sha256 {v.hash[:12]}: {'valid' if v.check.ok else 'INVALID'}")
    for s in v.signatures:
        typer.echo(f"  signed: {s.role} by {s.person} at {s.signed_at:%Y-%m-%d %H:%M} UTC")
    for s in v.stale_signatures:
        typer.echo(f"  STALE: {s.role} by {s.person} signed {s.spec_hash[:12]}; the spec changed since")
    for role in v.missing_roles:
        typer.echo(f"  missing: {role} (`rlhfops spec sign --role {role}`)")


@people_app.command("add")
def people_add(
    name: str = typer.Argument(..., help="The person's name (as they will use with --as or RLHFOPS_USER)."),
    role: str = typer.Option(
        ...,
        "--role",
        help="task-spec-owner, business-owner, technical-lead, domain-expert-lead, annotation-lead, rater, "
        "ml-engineer, red-team-lead or gate-owner.",
    ),
    as_: str = AS_OPT,
    password_stdin: bool = PASSWORD_STDIN_OPT,
    token_stdin: bool = TOKEN_STDIN_OPT,
) -> None:
    """Give a person a role (the owners of the plays are named in `rlhfops status`).

    Once the workspace has an account, the grant needs the granter's password (--as NAME
    --password-stdin) or API token (--token-stdin / $RLHFOPS_TOKEN), and the granter must be an admin
    or hold task-spec-owner (an annotation-lead may grant rater only); see docs/security.md."""
    from rlhfops.workspace import require_workspace
    from rlhfops.workspace.identity import check_role

    norm = check_role(role)
    with require_workspace() as ws:
        if not name.strip():
            raise UserError("people add: the name is empty")
        granter = cli_granter(ws, as_, password_stdin, token_stdin, {norm}, False, "people add")
        added = ws.add_person(name, norm, granter)
    typer.echo(f"{name}: {norm}" + ("" if added else " (already held; nothing changed)"))


@people_app.command("list")
def people_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Everyone in the workspace with their roles."""
    from rlhfops.workspace import require_workspace

    with require_workspace() as ws:
        rows = ws.people()
    if as_json:
        typer.echo(json.dumps([{"name": n, "role": r} for n, r in rows], indent=2))
        return
    for name, role in rows:
        typer.echo(f"{role:<20} {name}")


@baseline_app.command("record")
def baseline_record(
    task_completion_rate: float = typer.Option(
        None, "--task-completion-rate", help="Share of tasks completed (0-1)."
    ),
    review_minutes: float = typer.Option(
        None, "--review-minutes-per-output", "--review-minutes", help="Human review minutes per output."
    ),
    client_flag_rate: float = typer.Option(
        None, "--client-flag-rate", help="Share of outputs clients flagged (0-1)."
    ),
    csv_file: Path = typer.Option(
        None,
        "--csv",
        help="CSV: one row per output (task_completed, review_minutes, client_flag) or columns metric,value.",
    ),
    n: int = typer.Option(None, "--n", help="Number of outputs behind the values given on the command line."),
    note: str = typer.Option("", "--note", help="Where the numbers come from (period, system, sample)."),
    as_: str = AS_OPT,
) -> None:
    """Record the business baseline (values on the command line, or computed from a CSV)."""
    from rlhfops.workspace import acting_person, require_workspace
    from rlhfops.workspace.baseline import read_baseline_csv

    values = {
        k: v
        for k, v in (
            ("task_completion_rate", task_completion_rate),
            ("review_minutes_per_output", review_minutes),
            ("client_flag_rate", client_flag_rate),
        )
        if v is not None
    }
    person = acting_person(as_)
    with require_workspace() as ws:
        source = "command line"
        if csv_file is not None:
            from_csv = read_baseline_csv(csv_file)
            values = {**from_csv.values, **values}
            n = n if n is not None else from_csv.n
            aid = ws.register_artifact("baseline-data", csv_file, [], person, {"n": from_csv.n})
            source = f"{csv_file.name} (artifact {aid[:12]})"
        ws.record_baseline(values, source, person, n=n, note=note)
    typer.echo("baseline: " + ", ".join(f"{k}={v:.4g}" for k, v in values.items()) + f" ({source})")


@baseline_app.command("show")
def baseline_show(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The current business baseline (latest value of each metric) and where it came from."""
    from rlhfops.workspace import require_workspace

    with require_workspace() as ws:
        base = ws.baseline()
    if as_json:
        typer.echo(json.dumps(base, indent=2))
        return
    if not base:
        typer.echo("no baseline recorded: `rlhfops baseline record ...`")
    for metric, row in base.items():
        n = f", n={row['n']}" if row["n"] is not None else ""
        typer.echo(
            f"{metric} = {row['value']:.4g} ({row['source']}{n}; {row['recorded_by']} {row['recorded_at']})"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(spec_app, name="spec")
    app.add_typer(people_app, name="people")
    app.add_typer(baseline_app, name="baseline")
