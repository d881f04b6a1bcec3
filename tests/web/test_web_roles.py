"""Every role predicate with a user who has the role and with users who lack it; the 403 rule, the CSRF
guard's session/token split, the sign-in throttle and session expiry at their edges (issue 17)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi import HTTPException

from rlhfops.web import auth
from rlhfops.web.auth import Signer, User, api_write_guard, require
from rlhfops.web.deps import get_workspace
from rlhfops.web.sessions import LoginThrottle

ROLES = ["rater", "annotation-lead", "domain-expert-lead", "domain-expert", "task-spec-owner", "gate-owner"]

# predicate -> the roles that grant it (every other role must not)
PREDICATES = {
    "is_rater": {"rater"},
    "is_lead": {"annotation-lead"},
    "is_expert": {"domain-expert-lead", "domain-expert"},
    "is_demo_lead": {"domain-expert-lead"},
}


def _user(*roles: str, admin: bool = False, via: str = "session") -> User:
    return User("ann", frozenset(roles), admin, via)


@pytest.mark.parametrize("predicate", PREDICATES)
@pytest.mark.parametrize("role", ROLES)
def test_each_predicate_holds_for_its_roles_only(predicate, role):
    assert getattr(_user(role), predicate) is (role in PREDICATES[predicate])


@pytest.mark.parametrize("predicate", PREDICATES)
def test_no_role_and_admin_flag_grant_no_predicate(predicate):
    assert getattr(_user(), predicate) is False
    assert getattr(_user(admin=True), predicate) is False  # admin is checked by require(), not here
    others = [r for r in ROLES if r not in PREDICATES[predicate]]
    assert getattr(_user(*others), predicate) is False
    assert getattr(_user(*others, *PREDICATES[predicate]), predicate) is True


def test_require_refuses_unless_allowed_or_admin():
    require(_user("rater"), True, "label")
    require(_user(admin=True), False, "promote")
    with pytest.raises(HTTPException) as err:
        require(_user("rater"), False, "promote")
    assert err.value.status_code == 403 and "ann may not promote" in err.value.detail


def _request(headers: dict[str, str], session_token: str, user: User, key: bytes = b"c" * 32):
    """A request signed in with session ``session_token`` as ``user``, for the app's CSRF check."""
    real = auth.Auth.__new__(auth.Auth)
    real._csrf_key, real.signer = key, Signer(b"k" * 32)
    return SimpleNamespace(
        headers=headers,
        cookies={},
        state=SimpleNamespace(user=user, session_token=session_token, csrf=""),
        app=SimpleNamespace(state=SimpleNamespace(auth=real)),
    )


def test_api_write_guard_needs_the_sessions_csrf_token_for_session_writes_only():
    from rlhfops.web.sessions import csrf_for_session

    rater, by_token = _user("rater"), _user("rater", via="token")
    good = csrf_for_session(b"c" * 32, "session-1")
    api_write_guard(_request({auth.CSRF_HEADER: good}, "session-1", rater), rater)
    other_session = csrf_for_session(b"c" * 32, "session-2")  # a token bound to another session
    for headers in ({}, {auth.CSRF_HEADER: other_session}, {auth.CSRF_HEADER: "nonce"}):
        bad = _request(headers, "session-1", rater)
        with pytest.raises(HTTPException) as err:
            api_write_guard(bad, rater)
        assert err.value.status_code == 403
        api_write_guard(_request(headers, "session-1", by_token), by_token)  # bearer tokens carry none


def test_session_token_expires_after_max_age(monkeypatch):
    signer = Signer(b"s" * 32)
    monkeypatch.setattr(auth.time, "time", lambda: 1_000_000.0)
    token = signer.sign("ann")
    assert signer.unsign(token) == "ann"
    monkeypatch.setattr(auth.time, "time", lambda: 1_000_000.0 + 100)
    assert signer.unsign(token, max_age=100) == "ann"  # exactly max_age old: still valid
    assert signer.unsign(token, max_age=99) is None
    assert Signer(b"t" * 32).unsign(token) is None  # another secret
    enc, issued, mac = token.split(".")
    assert signer.unsign(f"{enc}.{int(issued) + 1}.{mac}") is None  # tampered
    assert signer.unsign(None) is None and signer.unsign("a.b") is None


@pytest.fixture
def ws(tmp_path, monkeypatch):
    from rlhfops.workspace import init_workspace

    monkeypatch.delenv("RLHFOPS_DATABASE_URL", raising=False)
    w = init_workspace(tmp_path / "ws", template="support-replies")
    yield w
    w.close()


