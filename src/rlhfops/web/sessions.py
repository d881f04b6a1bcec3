"""Server-side web sessions and the sign-in throttle, both in the workspace database (every server
process and worker sees the same state).

* A session is a random token in the ``rlhfops_session`` cookie; the database keeps only its SHA-256
  (``web_sessions``), the account, when it expires, and a stamp of the account's password hash. Every
  request looks its session up: signing out deletes the row, an admin's revoke deletes all of an
  account's rows, and a password change (``raters add NAME --password-stdin`` or the accounts page)
  changes the stamp, so the old cookies stop working on the next request.
* The CSRF token of a signed-in browser is an HMAC of its session token (:func:`csrf_for_session`):
  a token seen by another browser, or issued before sign-in, is refused.
* Failed sign-ins (``login_failures``) are keyed on the normalised name (:func:`login_key`, the rule
  sign-in applies) and the client address (:func:`client_address`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from rlhfops.annotate.tx import core_transaction, read_transaction
from rlhfops.workspace import annotation_tables as m

SESSION_MAX_AGE = 12 * 3600

_S, _ACC, _F = m.WebSession.__table__, m.Account.__table__, m.LoginFailure.__table__
_LOOKUP = (
    sa.select(_S.c.id, _ACC.c.id, _ACC.c.name, _ACC.c.is_admin, _ACC.c.password_hash, _S.c.password_stamp)
    .join(_ACC, _ACC.c.id == _S.c.account_id)
    .where(_S.c.token_hash == sa.bindparam("hash"), _S.c.expires > sa.bindparam("now"))
)


@dataclass(frozen=True)
class SessionAccount:
    """The account behind a live session."""

    account_id: int
    name: str
    is_admin: bool


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def password_stamp(password_hash: str) -> str:
    """A digest of the stored password hash (salted: it changes with every password set)."""
    return _digest("stamp:" + password_hash)


def create_session(ws: Any, name: str, now: float | None = None) -> str:
    """A new session for account ``name``; returns the cookie value (shown once, only its hash kept).
    Expired sessions of every account are deleted on the way."""
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(32)
    with core_transaction(ws) as c:
        row = c.execute(sa.select(_ACC.c.id, _ACC.c.password_hash).where(_ACC.c.name == name)).first()
        if row is None:
            raise LookupError(f"no account {name!r}")
        c.execute(sa.delete(_S).where(_S.c.expires <= now))
        c.execute(
            sa.insert(_S).values(
                token_hash=_digest(token),
                account_id=row[0],
                password_stamp=password_stamp(row[1]),
                created=now,
                expires=now + SESSION_MAX_AGE,
            )
        )
    return token


def session_account(ws: Any, token: str | None, now: float | None = None) -> SessionAccount | None:
    """The account of a live session, or None (unknown, expired, signed out, revoked, or the password
    changed since). A read: on SQLite it takes no write lock."""
    if not token or len(token) > 200:
        return None
    now = time.time() if now is None else now
    with read_transaction(ws) as c:
        row = c.execute(_LOOKUP, {"hash": _digest(token), "now": now}).first()
    if row is None or not hmac.compare_digest(password_stamp(row[4]), row[5]):
        return None
    return SessionAccount(row[1], row[2], bool(row[3]))


def end_session(ws: Any, token: str | None) -> None:
    """Sign one browser out (its row is deleted; the cookie is worthless from now on)."""
    if token:
        with core_transaction(ws) as c:
            c.execute(sa.delete(_S).where(_S.c.token_hash == _digest(token)))


def revoke_sessions(ws: Any, name: str) -> int | None:
    """End every session of account ``name``; how many, or None when there is no such account."""
    with core_transaction(ws) as c:
        acc_id = c.execute(sa.select(_ACC.c.id).where(_ACC.c.name == name)).scalar()
        if acc_id is None:
            return None
        return int(c.execute(sa.delete(_S).where(_S.c.account_id == acc_id)).rowcount or 0)


def csrf_for_session(key: bytes, token: str) -> str:
    """The CSRF token of the session ``token`` (an HMAC: nobody without the session can compute it)."""
    return hmac.new(key, b"csrf:" + token.encode(), hashlib.sha256).hexdigest()


# ---- sign-in throttle ------------------------------------------------------------------------------
def login_key(name: str) -> str:
    """The name sign-in looks up (:func:`rlhfops.annotate.accounts.authenticate` strips it; names are
    compared case-sensitively), cut to the column's size."""
    return name.strip()[:200]


def parse_proxies(values: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The trusted proxies (addresses or CIDR networks); ValueError names a bad one."""
    out = []
    for v in values:
        try:
            out.append(ipaddress.ip_network(v.strip(), strict=False))
        except ValueError:
            raise ValueError(f"web.trusted_proxies: {v!r} is not an IP address or network") from None
    return out


def _trusted(host: str, proxies: list[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_address(peer: str, forwarded_for: str | None, proxies: list[Any]) -> str:
    """The client's address: the TCP peer, unless the peer is a trusted proxy; then the right-most
    ``X-Forwarded-For`` entry that is not itself a trusted proxy (entries left of it are the client's
    own claims). With no trusted proxies (the default) the header is ignored."""
    if not proxies or not forwarded_for or not _trusted(peer, proxies):
        return peer[:100]
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop[:100]
    return (hops[0] if hops else peer)[:100]


class LoginThrottle:
    """Failed sign-ins per (normalised account name, client address), in the database: after
    :attr:`limit` failures within :attr:`window` seconds that pair is refused (429) until fewer than
    :attr:`limit` of its failures are younger than :attr:`window`. Per pair, not per account, so a
    stranger cannot lock a rater out from elsewhere; a success clears the pair's failures. The check and
    the recording are separate steps, so a burst of simultaneous attempts can get a few past the limit
    (each still costs a ~50 ms scrypt)."""

    def __init__(self, ws: Any, limit: int = 5, window: float = 15 * 60, clock=time.time) -> None:
        self.ws, self.limit, self.window, self.clock = ws, limit, window, clock

    def retry_after(self, name: str, client: str) -> float | None:
        """Seconds until this pair may try again, or None when it may try now."""
        now = self.clock()
        with read_transaction(self.ws) as c:
            times = (
                c.execute(
                    sa.select(_F.c.at)
                    .where(
                        _F.c.name_key == login_key(name), _F.c.client == client, _F.c.at > now - self.window
                    )
                    .order_by(_F.c.at.desc())
                    .limit(self.limit)
                )
                .scalars()
                .all()
            )
        if len(times) < self.limit:
            return None
        return max(1.0, self.window - (now - times[-1]))

    def failed(self, name: str, client: str) -> None:
        now = self.clock()
        with core_transaction(self.ws) as c:
            c.execute(sa.delete(_F).where(_F.c.at <= now - self.window))
            c.execute(sa.insert(_F).values(name_key=login_key(name), client=client, at=now))

    def succeeded(self, name: str, client: str) -> None:
        with core_transaction(self.ws) as c:
            c.execute(sa.delete(_F).where(_F.c.name_key == login_key(name), _F.c.client == client))
