"""Authentication for the web app: server-side sessions, API tokens, CSRF, roles.

* Session: ``rlhfops_session`` = a random token; the workspace database keeps its hash, the account and
  the expiry (:mod:`rlhfops.web.sessions`), and every request looks it up, so signing out, an admin's
  revoke (the accounts page) and a password change end it at once. HttpOnly, SameSite=Lax, valid
  :data:`SESSION_MAX_AGE` seconds.
* Sign-in: 5 failed attempts for one account name (normalised as sign-in does) from one client address
  within 15 minutes refuse further attempts from there (429 with Retry-After) until the oldest is 15
  minutes old (:class:`rlhfops.web.sessions.LoginThrottle`, in the database: every worker shares it).
  The client address is the TCP peer; ``X-Forwarded-For`` counts only from ``web.trusted_proxies``.
* Scripts: ``Authorization: Bearer <token>`` (tokens from ``rlhfops raters token``; only hashes stored).
* CSRF: before sign-in a signed random ``rlhfops_csrf`` cookie (double submit, for the login form);
  once signed in the token is an HMAC of the session token, so it is bound to that session. Every form
  carries it in a hidden ``csrf`` field and API writes authenticated by the session cookie carry it in
  ``X-CSRF-Token``; a write without it is refused (403). Bearer-token requests need no CSRF token (a
  browser never sends one on its own).
* Roles come from the workspace people table; ``admin`` is an account flag. Who may read what:
  :data:`GATE_READERS`, :data:`MONITOR_READERS`, :data:`MONITOR_WRITERS` (admins always may).
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
SESSION_MAX_AGE = 12 * 3600  # the same as rlhfops.web.sessions.SESSION_MAX_AGE
SECRET_FILE = ".rlhfops-web-secret"
CACHE_SECONDS = 5.0

LEAD_ROLES = ("annotation-lead",)
EXPERT_ROLES = ("domain-expert-lead", "domain-expert")
# The gate pages show red-team failing outputs and every model's evidence: the people of Play 4 and 5
# and the technical lead who signs the spec.
GATE_READERS = ("gate-owner", "red-team-lead", "ml-engineer", "technical-lead")
# The monitoring page and triggers show production prompts: the owners of the plays a trigger re-enters
# (1 task spec, 3 annotation, 4 RL, 5 gate), the red-team lead and the technical lead.
MONITOR_READERS = (
    "task-spec-owner",
    "annotation-lead",
    "ml-engineer",
    "red-team-lead",
    "gate-owner",
    "technical-lead",
)
# Production logs posted to /api/monitor/events: the ML engineer (or a service account given that role).
MONITOR_WRITERS = ("ml-engineer",)


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

    @property
    def reads_gate(self) -> bool:
        return self.is_admin or any(r in self.roles for r in GATE_READERS)

    @property
    def reads_monitor(self) -> bool:
        return self.is_admin or any(r in self.roles for r in MONITOR_READERS)

    @property
    def writes_monitor(self) -> bool:
        return self.is_admin or any(r in self.roles for r in MONITOR_WRITERS)


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


class Auth:
    """Per-app authentication state: the signer and caches over the workspace's accounts and people."""

    def __init__(self, ws: Any, trusted_proxies: list[str] | None = None) -> None:
        from rlhfops.web.sessions import LoginThrottle, parse_proxies

        self.throttle = LoginThrottle(ws)
        self.ws = ws
        self.secret = load_secret(ws.root)
        self.signer = Signer(self.secret)
        self._csrf_key = hashlib.sha256(b"rlhfops-csrf:" + self.secret).digest()
        self.proxies = parse_proxies(trusted_proxies or [])
        self._people = _Cache()
        self._tokens = _Cache()

    def client_address(self, request: Request) -> str:
        """The client's address (``X-Forwarded-For`` only from a trusted proxy)."""
        from rlhfops.web.sessions import client_address

        peer = request.client.host if request.client else "-"
        return client_address(peer, request.headers.get("x-forwarded-for"), self.proxies)

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
        from rlhfops.web.sessions import session_account

        token = request.cookies.get(SESSION_COOKIE)
        acc = session_account(self.ws, token)  # every request: a revoked session ends at once
        if acc is None:
            return None
        request.state.session_token = token
        return User(acc.name, self.roles(acc.name), acc.is_admin, "session")

    # ---- CSRF ----------------------------------------------------------------------------------
    def csrf_from_cookie(self, request: Request) -> str | None:
        """The anonymous (pre-sign-in) token of the signed ``rlhfops_csrf`` cookie."""
        return self.signer.unsign(request.cookies.get(CSRF_COOKIE))

    def csrf_token(self, request: Request) -> str:
        """The token forms and ``X-CSRF-Token`` must carry: bound to the session once signed in."""
        from rlhfops.web.sessions import csrf_for_session

        user = optional_user(request)
        if user is not None and user.via == "session":
            return csrf_for_session(self._csrf_key, request.state.session_token)
        return getattr(request.state, "csrf", "") or ""

    def check_csrf(self, request: Request, submitted: str | None, anonymous_ok: bool = False) -> None:
        """403 unless ``submitted`` is the request's CSRF token (:meth:`csrf_token`); ``anonymous_ok``
        (the sign-in form only) also accepts the pre-sign-in cookie's token."""
        expected = [self.csrf_token(request)]
        if anonymous_ok:
            expected.append(self.csrf_from_cookie(request) or "")
        if not submitted or not any(e and hmac.compare_digest(e, submitted) for e in expected):
            raise HTTPException(
                status_code=403, detail="CSRF token missing or wrong: reload the page and retry"
            )


def auth_of(request: Request) -> Auth:
    return request.app.state.auth


async def current_user(request: Request) -> User:
    """FastAPI dependency: the signed-in user (session cookie or bearer token); 401 without one.

    Async so that it runs on the event loop instead of a thread hop: a bearer token reads caches (the
    database only on a miss, at most every few seconds per token); a session cookie costs one indexed
    read of its row per request (no cache: a revoked session must end at once)."""
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
    """403 unless ``allowed`` (admins always are)."""
    if not (allowed or user.is_admin):
        raise HTTPException(status_code=403, detail=f"{user.name} may not {what}")


def api_write_guard(request: Request, user: User) -> None:
    """API writes with the session cookie need the CSRF header; bearer tokens do not."""
    if user.via == "session":
        auth_of(request).check_csrf(request, request.headers.get(CSRF_HEADER))
