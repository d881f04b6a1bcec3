"""Options and the credential check shared by the command groups: who acts (``--as``) and how they
prove it (``--password-stdin``, ``--token-stdin`` or $RLHFOPS_TOKEN)."""

from __future__ import annotations

import os
import sys

import typer

from rlhfops.errors import UserError

AS_OPT = typer.Option(None, "--as", help="Act as this person (default: $RLHFOPS_USER, then the OS user).")
PASSWORD_STDIN_OPT = typer.Option(
    False, "--password-stdin", help="Prove who you are: read your account's password from stdin (first line)."
)
TOKEN_STDIN_OPT = typer.Option(
    False,
    "--token-stdin",
    help="Prove who you are: read a personal API token from stdin (first line); default: $RLHFOPS_TOKEN.",
)


def cli_signer(ws, as_: str | None, password_stdin: bool, token_stdin: bool, action: str):  # -> Signer
    """The authenticated signer for a signing command: --password-stdin, --token-stdin or $RLHFOPS_TOKEN.

    ``--as NAME`` (or $RLHFOPS_USER) names the person; with a token it may be left out (the token's
    account acts). A name alone is refused (exit 2, nothing written).
    """
    from rlhfops.gate.auth import TOKEN_ENV, authenticate
    from rlhfops.workspace import acting_person

    if password_stdin and token_stdin:
        raise UserError(f"{action}: give --password-stdin or --token-stdin, not both")
    named = as_ or os.environ.get("RLHFOPS_USER")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UserError(f"{action}: --password-stdin read an empty password; nothing written")
        return authenticate(ws, acting_person(as_), password=password, action=action)
    token = sys.stdin.readline().strip() if token_stdin else os.environ.get(TOKEN_ENV, "").strip()
    if token_stdin and not token:
        raise UserError(f"{action}: --token-stdin read an empty token; nothing written")
    return authenticate(ws, named.strip() if named else None, token=token or None, action=action)


def cli_granter(
    ws,
    as_: str | None,
    password_stdin: bool,
    token_stdin: bool,
    roles: set[str],
    admin: bool,
    action: str,
    passwords_follow: bool = False,
) -> str:
    """Who grants ``roles`` (and admin when ``admin``): the name recorded as ``added_by``.

    While the workspace has no account, the acting person (``--as`` / $RLHFOPS_USER / the OS user), as
    before. Once one exists, the granter's credential, checked with :func:`rlhfops.gate.auth.authenticate`,
    and :func:`rlhfops.gate.grants.check_grant` (admin, task-spec-owner, or annotation-lead for raters).
    With ``passwords_follow`` (`raters add`, whose --password-stdin also carries the account's passwords),
    a token ($RLHFOPS_TOKEN or --token-stdin) wins; else the granter's password is the first stdin line
    with --password-stdin, or asked for.
    """
    from rlhfops.gate.auth import TOKEN_ENV, authenticate
    from rlhfops.gate.grants import check_grant, grants_need_credential
    from rlhfops.workspace import acting_person

    if not grants_need_credential(ws):
        return acting_person(as_)
    if passwords_follow and not token_stdin and not os.environ.get(TOKEN_ENV, "").strip():
        who = acting_person(as_)
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt(f"password of {who} (who grants)", hide_input=True)
        signer = authenticate(ws, who, password=password or None, action=action)
    else:
        stdin_password = password_stdin and not passwords_follow
        signer = cli_signer(ws, as_, stdin_password, token_stdin, action)
    check_grant(ws, signer.name, roles, admin, action)
    return signer.name
