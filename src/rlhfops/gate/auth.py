"""Who signs: a person proves who they are with their password or a personal API token.

The accounts, scrypt password hashes and API tokens are the annotation service's
(:mod:`rlhfops.annotate.accounts`). A checked credential unlocks the person's Ed25519 key for that
credential (:func:`rlhfops.workspace.signing.unlock`); the result is a :class:`Signer`, which every
signing action takes instead of a bare name. ``--as NAME`` alone proves nothing and is refused.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import sqlalchemy as sa

from rlhfops.annotate import accounts
from rlhfops.annotate.accounts import set_account
from rlhfops.errors import UserError
from rlhfops.workspace import annotation_tables as m
from rlhfops.workspace.signing import Signer, unlock

if TYPE_CHECKING:
    from rlhfops.workspace.core import Workspace

TOKEN_ENV = "RLHFOPS_TOKEN"


class AuthError(UserError):
    """The credential does not prove the person's identity."""


def authenticate(
    ws: Workspace,
    person: str | None,
    password: str | None = None,
    token: str | None = None,
    action: str = "sign",
) -> Signer:
    """The :class:`Signer` for ``person``, after checking their password or API token.

    With a token, ``person`` may be None (the token's account acts); when given it must be the
    token's account. Exactly one credential is used; the password wins when both are given.
    """
    password = password.rstrip("\r\n") if password is not None else None
    token = token.strip() if token is not None else None
    if password:
        if not person:
            raise AuthError(f"{action}: a password needs the person's name (--as NAME)")
        acc = accounts.authenticate(ws, person, password)
        if acc is None or acc.name != person.strip():
            raise AuthError(
                f"{action}: wrong password for {person!r} (or no account of that name); nothing written"
            )
        with ws.session() as s:
            stored = s.scalar(sa.select(m.Account.password_hash).where(m.Account.id == acc.id))
        digest = hashlib.sha256(str(stored).encode()).hexdigest()[:40]
        return unlock(ws, acc.name, f"password:{digest}", password)
    if token:
        acc = accounts.account_for_token(ws, token)
        if acc is None:
            raise AuthError(f"{action}: the API token is not valid (unknown or revoked); nothing written")
        if person and person.strip() != acc.name:
            raise AuthError(
                f"{action}: the API token belongs to {acc.name!r}, not {person.strip()!r}; nothing written"
            )
        return unlock(ws, acc.name, f"token:{accounts.token_hash(token)}", token)
    who = f" for {person!r}" if person else ""
    raise AuthError(
        f"{action}: needs a credential{who}: --password-stdin, --token-stdin or ${TOKEN_ENV} "
        "(`--as NAME` alone is not enough); nothing written"
    )


def enrol(ws: Workspace, name: str, password: str) -> Signer:
    """Give ``name`` an account with ``password`` (as `rlhfops raters add NAME --password-stdin` does) and
    return their authenticated signer. For scripts and the demo that set up people from scratch."""
    set_account(ws, name, password)
    return authenticate(ws, name, password=password, action="enrol")
