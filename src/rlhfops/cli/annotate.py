"""Annotation commands (issue 5): serve, pairs, prefs, raters, calibration, demos.

Thin: each command parses, calls one function of :mod:`rlhfops.annotate` / :mod:`rlhfops.web` and prints.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

from rlhfops.annotate.settings import AnnotationSettings, annotation_settings
from rlhfops.cli.options import AS_OPT, TOKEN_STDIN_OPT, cli_granter
from rlhfops.data.schema import load_prompts
from rlhfops.errors import UserError

pairs_app = typer.Typer(help="Candidate pairs for the comparison queue (Play 3).")
prefs_app = typer.Typer(help="The preference dataset made from the labels.")
raters_app = typer.Typer(help="Web accounts: passwords and API tokens for workspace people.")
calibration_app = typer.Typer(help="Calibration rounds: the same pairs for every rater, then agreement.")
demos_app = typer.Typer(help="Demonstrations (Play 2): prompts for experts, accepted replies to SFT data.")


def _ws():
    from rlhfops.workspace import require_workspace

    return require_workspace()


def _person(as_: str | None) -> str:
    from rlhfops.workspace import acting_person

    return acting_person(as_)


def _check_range(command: str, option: str, value: int, setting: str) -> int:
    """``value`` if it lies in the bounds of the annotation setting ``setting``, else a one-line UserError."""
    info = AnnotationSettings.model_fields[setting]
    lo = next((m.ge for m in info.metadata if getattr(m, "ge", None) is not None), None)
    hi = next((m.le for m in info.metadata if getattr(m, "le", None) is not None), None)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise UserError(f"{command}: {option} {value}: must be {bounds} (the range of annotation.{setting})")
    return value


def _overlap(command: str, k: int | None, ws) -> int:
    """Raters per pair: ``--k`` when given (checked against annotation.overlap's range), else the setting."""
    return annotation_settings(ws).overlap if k is None else _check_range(command, "--k", k, "overlap")


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    db_url: str = typer.Option(
        None, "--db-url", help="Database URL (default: the workspace's; RLHFOPS_DATABASE_URL also works)."
    ),
    workers: int = typer.Option(1, "--workers", help="uvicorn worker processes."),
    threads: int | None = typer.Option(
        None,
        "--threads",
        help="Database threads per worker (default: 8 on SQLite, 16 on PostgreSQL).",
    ),
) -> None:
    """Start the annotation web app (pages + JSON API; OpenAPI at /docs for admins) for this workspace.

    uvicorn with its compiled HTTP parser (httptools) and event loop (uvloop), both dependencies of
    rlhfops; uvicorn falls back to h11 / asyncio where they are missing."""
    import uvicorn

    ws = _ws()
    root = ws.root
    ws.close()
    if db_url:
        os.environ["RLHFOPS_DATABASE_URL"] = db_url
    os.environ["RLHFOPS_WORKSPACE"] = str(root)
    if threads is not None:
        os.environ["RLHFOPS_WEB_THREADS"] = str(threads)
    typer.echo(f"serving {root} on http://{host}:{port}")
    # proxy_headers=False: the app reads X-Forwarded-For itself, only from web.trusted_proxies
    uvicorn.run(
        "rlhfops.web.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=False,
    )


@pairs_app.command("import")
def pairs_import(
    file: Path = typer.Argument(
        ..., help="JSONL/JSON/Parquet: prompt + response_a + response_b (or chosen + rejected)."
    ),
    batch: str = typer.Option(None, "--batch", help="Batch name (default: the file name)."),
    k: int = typer.Option(None, "--k", help="Raters per pair (default: annotation.overlap)."),
) -> None:
    """Queue existing pairs for comparison (rows with "gold" become gold items)."""
    from rlhfops.annotate.pairs import read_pairs
    from rlhfops.annotate.queue import queue_pairs

    if k is not None:
        _check_range("pairs import", "--k", k, "overlap")  # before reading anything
    pairs = read_pairs(file)
    with _ws() as ws:
        added, skipped = queue_pairs(ws, pairs, batch or file.name, _overlap("pairs import", k, ws))
    typer.echo(f"queued {added} pair(s) ({skipped} already queued)")


@pairs_app.command("generate")
def pairs_generate(
    model: str = typer.Option(..., "--model", help="Model id or directory (e.g. an SFT model)."),
    prompts: Path = typer.Option(..., "--prompts", help="Prompts file (JSONL with a prompt field)."),
    n: int = typer.Option(2, "-n", help="Samples per prompt; every two distinct samples make a pair."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", help="Longest response in tokens."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature (> 0)."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling threshold."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the sampler."),
    batch: str = typer.Option(None, "--batch", help="Batch name (default: the prompts file name)."),
    k: int = typer.Option(None, "--k", help="Raters per pair (default: annotation.overlap)."),
) -> None:
    """Sample responses from a model and queue them as comparison pairs."""
    from rlhfops.annotate.pairs import generate_pairs
    from rlhfops.annotate.queue import queue_pairs

    with _ws() as ws:
        k = _overlap("pairs generate", k, ws)  # checked before the (slow) sampling
        pairs = generate_pairs(
            model, prompts, n, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed
        )
        added, skipped = queue_pairs(ws, pairs, batch or prompts.name, k)
    typer.echo(f"sampled {len(pairs)} pair(s); queued {added} ({skipped} already queued)")


