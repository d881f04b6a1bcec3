"""web/auth.py without the app (issue 17): who a request is (bearer token, session cookie, neither), the
CSRF token it must carry (bound to the session, or the signed pre-sign-in cookie on the sign-in form),
the workspace secret, roles from the people table, the client address. Plain Starlette requests over a
real workspace, so that the mutation run of web/auth.py need not drive the whole app for every mutant."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from types import SimpleNamespace

import pytest
from fastapi import HTTPException
from starlette.requests import Request

from rlhfops.web import auth

PASSWORD = "correct horse battery"


@pytest.fixture
def ws(tmp_path, monkeypatch):
    from rlhfops.annotate.accounts import set_account
    from rlhfops.workspace import init_workspace

    monkeypatch.delenv("RLHFOPS_DATABASE_URL", raising=False)
    w = init_workspace(tmp_path / "ws", template="support-replies")
    w.add_person("rita", "rater", "alice")
    w.add_person("rita", "annotation-lead", "alice")
    set_account(w, "rita", PASSWORD)
    set_account(w, "root", PASSWORD, is_admin=True)
    yield w
    w.close()


def _request(a, headers=None, cookies=None, peer="10.0.0.1"):
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if cookies:
        raw.append((b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode()))
    app = SimpleNamespace(state=SimpleNamespace(auth=a))
    scope = {"type": "http", "method": "GET", "path": "/", "headers": raw, "query_string": b"", "app": app}
    if peer is not None:
        scope["client"] = (peer, 1234)
    return Request(scope)


def test_the_workspace_secret_is_created_once_private_and_reused(tmp_path):
    secret = auth.load_secret(tmp_path)
    path = tmp_path / auth.SECRET_FILE
    assert len(secret) == 64 and bytes.fromhex(secret.decode())  # 32 random bytes, hex
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert auth.load_secret(tmp_path) == secret
    path.write_bytes(b"  abc\n")
    assert auth.load_secret(tmp_path) == b"abc"


def test_a_bearer_token_names_its_account_with_its_roles(ws):
    from rlhfops.annotate.accounts import create_token

    a = auth.Auth(ws)
    token = create_token(ws, "rita")
    for scheme in ("Bearer", "bearer", "BEARER"):
        user = a.user_from_request(_request(a, {"Authorization": f"{scheme} {token} "}))
        assert user == auth.User("rita", frozenset({"rater", "annotation-lead"}), False, "token")
    admin = a.user_from_request(_request(a, {"Authorization": f"Bearer {create_token(ws, 'root')}"}))
    assert admin == auth.User("root", frozenset(), True, "token")
    assert a.user_from_request(_request(a, {"Authorization": "Bearer rlh_nope"})) is None
    assert a.user_from_request(_request(a, {"Authorization": f"Basic {token}"})) is None
    assert a.user_from_request(_request(a)) is None


def test_a_session_cookie_names_its_account_and_is_kept_on_the_request(ws):
    from rlhfops.web.sessions import create_session

    a = auth.Auth(ws)
    token = create_session(ws, "rita")
    request = _request(a, cookies={auth.SESSION_COOKIE: token})
    user = a.user_from_request(request)
    assert user == auth.User("rita", frozenset({"rater", "annotation-lead"}), False, "session")
    assert request.state.session_token == token
    assert a.user_from_request(_request(a, cookies={auth.SESSION_COOKIE: "forged"})) is None


def test_roles_of_an_unknown_name_are_empty(ws):
    a = auth.Auth(ws)
    assert a.roles("nobody") == frozenset()
    assert a.roles("rita") == frozenset({"rater", "annotation-lead"})


def test_a_role_change_is_seen_after_five_seconds_and_not_before(ws, monkeypatch):
    # docs/benchmarks.md: role and token lookups hit the database on a cache miss every 5 s; a role
    # granted (or revoked) takes effect that long after the last lookup, no later
    now = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: now[0])
    a = auth.Auth(ws)
    assert a.roles("rita") == frozenset({"rater", "annotation-lead"})
    ws.add_person("rita", "gate-owner", "alice")
    now[0] = 1004.999
    assert "gate-owner" not in a.roles("rita")  # cached
    now[0] = 1005.0
    assert "gate-owner" in a.roles("rita")


def test_the_signature_is_hmac_sha256_under_the_derived_key(monkeypatch):
    # an independent computation of the token: sessions signed by one release must verify in the next
    import base64
    import hmac

    monkeypatch.setattr(auth.time, "time", lambda: 1_700_000_000.0)
    secret = b"s" * 64
    payload = f"{base64.urlsafe_b64encode(b'ann').decode()}.1700000000"
    key = hashlib.sha256(b"rlhfops-web:" + secret).digest()
    mac = base64.urlsafe_b64encode(hmac.new(key, payload.encode(), hashlib.sha256).digest()).decode()
    token = auth.Signer(secret).sign("ann")
    assert token == f"{payload}.{mac}"
    assert auth.Signer(secret).unsign(token) == "ann"


def test_resolve_user_caches_the_user_on_the_request_and_401s_without_one(ws):
    from rlhfops.web.sessions import create_session

    a = auth.Auth(ws)
    request = _request(a, cookies={auth.SESSION_COOKIE: create_session(ws, "rita")})
    user = asyncio.run(auth.current_user(request))
    assert user.name == "rita" and request.state.user is user
    request.state.user = sentinel = auth.User("x", frozenset(), False, "session")
    assert auth.resolve_user(request) is sentinel  # not looked up again
    anonymous = _request(a)
    with pytest.raises(HTTPException) as err:
        auth.resolve_user(anonymous)
    assert err.value.status_code == 401
    assert auth.optional_user(_request(a)) is None


def test_the_csrf_token_is_bound_to_the_session_once_signed_in(ws):
    from rlhfops.web.sessions import create_session, csrf_for_session

    a = auth.Auth(ws)
    key = hashlib.sha256(b"rlhfops-csrf:" + a.secret).digest()
    token = create_session(ws, "rita")
    request = _request(a, cookies={auth.SESSION_COOKIE: token})
    expected = csrf_for_session(key, token)
    assert a.csrf_token(request) == expected
    a.check_csrf(request, expected)
    for wrong in (None, "", "x", csrf_for_session(key, "another session")):
        with pytest.raises(HTTPException) as err:
            a.check_csrf(request, wrong)
        assert err.value.status_code == 403


def test_before_sign_in_only_the_sign_in_form_accepts_the_cookies_token(ws):
    a = auth.Auth(ws)
    cookie = a.signer.sign("nonce-1")
    request = _request(a, cookies={auth.CSRF_COOKIE: cookie})
    assert a.csrf_from_cookie(request) == "nonce-1"
    assert a.csrf_token(request) == ""  # no session, no token of the request's own
    a.check_csrf(request, "nonce-1", anonymous_ok=True)
    with pytest.raises(HTTPException):
        a.check_csrf(request, "nonce-1")  # only the sign-in form takes the anonymous token
    with pytest.raises(HTTPException):
        a.check_csrf(request, "nonce-2", anonymous_ok=True)
    with pytest.raises(HTTPException):
        a.check_csrf(_request(a), "", anonymous_ok=True)  # no cookie: an empty token is no token
    request.state.csrf = "fresh"  # the token the app just issued with this response
    assert a.csrf_token(request) == "fresh"
    a.check_csrf(request, "fresh")


def test_the_client_address_trusts_forwarded_for_only_from_a_trusted_proxy(ws):
    a = auth.Auth(ws, trusted_proxies=["10.0.0.0/8"])
    fwd = {"X-Forwarded-For": "1.2.3.4"}
    assert a.client_address(_request(a, fwd, peer="10.0.0.1")) == "1.2.3.4"
    assert a.client_address(_request(a, fwd, peer="8.8.8.8")) == "8.8.8.8"
    assert auth.Auth(ws).client_address(_request(a, fwd, peer="10.0.0.1")) == "10.0.0.1"
    assert a.client_address(_request(a, fwd, peer=None)) == "-"


def test_a_user_is_immutable():
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        auth.User("a", frozenset(), False, "session").is_admin = True


READERS = {
    "reads_gate": {"gate-owner", "red-team-lead", "ml-engineer", "technical-lead"},
    "reads_monitor": {
        "task-spec-owner",
        "annotation-lead",
        "ml-engineer",
        "red-team-lead",
        "gate-owner",
        "technical-lead",
    },
    "writes_monitor": {"ml-engineer"},
}
ALL_ROLES = sorted(set().union(*READERS.values()) | {"rater", "domain-expert-lead", "business-owner"})


@pytest.mark.parametrize("predicate", READERS)
def test_gate_and_monitor_access_by_role_and_for_admins(predicate):
    for role in ALL_ROLES:
        user = auth.User("ann", frozenset({role}), False, "session")
        assert getattr(user, predicate) is (role in READERS[predicate]), role
    assert getattr(auth.User("ann", frozenset(), False, "session"), predicate) is False
    assert getattr(auth.User("ann", frozenset(), True, "session"), predicate) is True  # admins always
    others = frozenset(r for r in ALL_ROLES if r not in READERS[predicate])
    assert getattr(auth.User("ann", others, False, "session"), predicate) is False
