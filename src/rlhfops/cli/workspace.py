"""Workspace commands: init, db, status, lineage, artifact, override (spec, people, baseline: cli/spec.py).

Thin: each command parses, calls one function of :mod:`rlhfops.workspace` and prints its result.
The acting person is ``--as NAME``, else $RLHFOPS_USER, else the OS user.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from rlhfops.cli.options import AS_OPT, PASSWORD_STDIN_OPT, TOKEN_STDIN_OPT, cli_signer
from rlhfops.config import parse_overrides
from rlhfops.errors import UserError
from rlhfops.gate import log as dlog

db_app = typer.Typer(help="The workspace database (SQLite, or PostgreSQL via RLHFOPS_DATABASE_URL).")
artifact_app = typer.Typer(help="The artifact store: content-addressed, immutable, with lineage.")


def init(
    directory: Path = typer.Argument(..., help="Directory of the new workspace (created if missing)."),
    template: str = typer.Option(
        "blank",
        "--template",
        "-t",
        help="Spec to start from: blank (to fill in) or support-replies (example).",
    ),
    name: str = typer.Option(None, "--name", help="Project name (default: the directory name)."),
) -> None:
    """Create a workspace: rlhfops.yaml, spec.yaml + edge_cases.md, artifacts/ and the database.

    The database is SQLite (WAL) in rlhfops.db, or PostgreSQL when RLHFOPS_DATABASE_URL is set.
    """
    from rlhfops.workspace import init_workspace

    with init_workspace(directory, template, name) as ws:
        typer.echo(f"workspace {ws.root} (database at revision {ws.db_revision()})")
        typer.echo(f"next: fill in {ws.spec_path.name}, then `rlhfops spec check` and `rlhfops people add`")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations (Alembic) to the workspace database."""
    from rlhfops.workspace import Workspace

    with Workspace.open(require_workspace_root(), check_revision=False) as ws:
        before = ws.db_revision()
        after = ws.upgrade_db()
    typer.echo(f"database: {before or '(empty)'} -> {after}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's schema revision and the one this rlhfops needs."""
    from rlhfops.workspace import Workspace
    from rlhfops.workspace.migrate import head_revision

    with Workspace.open(require_workspace_root(), check_revision=False) as ws:
        typer.echo(f"database revision {ws.db_revision() or '(empty)'}; this rlhfops needs {head_revision()}")


def require_workspace_root() -> Path:
    """The root of the workspace around the current directory (or $RLHFOPS_WORKSPACE), unopened."""
    from rlhfops.workspace.core import WorkspaceError, find_workspace_root

    root = find_workspace_root()
    if root is None:
        raise WorkspaceError(f"no workspace here ({Path.cwd()} or above); run `rlhfops init DIR`")
    return root


def status(
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts) instead of a table."),
) -> None:
    """The five plays: state, owner, evidence (ids, key numbers), what blocks the next step, triggers."""
    from rlhfops.workspace import require_workspace
    from rlhfops.workspace.plays import compute_status

    with require_workspace() as ws:
        st = compute_status(ws, decision_log_problem=dlog.verify(ws).problem)
    if as_json:
        typer.echo(json.dumps(st.to_json(), indent=2, sort_keys=True))
        return

    table = Table(title=f"rlhfops status — {st.workspace} (spec {st.spec_hash[:12]})", show_lines=True)
    for col in ("play", "state", "owner", "evidence", "blocks the next step"):
        table.add_column(col, overflow="fold")
    colours = {"complete": "green", "in progress": "yellow", "stale": "red", "not started": "dim"}
    for p in st.plays:
        blocks = p.blocks_next or "-"
        if p.override:
            blocks += f"\n[override] {p.override}"
        state = f"[{colours.get(p.state, 'white')}]{p.state}[/]"
        table.add_row(f"{p.play} {p.name}", state, p.owner_text, "\n".join(p.evidence) or "-", blocks)
    console = Console(width=max(Console().width, 140))
    console.print(table)
    if st.triggers:
        console.print("[bold]open triggers[/bold]")
        for t in st.triggers:
            tid = f"#{t['id']} " if t.get("id") is not None else ""  # computed rows have no id
            console.print(f"  -> {tid}Play {t['play']} ({t['rule']}): {t['evidence']}")
    else:
        console.print("open triggers: none")
    if any(t.get("id") is not None for t in st.triggers):
        console.print("close one with `rlhfops triggers close ID`")


def lineage(
    artifact_id: str = typer.Argument(..., help="Artifact id or a unique prefix (>= 4 characters)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON records instead of a tree."),
) -> None:
    """The chain from an artifact (e.g. a model) back to the spec version and the raw data."""
    from rlhfops.workspace import require_workspace

    with require_workspace() as ws:
        records = ws.lineage(artifact_id)
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in records], indent=2))
        return
    by_id = {r.id: r for r in records}

    def show(aid: str, depth: int, seen: set[str]) -> None:
        r = by_id[aid]
        pad = "  " * depth + ("<- " if depth else "")
        when = r.created_at.strftime("%Y-%m-%d %H:%M")
        again = " (see above)" if aid in seen else ""
        typer.echo(f"{pad}{r.kind} {r.id[:12]} {r.name} by {r.creator} {when}{again}")
        if aid in seen:
            return
        if isinstance(r.meta.get("environment"), dict):  # a trained model: its installed versions
            from rlhfops.workspace.environment import describe

            typer.echo(f"{'  ' * depth}   environment: {describe(r.meta['environment'])}")
        seen.add(aid)
        for p in r.parents:
            show(p, depth + 1, seen)

    show(records[0].id, 0, set())


