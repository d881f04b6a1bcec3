"""Authentication for the web app: signed session cookies, API tokens, CSRF, roles.

* Session: ``rlhfops_session`` = ``name.issued.signature`` (HMAC-SHA256 with the workspace's secret,
  :func:`load_secret`), HttpOnly, SameSite=Lax, valid :data:`SESSION_MAX_AGE` seconds.
* Sign-in: 5 failed attempts for one account name from one client address within 15 minutes refuse
  further attempts from there (429 with Retry-After) until the oldest is 15 minutes old
  (:class:`LoginThrottle`).
* Scripts: ``Authorization: Bearer <token>`` (tokens from ``rlhfops raters token``; only hashes stored).
* CSRF: double submit. Every page sets a signed random ``rlhfops_csrf`` cookie; every form carries the
  same value in a hidden ``csrf`` field, and API writes authenticated by the session cookie carry it in
  ``X-CSRF-Token``. A write without it is refused (403). Bearer-token requests need no CSRF token.
* Roles come from the workspace people table (``rater``, ``annotation-lead``, ``domain-expert-lead``,
  and ``domain-expert`` where the workspace defines it); ``admin`` is an account flag.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request

SESSION_COOKIE = "rlhfops_session"
CSRF_COOKIE = "rlhfops_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_MAX_AGE = 12 * 3600
SECRET_FILE = ".rlhfops-web-secret"
CACHE_SECONDS = 5.0

LEAD_ROLES = ("annotation-lead",)
EXPERT_ROLES = ("domain-expert-lead", "domain-expert")


def load_secret(root: Path) -> bytes:
    """The workspace's signing secret (``<root>/.rlhfops-web-secret``, 0600), created on first use."""
    path = Path(root) / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        value = secrets.token_hex(32).encode()
        fh.write(value)
    return value


class Signer:
    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"rlhfops-web:" + secret).digest()

    def _mac(self, payload: str) -> str:
        return base64.urlsafe_b64encode(
            hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        ).decode()

    def sign(self, value: str) -> str:
        payload = f"{base64.urlsafe_b64encode(value.encode()).decode()}.{int(time.time())}"
        return f"{payload}.{self._mac(payload)}"

    def unsign(self, token: str | None, max_age: float | None = None) -> str | None:
        if not token or token.count(".") != 2:
            return None
        enc, issued, mac = token.split(".")
        if not hmac.compare_digest(self._mac(f"{enc}.{issued}"), mac):
            return None
        try:
            if max_age is not None and time.time() - int(issued) > max_age:
                return None
            return base64.urlsafe_b64decode(enc.encode()).decode()
        except ValueError:
            return None


@dataclass(frozen=True)
class User:
    name: str
    roles: frozenset[str]
    is_admin: bool
    via: str  # "session" or "token"

    @property
    def is_rater(self) -> bool:
        return "rater" in self.roles

    @property
    def is_lead(self) -> bool:
        return any(r in self.roles for r in LEAD_ROLES)

    @property
    def is_expert(self) -> bool:
        return any(r in self.roles for r in EXPERT_ROLES)

    @property
    def is_demo_lead(self) -> bool:
        return "domain-expert-lead" in self.roles


class _Cache:
    """name -> value for a few seconds (roles and accounts change rarely; this keeps requests cheap)."""

    def __init__(self, ttl: float = CACHE_SECONDS) -> None:
        self.ttl, self._data, self._lock = ttl, {}, threading.Lock()

    def get(self, key: Any, load) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._data.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                return hit[1]
        value = load()
        with self._lock:
            self._data[key] = (now, value)
        return value


