"""Accounts for the web app: scrypt password hashes, API tokens stored as SHA-256 hashes.

An account's name is a workspace person's name; what the account may do comes from that person's roles
(``people`` table) plus ``is_admin``. Passwords: ``hashlib.scrypt`` (RFC 7914) with a random 16-byte
salt, n=2**14, r=8, p=1, stored as ``scrypt$n$r$p$salt_hex$hash_hex``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from rlhfops.annotate.tx import read_transaction, transaction
from rlhfops.errors import UserError
from rlhfops.workspace import annotation_tables as m
from rlhfops.workspace import db

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD = 8
TOKEN_PREFIX = "rlh_"


@dataclass(frozen=True)
class AccountInfo:
    id: int
    name: str
    is_admin: bool


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_hex, hash_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest.hex(), hash_hex)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def set_account(ws: Any, name: str, password: str, is_admin: bool = False) -> bool:
    """Create the account ``name`` or set its password; True when it was created."""
    name = name.strip()
    if not name:
        raise UserError("account: the name is empty")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"account {name}: the password needs at least {MIN_PASSWORD} characters")
    hashed = hash_password(password)  # before the transaction: scrypt takes ~50 ms
    try:
        with transaction(ws) as s:
            row = s.scalar(sa.select(m.Account).where(m.Account.name == name))
            if row is not None:
                row.password_hash = hashed
                row.is_admin = row.is_admin or is_admin
                return False
            s.add(m.Account(name=name, password_hash=hashed, is_admin=is_admin, created_at=db.utcnow()))
    except IntegrityError:  # created at the same moment elsewhere: set the password on it
        return set_account(ws, name, password, is_admin)
    return True


def authenticate(ws: Any, name: str, password: str) -> AccountInfo | None:
    """The account when ``password`` matches, else None (same time spent for unknown names)."""
    with transaction(ws) as s:
        row = s.execute(
            sa.select(m.Account.id, m.Account.name, m.Account.is_admin, m.Account.password_hash).where(
                m.Account.name == name.strip()
            )
        ).first()
    stored = row[3] if row is not None else hash_password("x" * MIN_PASSWORD, b"0" * 16)
    ok = verify_password(password, stored)  # outside the transaction: scrypt takes ~50 ms
    if row is None or not ok:
        return None
    return AccountInfo(row[0], row[1], bool(row[2]))


_ACC, _TOK = m.Account.__table__, m.ApiToken.__table__
_ACCOUNT_COLS = sa.select(_ACC.c.id, _ACC.c.name, _ACC.c.is_admin)
_ACCOUNT_BY_NAME = _ACCOUNT_COLS.where(_ACC.c.name == sa.bindparam("name"))
_ACCOUNT_BY_TOKEN = _ACCOUNT_COLS.join(_TOK, _TOK.c.account_id == _ACC.c.id).where(
    _TOK.c.token_hash == sa.bindparam("hash")
)


def account(ws: Any, name: str) -> AccountInfo | None:
    """The account ``name`` (a read: on SQLite it takes no write lock)."""
    with read_transaction(ws) as c:
        row = c.execute(_ACCOUNT_BY_NAME, {"name": name}).first()
    return AccountInfo(row[0], row[1], bool(row[2])) if row is not None else None


def accounts(ws: Any) -> list[AccountInfo]:
    with transaction(ws) as s:
        rows = s.scalars(sa.select(m.Account).order_by(m.Account.name)).all()
        return [AccountInfo(r.id, r.name, bool(r.is_admin)) for r in rows]


def create_token(ws: Any, name: str, label: str = "script") -> str:
    """A new API token for account ``name`` (shown once; only its hash is stored)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction(ws) as s:
        acc = s.scalar(sa.select(m.Account).where(m.Account.name == name))
        if acc is None:
            raise UserError(f"token: no account {name!r}; create it first with `rlhfops raters add {name}`")
        s.add(
            m.ApiToken(account_id=acc.id, token_hash=token_hash(token), label=label, created_at=db.utcnow())
        )
    return token


def account_for_token(ws: Any, token: str) -> AccountInfo | None:
    """The account a token belongs to (a read: on SQLite it takes no write lock)."""
    with read_transaction(ws) as c:
        row = c.execute(_ACCOUNT_BY_TOKEN, {"hash": token_hash(token)}).first()
    return AccountInfo(row[0], row[1], bool(row[2])) if row is not None else None


def revoke_tokens(ws: Any, name: str) -> int:
    """Delete every API token of account ``name``; returns how many (a running server honours it within
    a few seconds: it caches token lookups briefly)."""
    with transaction(ws) as s:
        acc_id = s.scalar(sa.select(m.Account.id).where(m.Account.name == name))
        if acc_id is None:
            raise UserError(f"token revoke: no account {name!r}")
        return int(s.execute(sa.delete(m.ApiToken).where(m.ApiToken.account_id == acc_id)).rowcount or 0)