@prefs_app.command("export")
def prefs_export(
    out: Path = typer.Argument(..., help="Output JSONL (prompt, chosen, rejected, agreement, n_labels)."),
    min_labels: int = typer.Option(
        None, "--min-labels", help="Labels a pair needs (default: its overlap k)."
    ),
    fmt: str = typer.Option(
        "rlhfops",
        "--format",
        help="Row format: rlhfops (for rm/dpo here), openai-preference (OpenAI preference fine-tuning),"
        " trl-conversational (TRL prompt/chosen/rejected message lists).",
    ),
    batch: list[str] = typer.Option(
        None,
        "--batch",
        help="Export only the pairs queued in this batch (repeatable), e.g. a later round's to continue"
        " training a candidate on what is new; alpha is then over those pairs.",
    ),
    reason: str = typer.Option(
        None,
        "--reason",
        help="Why to export although agreement is under the spec's gate.min_agreement (10+ characters;"
        " recorded in the artifact).",
    ),
    as_: str = AS_OPT,
) -> None:
    """Aggregate the labels (plurality; ties and both-bad dropped) and register a preferences artifact.

    Below the spec's gate.min_agreement (Krippendorff's alpha) nothing is written without --reason."""
    from rlhfops.annotate.export import export_preferences, spec_min_agreement

    with _ws() as ws:
        person = _person(as_)
        ws.require_role(person, "annotation-lead", "prefs export")
        res = export_preferences(
            ws,
            out,
            person,
            min_labels,
            fmt=fmt,
            min_agreement=spec_min_agreement(ws),
            reason=reason,
            batches=batch or None,
        )
    alpha = "undefined" if res.alpha is None else f"{res.alpha:.3f}"
    typer.echo(f"wrote {res.rows} pair(s) to {res.path}; Krippendorff's alpha {alpha}; dropped {res.dropped}")
    if res.refused:
        typer.echo(res.refused)
    typer.echo(f"artifact {res.artifact_id}")


@raters_app.command("add")
def raters_add(
    name: str = typer.Argument(..., help="The person's name (as in `rlhfops people`)."),
    role: str = typer.Option(
        "rater", "--role", help="Role to give them if they lack it (rater, annotation-lead, ...)."
    ),
    admin: bool = typer.Option(False, "--admin", help="Let this account manage accounts."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from stdin (else asked for twice)."
    ),
    as_: str = AS_OPT,
    token_stdin: bool = TOKEN_STDIN_OPT,
) -> None:
    """Give a person a web account (scrypt-hashed password) and the role if they lack it.

    Once the workspace has an account, creating an account, granting a role or --admin needs the
    granter's credential: $RLHFOPS_TOKEN or --token-stdin, else the password of --as NAME (with
    --password-stdin: the first line). An admin or task-spec-owner may grant every role (only an admin
    makes admins); an annotation-lead adds raters only. Changing an existing account's password needs
    its current password (with --password-stdin: the next line, then the new one): the password is what
    signs the spec and the gate (docs/security.md)."""
    from rlhfops.annotate.accounts import MIN_PASSWORD, account, set_account
    from rlhfops.workspace.identity import check_role

    if not name.strip():
        raise UserError("raters add: the name is empty")
    norm = check_role(role)
    with _ws() as ws:
        acc = account(ws, name.strip())
        held = {r for n, r in ws.people() if n == name.strip()}
        # a new account grants every role its person holds: its password signs in all of them
        roles = held | {norm} if acc is None else {norm} - held
        make_admin = admin and (acc is None or not acc.is_admin)
        granter = _person(as_)
        if roles or make_admin:
            granter = cli_granter(
                ws, as_, password_stdin, token_stdin, roles, make_admin, "raters add", passwords_follow=True
            )
        _require_current_password(ws, name.strip(), password_stdin, "raters add")
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
        if len(password) < MIN_PASSWORD:  # checked before anything is written (no person without an account)
            raise UserError(
                f"raters add {name.strip()}: the password needs at least {MIN_PASSWORD} characters"
            )
        ws.add_person(name, norm, granter)
        created = set_account(ws, name, password, admin)
    typer.echo(f"account {name} {'created' if created else 'updated'}")


@raters_app.command("token")
def raters_token(
    name: str = typer.Argument(..., help="Account name."),
    label: str = typer.Option("script", "--label", help="What the token is for."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the account's password from stdin (else asked for)."
    ),
) -> None:
    """Create an API token for scripts (printed once; send as `Authorization: Bearer <token>`).

    Needs the account's password: a token signs the spec and the gate as its owner (docs/security.md)."""
    from rlhfops.annotate.accounts import create_token

    with _ws() as ws:
        _require_current_password(ws, name.strip(), password_stdin, "raters token")
        typer.echo(create_token(ws, name, label))


