"""The routers' access dependencies (rlhfops.web.deps): each reader / writer check with a user who has
the role, one who lacks it, and on a bare app without accounts; the monitor writer's CSRF check for
session writes (issue 17, mutation survivors of web/deps.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from fastapi import HTTPException

from rlhfops.web import auth
from rlhfops.web.auth import Signer, User
from rlhfops.web.deps import gate_reader, monitor_reader, monitor_writer
from rlhfops.web.sessions import csrf_for_session

KEY = b"c" * 32


def _user(*roles: str, via: str = "session") -> User:
    return User("ann", frozenset(roles), False, via)


def _request(user: User | None, accounts: bool = True, headers: dict[str, str] | None = None):
    """A request on an app with accounts (``user`` signed in, session ``s1``) or on a bare app."""
    real = None
    if accounts:
        real = auth.Auth.__new__(auth.Auth)
        real._csrf_key, real.signer = KEY, Signer(b"k" * 32)
    return SimpleNamespace(
        headers=headers or {},
        cookies={},
        state=SimpleNamespace(user=user, session_token="s1", csrf=""),
        app=SimpleNamespace(state=SimpleNamespace(auth=real)),
    )


def _call(dep, request) -> None:
    asyncio.run(dep(request))


def _refused(dep, request) -> str:
    with pytest.raises(HTTPException) as err:
        _call(dep, request)
    assert err.value.status_code == 403
    return err.value.detail


@pytest.mark.parametrize(
    ("dep", "allowed", "denied", "action", "roles"),
    [
        (gate_reader, "gate-owner", "rater", "read the deployment gate", auth.GATE_READERS),
        (monitor_reader, "task-spec-owner", "rater", "read monitoring", auth.MONITOR_READERS),
        (monitor_writer, "ml-engineer", "gate-owner", "post production logs", auth.MONITOR_WRITERS),
    ],
)
def test_each_dependency_lets_its_role_in_and_keeps_others_out(dep, allowed, denied, action, roles):
    ok = _user(allowed)
    headers = {auth.CSRF_HEADER: csrf_for_session(KEY, "s1")}
    _call(dep, _request(ok, headers=headers))
    _call(dep, _request(_user(allowed, via="token")))
    # the refusal names what was refused and the roles that may do it
    expected = f"ann may not {action} (needs one of: {', '.join(roles)})"
    assert _refused(dep, _request(_user(denied), headers=headers)) == expected
    assert _refused(dep, _request(_user(), headers=headers)) == expected


@pytest.mark.parametrize("dep", [gate_reader, monitor_reader, monitor_writer])
def test_a_bare_app_without_accounts_checks_nobody(dep):
    # no accounts on the app: the request's user (even one without any role) is not consulted
    _call(dep, _request(_user(), accounts=False))
    _call(dep, _request(None, accounts=False))


def test_an_app_with_accounts_needs_a_signed_in_user():
    bad = _request(None)
    bad.app.state.auth.user_from_request = lambda request: None
    with pytest.raises(HTTPException) as err:
        _call(gate_reader, bad)
    assert err.value.status_code == 401


def test_monitor_writes_with_the_session_cookie_need_the_csrf_token():
    writer = _user("ml-engineer")
    _refused(monitor_writer, _request(writer))  # no header
    _refused(monitor_writer, _request(writer, headers={auth.CSRF_HEADER: csrf_for_session(KEY, "s2")}))
    _call(monitor_writer, _request(writer, headers={auth.CSRF_HEADER: csrf_for_session(KEY, "s1")}))
    _call(monitor_writer, _request(_user("ml-engineer", via="token")))  # bearer tokens carry none