def test_login_throttle_limit_and_window_edges(ws):
    now = [0.0]
    t = LoginThrottle(ws, limit=3, window=60.0, clock=lambda: now[0])
    for _i in range(2):
        t.failed("ann", "1.2.3.4")
        now[0] += 1
    assert t.retry_after("ann", "1.2.3.4") is None  # limit - 1 failures: may try
    t.failed("ann", "1.2.3.4")
    assert t.retry_after("ann", "1.2.3.4") == pytest.approx(60.0 - 2.0)  # until the oldest is 60 s old
    assert t.retry_after("ann", "5.6.7.8") is None and t.retry_after("bob", "1.2.3.4") is None
    now[0] = 59.999
    assert t.retry_after("ann", "1.2.3.4") is not None
    now[0] = 60.0  # the first failure is exactly `window` old: no longer counted
    assert t.retry_after("ann", "1.2.3.4") is None
    t.failed("ann", "1.2.3.4")
    assert t.retry_after("ann", "1.2.3.4") is not None
    t.succeeded("ann", "1.2.3.4")
    assert t.retry_after("ann", "1.2.3.4") is None


def test_a_new_failure_deletes_the_failures_older_than_the_window(ws):
    """Recording a failure deletes every pair's failures that are ``window`` old or older (the table stays
    bounded), and keeps the younger ones."""
    import sqlalchemy as sa

    from rlhfops.annotate.tx import read_transaction
    from rlhfops.workspace import annotation_tables as m

    assert (LoginThrottle(ws).limit, LoginThrottle(ws).window) == (5, 15 * 60)  # the documented defaults
    now = [0.0]
    t = LoginThrottle(ws, limit=3, window=60.0, clock=lambda: now[0])
    t.failed("ann", "c")
    now[0] = 1.0
    t.failed("bob", "d")
    now[0] = 60.0  # ann's failure is exactly `window` old
    t.failed("cy", "e")
    with read_transaction(ws) as c:
        kept = sorted(c.execute(sa.select(m.LoginFailure.__table__.c.at)).scalars().all())
    assert kept == [1.0, 60.0]


def test_the_csrf_token_is_an_hmac_of_the_session_and_names_are_cut_to_200():
    import hashlib
    import hmac

    from rlhfops.web.sessions import csrf_for_session, login_key

    key = b"c" * 32
    assert csrf_for_session(key, "s1") == hmac.new(key, b"csrf:s1", hashlib.sha256).hexdigest()
    assert login_key("  " + "a" * 250 + " ") == "a" * 200  # stripped, then the column's 200 characters


def test_get_workspace_yields_the_apps_own_workspace():
    ws = object()
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(ws=ws)))
    gen = get_workspace(request)
    assert next(gen) is ws
    with pytest.raises(StopIteration):
        next(gen)


def test_retry_after_is_at_least_one_second(ws):
    now = [0.0]
    t = LoginThrottle(ws, limit=1, window=60.0, clock=lambda: now[0])
    t.failed("ann", "c")
    now[0] = 59.5
    assert t.retry_after("ann", "c") == 1.0  # 0.5 s left, reported as the 1 s floor
    now[0] = 30.0
    assert t.retry_after("ann", "c") == 30.0
    now[0] = 100.0  # a failure at 100: at 130 it is 30 s old, 30 s to wait
    t.failed("bob", "c")
    now[0] = 130.0
    assert t.retry_after("bob", "c") == 30.0


def test_sessions_last_twelve_hours():
    assert auth.SESSION_MAX_AGE == 12 * 60 * 60  # the documented session lifetime


def test_role_cache_expires_after_its_ttl(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: now[0])
    cache, loads = auth._Cache(ttl=5.0), []

    def load():
        loads.append(now[0])
        return len(loads)

    assert cache.get("k", load) == 1
    now[0] = 104.999
    assert cache.get("k", load) == 1  # within the TTL: cached
    now[0] = 105.0
    assert cache.get("k", load) == 2  # exactly TTL old: reloaded


def test_get_workspace_outside_the_app_opens_and_closes_one(monkeypatch):
    import rlhfops.workspace as workspace
    from rlhfops.errors import UserError

    closed = []
    fake = SimpleNamespace(close=lambda: closed.append(True))
    monkeypatch.setattr(workspace, "require_workspace", lambda: fake)
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace()))
    gen = get_workspace(request)
    assert next(gen) is fake and closed == []
    with pytest.raises(StopIteration):
        next(gen)
    assert closed == [True]  # closed after the request

    def missing():
        raise UserError("no workspace here")

    monkeypatch.setattr(workspace, "require_workspace", missing)
    with pytest.raises(HTTPException) as err:
        next(get_workspace(request))
    assert err.value.status_code == 503 and "no workspace here" in err.value.detail
    assert get_workspace.app_aware is True  # create_app relies on it to skip a dependency override