class LoginThrottle:
    """Failed sign-ins per (account name, client address): after :attr:`limit` failures within
    :attr:`window` seconds that pair is refused (429) until fewer than :attr:`limit` of its failures
    are younger than :attr:`window`. Per pair, not per account, so a stranger cannot lock a rater out
    from elsewhere. In memory (one process; a restart clears it); a success clears the pair's failures.
    The check and the recording are separate steps, so a burst of simultaneous attempts can get a few
    past the limit (each still costs a ~50 ms scrypt)."""

    def __init__(self, limit: int = 5, window: float = 15 * 60, clock=time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> list[float]:
        kept = [t for t in self._failures.get(key, []) if now - t < self.window]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def retry_after(self, name: str, client: str) -> float | None:
        """Seconds until this pair may try again, or None when it may try now."""
        now = self.clock()
        with self._lock:
            recent = self._recent((name, client), now)
            if len(recent) < self.limit:
                return None
            return max(1.0, self.window - (now - recent[-self.limit]))

    def failed(self, name: str, client: str) -> None:
        with self._lock:
            now = self.clock()
            if len(self._failures) > 10_000:  # many names tried: drop every pair with nothing recent
                for key in list(self._failures):
                    self._recent(key, now)
            self._recent((name, client), now)
            self._failures.setdefault((name, client), []).append(now)

    def succeeded(self, name: str, client: str) -> None:
        with self._lock:
            self._failures.pop((name, client), None)


class Auth:
    """Per-app authentication state: the signer and caches over the workspace's accounts and people."""

    def __init__(self, ws: Any) -> None:
        self.throttle = LoginThrottle()
        self.ws = ws
        self.signer = Signer(load_secret(ws.root))
        self._people = _Cache()
        self._accounts = _Cache()
        self._tokens = _Cache()

    def roles(self, name: str) -> frozenset[str]:
        def load() -> dict[str, frozenset[str]]:
            import sqlalchemy as sa

            from rlhfops.annotate.tx import read_transaction
            from rlhfops.workspace.db import Person

            people = Person.__table__
            out: dict[str, set[str]] = {}
            with read_transaction(self.ws) as c:  # no write lock: this runs on the event loop
                for person, role in c.execute(sa.select(people.c.name, people.c.role)):
                    out.setdefault(person, set()).add(role)
            return {k: frozenset(v) for k, v in out.items()}

        return self._people.get("all", load).get(name, frozenset())

    def _account(self, name: str):
        from rlhfops.annotate.accounts import account

        return self._accounts.get(name, lambda: account(self.ws, name))

    def user_from_request(self, request: Request) -> User | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            from rlhfops.annotate.accounts import account_for_token

            token = header[7:].strip()
            acc = self._tokens.get(
                hashlib.sha256(token.encode()).hexdigest(), lambda: account_for_token(self.ws, token)
            )
            if acc is None:
                return None
            return User(acc.name, self.roles(acc.name), acc.is_admin, "token")
        name = self.signer.unsign(request.cookies.get(SESSION_COOKIE), SESSION_MAX_AGE)
        if name is None:
            return None
        acc = self._account(name)
        if acc is None:
            return None
        return User(acc.name, self.roles(acc.name), acc.is_admin, "session")

    # ---- CSRF ----------------------------------------------------------------------------------
    def csrf_from_cookie(self, request: Request) -> str | None:
        return self.signer.unsign(request.cookies.get(CSRF_COOKIE))

    def check_csrf(self, request: Request, submitted: str | None) -> None:
        expected = self.csrf_from_cookie(request)
        if not expected or not submitted or not hmac.compare_digest(expected, submitted):
            raise HTTPException(
                status_code=403, detail="CSRF token missing or wrong: reload the page and retry"
            )


def auth_of(request: Request) -> Auth:
    return request.app.state.auth


async def current_user(request: Request) -> User:
    """FastAPI dependency: the signed-in user (session cookie or bearer token); 401 without one.

    Async so that it runs on the event loop instead of a thread hop: it reads caches, and the database
    only on a cache miss (at most every few seconds per account)."""
    return resolve_user(request)


def resolve_user(request: Request) -> User:
    """:func:`current_user` for plain (sync) code."""
    user = getattr(request.state, "user", None)
    if user is None:
        user = auth_of(request).user_from_request(request)
        request.state.user = user
    if user is None:
        raise HTTPException(status_code=401, detail="sign in first (or send an API token)")
    return user


def optional_user(request: Request) -> User | None:
    try:
        return resolve_user(request)
    except HTTPException:
        return None


def require(user: User, allowed: bool, what: str) -> None:
    if not (allowed or user.is_admin):
        raise HTTPException(status_code=403, detail=f"{user.name} may not {what}")


def api_write_guard(request: Request, user: User) -> None:
    """API writes with the session cookie need the CSRF header; bearer tokens do not."""
    if user.via == "session":
        auth_of(request).check_csrf(request, request.headers.get(CSRF_HEADER))