def override(
    stage: str = typer.Argument(
        ..., help="The blocked stage: sft, rm, dpo or ppo (promote has no override)."
    ),
    reason: str = typer.Option(
        ..., "--reason", help="Why the stage may start anyway (kept with the override)."
    ),
    as_: str = AS_OPT,
    password_stdin: bool = PASSWORD_STDIN_OPT,
    token_stdin: bool = TOKEN_STDIN_OPT,
) -> None:
    """Let a blocked stage start on the current spec version; only an owner of the blocked play may.

    Needs the owner's password (--password-stdin) or API token (--token-stdin / $RLHFOPS_TOKEN); the
    override is signed with their key."""
    from rlhfops.workspace import require_workspace
    from rlhfops.workspace.plays import record_override

    with require_workspace() as ws:
        signer = cli_signer(ws, as_, password_stdin, token_stdin, f"override {stage}")
        o = record_override(ws, stage, reason, signer)
    typer.echo(f"override {o.id}: {o.stage} may start on spec {o.spec_hash[:12]} ({o.person}: {o.reason})")
    typer.echo(f"it was blocked by: {o.blocker}")


# the file argument and the --parent / --meta options of `artifact add` and `artifact import`
STORE_PATH_ARG = typer.Argument(..., help="File or directory to store (copied, read-only).")


def _parent_opt(help: str) -> Any:
    return typer.Option(None, "--parent", help=help)


def _meta_opt(help: str) -> Any:
    return typer.Option(None, "--meta", help=help)


@artifact_app.command("add")
def artifact_add(
    kind: str = typer.Argument(
        ..., help="Kind: dataset, demonstrations, preferences, prompts, base-model, ..."
    ),
    path: Path = STORE_PATH_ARG,
    parent: list[str] = _parent_opt("Id of an artifact it was made from (repeatable)."),
    meta: list[str] = _meta_opt(
        "key=value kept with it, e.g. --meta agreement=0.71 (repeatable; YAML values)."
    ),
    as_: str = AS_OPT,
) -> None:
    """Store a file or directory under its content hash, with its parents; prints its id.

    Not for the kinds the gate reads (models, evaluations, decisions): rlhfops writes those itself,
    signed; an outside one comes in with `rlhfops artifact import --external`.
    """
    from rlhfops.workspace import acting_person, require_workspace
    from rlhfops.workspace.provenance import GATE_KINDS, add_command_hint

    if kind in GATE_KINDS:  # hand-made evidence must not reach the gate as if rlhfops had made it
        raise UserError(add_command_hint(kind))
    with require_workspace() as ws:
        aid = ws.register_artifact(kind, path, parent or [], acting_person(as_), parse_overrides(meta))
    typer.echo(aid)


@artifact_app.command("import")
def artifact_import(
    kind: str = typer.Argument(
        ..., help="Kind: sft-model, dpo-model, ppo-model, reward-model, evaluation or redteam."
    ),
    path: Path = STORE_PATH_ARG,
    external: bool = typer.Option(
        False, "--external", help="Required: says the artifact was made outside rlhfops (unverified)."
    ),
    reason: str = typer.Option(
        ..., "--reason", help="Where it comes from and why it is imported (>= 10 characters; kept)."
    ),
    parent: list[str] = _parent_opt("Id of an artifact it was made from; for an evaluation, the model."),
    meta: list[str] = _meta_opt(
        "key=value kept with it (repeatable; YAML values); a result JSON's meta is read."
    ),
    as_: str = AS_OPT,
) -> None:
    """Bring in an outside model or evaluation, marked external and unverified; prints its id.

    The gate counts an external model or evaluation as a failure: only the gate owner's approval over
    it, with a written reason (`rlhfops gate sign --decision approve --reason ...`), lets it through.
    """
    from rlhfops.workspace import acting_person, require_workspace
    from rlhfops.workspace.provenance import import_external

    if not external:
        raise UserError(
            "artifact import: pass --external to confirm the artifact was made outside rlhfops "
            "(it is marked unverified and the gate counts it as a failure)"
        )
    overrides = parse_overrides(meta)
    with require_workspace() as ws:
        aid = import_external(ws, kind, path, parent or [], acting_person(as_), reason, overrides)
    typer.echo(aid)


@artifact_app.command("list")
def artifact_list(
    kind: str = typer.Option(None, "--kind", help="Only artifacts of this kind."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON records."),
) -> None:
    """List stored artifacts, oldest first: id, kind, name, creator, time."""
    from rlhfops.workspace import require_workspace

    with require_workspace() as ws:
        records = ws.artifacts(kind)
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in records], indent=2))
        return
    for r in records:
        typer.echo(f"{r.id[:12]}  {r.kind:<15} {r.name}  by {r.creator} {r.created_at:%Y-%m-%d %H:%M}")


def register(app: typer.Typer) -> None:
    """Add the workspace commands to the root app."""
    app.command("init")(init)
    app.command("status")(status)
    app.command("lineage")(lineage)
    app.command("override")(override)
    app.add_typer(db_app, name="db")
    app.add_typer(artifact_app, name="artifact")