def _require_current_password(ws, name: str, from_stdin: bool, action: str) -> None:
    """Refuse (exit 2, nothing written) unless the existing account ``name``'s password is given."""
    from rlhfops.annotate.accounts import account, authenticate

    if account(ws, name) is None:
        if action == "raters token":
            raise UserError(
                f"{action}: no account {name!r}; create it first with `rlhfops raters add {name}`"
            )
        return
    if from_stdin:
        current = sys.stdin.readline().rstrip("\r\n")
    else:
        current = typer.prompt(f"current password of {name}", hide_input=True)
    if authenticate(ws, name, current) is None:
        raise UserError(f"{action} {name}: wrong current password for the account; nothing written")


@raters_app.command("revoke")
def raters_revoke(name: str = typer.Argument(..., help="Account name.")) -> None:
    """Delete all API tokens of an account and end its web sessions (signed out everywhere at once)."""
    from rlhfops.annotate.accounts import revoke_tokens
    from rlhfops.web.sessions import revoke_sessions

    with _ws() as ws:
        tokens = revoke_tokens(ws, name)
        sessions = revoke_sessions(ws, name) or 0
        typer.echo(f"revoked {tokens} token(s) and {sessions} web session(s) of {name}")


@raters_app.command("list")
def raters_list() -> None:
    """Accounts and their roles."""
    from rlhfops.annotate.accounts import accounts

    with _ws() as ws:
        roles: dict[str, list[str]] = {}
        for n, r in ws.people():
            roles.setdefault(n, []).append(r)
        for a in accounts(ws):
            typer.echo(
                f"{a.name}\t{', '.join(roles.get(a.name, [])) or '-'}{' (admin)' if a.is_admin else ''}"
            )


@calibration_app.command("start")
def calibration_start(
    n: int = typer.Option(None, "--n", help="Pairs in the round (default: annotation.calibration_size, 50)."),
    as_: str = AS_OPT,
) -> None:
    """Start a calibration round: every rater labels the same N pairs before production continues."""
    from rlhfops.annotate.calibration import start_round

    if n is not None:
        _check_range("calibration start", "--n", n, "calibration_size")
    with _ws() as ws:
        person = _person(as_)
        ws.require_role(person, "annotation-lead", "calibration start")
        st = annotation_settings(ws)
        rid = start_round(ws, person, st.calibration_size if n is None else n, st.calibration_threshold)
    typer.echo(f"calibration round {rid} started")


@calibration_app.command("result")
def calibration_result(
    round_: int = typer.Option(None, "--round", help="Round number (default: the latest)."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
) -> None:
    """A round's pairwise and overall agreement and the items raters split on."""
    from rlhfops.annotate.calibration import round_result

    with _ws() as ws:
        res = round_result(ws, round_).to_json()
    if as_json:
        typer.echo(json.dumps(res, indent=2))
        return
    typer.echo(f"round {res['round']}: {res['message']}")
    for pair, value in sorted(res["pairwise"].items()):
        typer.echo(f"  {pair.replace('|', ' & ')}: {value:.0%}")
    for item in res["split_items"][:20]:
        counts = ", ".join(f"{c} {k}" for c, k in sorted(item["counts"].items()))
        typer.echo(f"  split item {item['item_id']} ({counts}): {item['prompt'][:70]!r}")


@demos_app.command("import")
def demos_import(
    file: Path = typer.Argument(..., help="Prompts file (JSONL with a prompt field)."),
    batch: str = typer.Option(None, "--batch", help="Batch name (default: the file name)."),
) -> None:
    """Queue prompts for domain experts to write demonstrations."""
    from rlhfops.annotate.demos import queue_prompts
    from rlhfops.annotate.pairs import prompt_text

    texts = [prompt_text(p.prompt) for p in load_prompts(file)]
    with _ws() as ws:
        added, skipped = queue_prompts(ws, texts, batch or file.name)
    typer.echo(f"queued {added} prompt(s) ({skipped} already queued)")


@demos_app.command("export")
def demos_export(
    out: Path = typer.Argument(..., help="Output JSONL (prompt, completion)."),
    fmt: str = typer.Option(
        "rlhfops",
        "--format",
        help="Row format: rlhfops (prompt, completion), openai-chat (OpenAI chat fine-tuning messages),"
        " alpaca (instruction, input, output; single-turn only).",
    ),
    as_: str = AS_OPT,
) -> None:
    """Write accepted demonstrations as SFT data and register a demonstrations artifact."""
    from rlhfops.annotate.demos import export_demos

    with _ws() as ws:
        person = _person(as_)
        ws.require_role(person, "domain-expert-lead", "demos export")
        rows, art, refused = export_demos(ws, out, person, fmt=fmt)
    typer.echo(f"wrote {rows} demonstration(s) to {out}; artifact {art}")
    if refused:
        typer.echo(refused)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.command("serve")(serve)
    app.add_typer(pairs_app, name="pairs")
    app.add_typer(prefs_app, name="prefs")
    app.add_typer(raters_app, name="raters")
    app.add_typer(calibration_app, name="calibration")
    app.add_typer(demos_app, name="demos")
