"""The web app against an attacker (issue 16, findings 2, 3, 8): sessions that end on sign-out, password
change and revoke; CSRF bound to the session; the sign-in throttle keyed on the normalised name and
shared by every process; X-Forwarded-For only from trusted proxies; the body limit; out-of-range ids;
API docs for admins only; the database file 0600."""

from __future__ import annotations

import io
import os
import time

import pytest
import yaml
from fastapi.testclient import TestClient
from web_helpers import PASSWORD, csrf_of, login

from rlhfops.annotate.accounts import create_token, set_account


@pytest.fixture
def app(ws):
    from rlhfops.web.app import create_app

    return create_app(ws.root)


def _replay(app, cookie: str) -> int:
    """GET /api/me from a fresh client holding only a copied session cookie."""
    c = TestClient(app)
    c.cookies.set("rlhfops_session", cookie)
    return c.get("/api/me").status_code


def _signed_in(app, name: str) -> tuple[TestClient, str, str]:
    c = TestClient(app)
    csrf = login(c, name)
    return c, csrf, c.cookies["rlhfops_session"]


# ---- finding 3: sessions end at once ---------------------------------------------------------------
def test_logout_ends_the_session_on_the_server(app) -> None:
    c, csrf, cookie = _signed_in(app, "rita")
    assert _replay(app, cookie) == 200
    assert c.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert _replay(app, cookie) == 401  # a copy of the cookie is worthless after sign-out


def test_password_change_with_the_cli_ends_the_sessions(app, ws, monkeypatch, capsys) -> None:
    from rlhfops.cli.main import main

    _c, _csrf, rita = _signed_in(app, "rita")
    _c2, _csrf2, ravi = _signed_in(app, "ravi")
    monkeypatch.chdir(ws.root)
    # an existing account's password changes only with its current one first (docs/security.md)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PASSWORD}\na brand new password\n"))
    main(["raters", "add", "rita", "--password-stdin"])
    assert capsys.readouterr().out == "account rita updated\n"
    assert _replay(app, rita) == 401
    assert _replay(app, ravi) == 200  # another account's session lives on
    c = TestClient(app)
    login(c, "rita", "a brand new password")
    assert c.get("/api/me").json()["name"] == "rita"


def test_admin_revoke_on_the_accounts_page_ends_sessions_and_tokens(app, ws) -> None:
    _c, _csrf, rita = _signed_in(app, "rita")
    token = create_token(ws, "rita")
    rater, rater_csrf, _ = _signed_in(app, "ravi")
    assert rater.post("/admin/accounts/revoke", data={"name": "rita", "csrf": rater_csrf}).status_code == 403
    assert _replay(app, rita) == 200
    admin, admin_csrf, _ = _signed_in(app, "root")
    page = admin.get("/admin/accounts").text
    assert 'action="/admin/accounts/revoke"' in page and "Sign out everywhere" in page
    r = admin.post("/admin/accounts/revoke", data={"name": "rita", "csrf": admin_csrf})
    assert r.status_code == 200 and "rita: 1 session(s) ended, 1 API token(s) revoked." in r.text
    assert _replay(app, rita) == 401
    assert TestClient(app).get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    missing = admin.post("/admin/accounts/revoke", data={"name": "nobody", "csrf": admin_csrf})
    assert missing.status_code == 400 and "no account &#39;nobody&#39;" in missing.text


def test_cli_revoke_ends_web_sessions(app, ws, monkeypatch, capsys) -> None:
    from rlhfops.cli.main import main

    _c, _csrf, rita = _signed_in(app, "rita")
    monkeypatch.chdir(ws.root)
    main(["raters", "revoke", "rita"])
    assert capsys.readouterr().out == "revoked 0 token(s) and 1 web session(s) of rita\n"
    assert _replay(app, rita) == 401


def test_session_lifetime_edges(ws) -> None:
    from rlhfops.web.sessions import SESSION_MAX_AGE, create_session, session_account

    now = time.time()
    young = create_session(ws, "rita", now=now - SESSION_MAX_AGE + 5)
    old = create_session(ws, "rita", now=now - SESSION_MAX_AGE - 5)
    assert session_account(ws, young, now=now).name == "rita"
    assert session_account(ws, old, now=now) is None
    assert session_account(ws, "forged-" + young, now=now) is None
    assert session_account(ws, None) is None


def _session_rows(ws) -> list[tuple[int, float]]:
    import sqlalchemy as sa

    from rlhfops.annotate.tx import read_transaction
    from rlhfops.workspace import annotation_tables as m

    t = m.WebSession.__table__
    with read_transaction(ws) as c:
        return sorted(c.execute(sa.select(t.c.account_id, t.c.expires)).all())


def test_a_session_lasts_exactly_twelve_hours(ws) -> None:
    """The documented 12 h: live the second before its expiry, dead at it."""
    from rlhfops.web.sessions import SESSION_MAX_AGE, create_session, session_account

    assert SESSION_MAX_AGE == 12 * 60 * 60
    t = 1_000_000.0
    token = create_session(ws, "rita", now=t)
    assert len(token) == 43  # 32 random bytes, URL-safe base64
    assert session_account(ws, token, now=t + 12 * 3600 - 1).name == "rita"
    assert session_account(ws, token, now=t + 12 * 3600) is None


def test_a_session_names_its_account_and_is_immutable(ws) -> None:
    """The account behind a session is the account's id, not the session row's (sessions of another account
    first, so the two differ)."""
    import dataclasses

    import sqlalchemy as sa

    from rlhfops.annotate.tx import read_transaction
    from rlhfops.web.sessions import create_session, session_account
    from rlhfops.workspace import annotation_tables as m

    acc = m.Account.__table__
    with read_transaction(ws) as c:
        rita = c.execute(sa.select(acc.c.id).where(acc.c.name == "rita")).scalar()
    for _ in range(rita + 1):
        create_session(ws, "ravi")
    token = create_session(ws, "rita")
    got = session_account(ws, token)
    with read_transaction(ws) as c:
        s = m.WebSession.__table__
        session_id = c.execute(sa.select(s.c.id).where(s.c.account_id == rita)).scalar()
    assert session_id != rita  # the test can tell the two ids apart
    assert (got.account_id, got.name, got.is_admin) == (rita, "rita", False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.name = "root"


def test_a_new_session_deletes_every_expired_one(ws) -> None:
    """Creating a session deletes the sessions of every account that have expired (at their expiry time)."""
    from rlhfops.web.sessions import create_session

    t = 1_000_000.0
    create_session(ws, "ravi", now=t)
    create_session(ws, "rita", now=t + 1)
    before = _session_rows(ws)
    create_session(ws, "rita", now=t + 12 * 3600)  # ravi's expires now; rita's first one a second later
    after = _session_rows(ws)
    assert len(before) == 2 and len(after) == 2
    assert [e for _a, e in after] == [t + 1 + 12 * 3600, t + 24 * 3600]


def test_revoking_counts_the_sessions_ended(ws) -> None:
    from rlhfops.web.sessions import create_session, revoke_sessions

    assert revoke_sessions(ws, "rita") == 0  # no session: none ended
    create_session(ws, "rita")
    create_session(ws, "rita")
    assert revoke_sessions(ws, "rita") == 2
    assert revoke_sessions(ws, "nobody") is None


def test_old_style_signed_name_cookie_is_refused(app) -> None:
    """The old cookie was ``name.issued.mac``; a value that is not a live session's token signs nobody in."""
    signer = app.state.auth.signer
    assert _replay(app, signer.sign("root")) == 401


# ---- finding 8: CSRF bound to the session ----------------------------------------------------------
def test_csrf_token_is_bound_to_the_session(app) -> None:
    c = TestClient(app)
    before = csrf_of(c.get("/login").text)
    after = login(c, "lena")
    assert c.post("/api/calibration", json={"n": 2}, headers={"X-CSRF-Token": before}).status_code == 403
    _other, other_csrf, _ = _signed_in(app, "ravi")
    assert c.post("/api/calibration", json={"n": 2}, headers={"X-CSRF-Token": other_csrf}).status_code == 403
    assert c.post("/lead/export", data={"csrf": other_csrf}).status_code == 403
    r = c.post("/api/calibration", json={"n": 2}, headers={"X-CSRF-Token": after})
    assert r.status_code != 403, r.text


def test_planted_csrf_cookie_and_token_do_not_pass(app) -> None:
    """Double-submit alone trusts any signed cookie/token pair: an attacker who can plant a cookie (a
    sibling subdomain) sends their own pair with the victim's session. Bound to the session, it fails."""
    attacker = TestClient(app)
    planted_token = csrf_of(attacker.get("/login").text)
    planted_cookie = attacker.cookies["rlhfops_csrf"]
    victim, _csrf, _ = _signed_in(app, "lena")
    victim.cookies.set("rlhfops_csrf", planted_cookie)
    r = victim.post("/api/calibration", json={"n": 2}, headers={"X-CSRF-Token": planted_token})
    assert r.status_code == 403 and "CSRF" in r.text


# ---- finding 2: the sign-in throttle -----------------------------------------------------------------
def _attempt(c: TestClient, token: str, name: str, password: str) -> int:
    data = {"name": name, "password": password, "csrf": token}
    return c.post("/login", data=data, follow_redirects=False).status_code


@pytest.mark.parametrize("variant", ["rita   ", " rita", "rita\t", "\nrita "])
def test_throttle_keys_on_the_name_sign_in_uses(app, variant: str) -> None:
    c = TestClient(app)
    token = csrf_of(c.get("/login").text)
    assert [_attempt(c, token, "rita", f"wrong {i}") for i in range(5)] == [401] * 5
    assert _attempt(c, token, variant, "wrong again") == 429  # no fresh tries under another spelling
    assert _attempt(c, token, variant, PASSWORD) == 429  # and no sign-in with the right password
    assert _attempt(c, token, "ritaa", "wrong") == 401  # a different name is a different key


def test_throttle_is_shared_by_every_server_process(ws) -> None:
    """Two apps on one workspace stand for two uvicorn workers: their failures add up."""
    from rlhfops.web.app import create_app

    a, b = TestClient(create_app(ws.root)), TestClient(create_app(ws.root))
    ta, tb = csrf_of(a.get("/login").text), csrf_of(b.get("/login").text)
    assert [_attempt(a, ta, "rita", f"wrong {i}") for i in range(3)] == [401] * 3
    assert [_attempt(b, tb, "rita", f"wrong {i}") for i in range(2)] == [401] * 2
    assert _attempt(a, ta, "rita", PASSWORD) == 429
    assert _attempt(b, tb, "rita", PASSWORD) == 429


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(ws) -> None:
    from rlhfops.web.app import create_app

    c = TestClient(create_app(ws.root), client=("127.0.0.1", 5000))
    token = csrf_of(c.get("/login").text)

    def attempt(i: int, password: str) -> int:
        data = {"name": "rita", "password": password, "csrf": token}
        h = {"X-Forwarded-For": f"203.0.113.{i}"}
        return c.post("/login", data=data, headers=h, follow_redirects=False).status_code

    assert [attempt(i, "wrong") for i in range(5)] == [401] * 5
    assert attempt(99, PASSWORD) == 429  # rotating the header from loopback buys no tries (default: none)


def test_forwarded_for_is_read_from_a_configured_proxy(ws) -> None:
    from rlhfops.web.app import create_app

    path = ws.root / "rlhfops.yaml"
    data = yaml.safe_load(path.read_text())
    data["web"] = {"trusted_proxies": ["10.0.0.0/8"]}
    path.write_text(yaml.safe_dump(data))
    proxied = TestClient(create_app(ws.root), client=("10.0.0.5", 5000))
    direct = TestClient(create_app(ws.root), client=("192.0.2.7", 5000))
    tp, td = csrf_of(proxied.get("/login").text), csrf_of(direct.get("/login").text)

    def attempt(c: TestClient, token: str, xff: str, password: str) -> int:
        data = {"name": "rita", "password": password, "csrf": token}
        return c.post(
            "/login", data=data, headers={"X-Forwarded-For": xff}, follow_redirects=False
        ).status_code

    assert [attempt(proxied, tp, "198.51.100.1", "wrong") for _ in range(5)] == [401] * 5
    assert attempt(proxied, tp, "198.51.100.1", PASSWORD) == 429  # that client is blocked
    assert attempt(proxied, tp, "198.51.100.2", PASSWORD) == 303  # another client behind the proxy
    assert [attempt(direct, td, f"198.51.100.{9 + i}", "wrong") for i in range(5)] == [401] * 5
    assert attempt(direct, td, "198.51.100.50", PASSWORD) == 429  # not a proxy: its header is ignored


def test_client_address_rule() -> None:
    from rlhfops.web.sessions import client_address, parse_proxies

    proxies = parse_proxies(["10.0.0.5", "10.1.0.0/16"])
    assert client_address("127.0.0.1", "1.2.3.4", []) == "127.0.0.1"
    assert client_address("127.0.0.1", "1.2.3.4", proxies) == "127.0.0.1"  # peer not trusted
    assert client_address("10.0.0.5", "1.2.3.4", proxies) == "1.2.3.4"
    assert (
        client_address("10.0.0.5", "6.6.6.6, 1.2.3.4, 10.1.2.3", proxies) == "1.2.3.4"
    )  # right-most untrusted
    assert client_address("10.0.0.5", None, proxies) == "10.0.0.5"
    assert client_address("testclient", "1.2.3.4", proxies) == "testclient"  # not an IP address: no proxy
    # every hop a trusted proxy: the left-most; a CIDR with host bits set is its network
    assert client_address("10.0.0.5", "10.1.0.1, 10.1.0.2", proxies) == "10.1.0.1"
    assert parse_proxies(["10.1.2.3/16"]) == parse_proxies(["10.1.0.0/16"])
    # addresses are cut to the column's 100 characters, the peer's and a forged header's alike
    assert client_address("p" * 150, None, []) == "p" * 100
    assert client_address("10.0.0.5", "y" * 150, proxies) == "y" * 100
    with pytest.raises(ValueError, match="'nope' is not an IP"):
        parse_proxies(["nope"])


def test_serve_does_not_let_uvicorn_trust_forwarded_headers(ws, monkeypatch) -> None:
    """uvicorn's default trusts X-Forwarded-For from 127.0.0.1: a local client could rotate it."""
    import uvicorn

    from rlhfops.cli.main import main

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    monkeypatch.chdir(ws.root)
    main(["serve", "--port", "8765"])
    assert seen["proxy_headers"] is False


def test_bad_trusted_proxies_setting_is_one_line(ws) -> None:
    from rlhfops.errors import ConfigError
    from rlhfops.web.app import create_app

    path = ws.root / "rlhfops.yaml"
    data = yaml.safe_load(path.read_text())
    data["web"] = {"trusted_proxies": ["10.0.0.300"]}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="web.trusted_proxies"):
        create_app(ws.root)


# ---- finding 4 (part): the request body limit -----------------------------------------------------------
def test_body_limit_default_is_10_mib_exact_edge(app, ws) -> None:
    headers = {"Authorization": f"Bearer {create_token(ws, 'rita')}", "Content-Type": "application/json"}
    c = TestClient(app)
    limit = 10 * 1024 * 1024
    at = c.post("/api/labels", content=b" " * limit, headers=headers)
    assert at.status_code == 422  # read and parsed (not valid JSON): the limit let it through
    over = c.post("/api/labels", content=b" " * (limit + 1), headers=headers)
    assert over.status_code == 413 and "10485760" in over.json()["detail"]


def test_body_limit_setting_and_chunked_uploads(ws) -> None:
    from rlhfops.web.app import create_app

    path = ws.root / "rlhfops.yaml"
    data = yaml.safe_load(path.read_text())
    data["web"] = {"max_body_bytes": 2048}
    path.write_text(yaml.safe_dump(data))
    headers = {"Authorization": f"Bearer {create_token(ws, 'rita')}", "Content-Type": "application/json"}
    c = TestClient(create_app(ws.root))
    assert c.post("/api/labels", content=b" " * 2048, headers=headers).status_code == 422
    assert c.post("/api/labels", content=b" " * 2049, headers=headers).status_code == 413

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(5):
            yield b" " * 1000

    assert c.post("/api/labels", content=chunks(), headers=headers).status_code == 413
    anon = TestClient(create_app(ws.root))
    r = anon.post(
        "/login", content=b"x" * 4000, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 413


# ---- finding 8: out-of-range ids give 422 -----------------------------------------------------------------
@pytest.mark.parametrize(
    "value,status",
    [(2**31 - 1, 200), (2**31, 422), (2**63 - 1, 422), (2**63, 422), (99999999999999999999, 422)],
)
def test_calibration_round_out_of_range_is_422(app, value: int, status: int) -> None:
    c = TestClient(app, raise_server_exceptions=False)
    login(c, "lena")
    r = c.get(f"/lead/calibration?round={value}")
    assert r.status_code == status, r.text[:300]
    if status == 200:
        assert "round" in r.text  # "no calibration round ..." shown on the page


@pytest.mark.parametrize(
    "value,status", [(2**31 - 1, 404), (2**31, 422), (2**63 - 1, 422), (2**63, 422), (10**20, 422)]
)
def test_demo_ids_out_of_range_are_422(app, value: int, status: int) -> None:
    c = TestClient(app, raise_server_exceptions=False)
    csrf = login(c, "dora")
    saved = c.post(f"/demos/{value}", data={"text": "hello", "csrf": csrf}, follow_redirects=False)
    assert saved.status_code == (400 if status == 404 else status), saved.text[:300]
    review = c.post(
        f"/demos/review/{value}",
        data={"decision": "accept", "item_id": "1", "csrf": csrf},
        follow_redirects=False,
    )
    assert review.status_code in ((400, 404) if status == 404 else (status,)), review.text[:300]
    item = c.post("/demos/review/1", data={"decision": "accept", "item_id": str(value), "csrf": csrf})
    assert item.status_code != 500


# ---- finding 8: API docs for signed-in admins only ------------------------------------------------------
@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc"])
def test_api_docs_only_for_admins(app, ws, path: str) -> None:
    assert TestClient(app).get(path).status_code == 401
    rater = TestClient(app)
    login(rater, "rita")
    assert rater.get(path).status_code == 403
    admin = TestClient(app)
    login(admin, "root")
    assert admin.get(path).status_code == 200
    token = create_token(ws, "root")
    assert TestClient(app).get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_openapi_schema_still_lists_the_api(app, ws) -> None:
    token = create_token(ws, "root")
    schema = TestClient(app).get("/openapi.json", headers={"Authorization": f"Bearer {token}"}).json()
    assert "/api/labels" in schema["paths"] and "/api/monitor/events" in schema["paths"]


# ---- finding 8: the database file ----------------------------------------------------------------------
def test_sqlite_database_file_is_created_0600(sqlite_backend, tmp_path) -> None:
    from rlhfops.workspace import init_workspace

    old = os.umask(0o022)
    try:
        w = init_workspace(tmp_path / "w")
    finally:
        os.umask(old)
    try:
        set_account(w, "x", "a long password")  # writes: the -wal file exists now
        for name in ("rlhfops.db", "rlhfops.db-wal", "rlhfops.db-shm"):
            p = tmp_path / "w" / name
            if p.exists() or name == "rlhfops.db":
                assert oct(p.stat().st_mode & 0o777) == oct(0o600), name
    finally:
        w.close()


def test_a_number_the_database_cannot_hold_is_422_not_500(app) -> None:
    """The safety net for a route without a bound: OverflowError (SQLite's 'Python int too large')."""

    def boom() -> None:
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    app.add_api_route("/api/boom", boom)
    r = TestClient(app, raise_server_exceptions=False).get("/api/boom")
    assert r.status_code == 422 and "out of range" in r.json()["detail"]


def test_migration_0003c_downgrades_and_upgrades(sqlite_backend, tmp_path) -> None:
    import sqlalchemy as sa

    from rlhfops.workspace import init_workspace, migrate

    w = init_workspace(tmp_path / "w")
    try:
        assert {"web_sessions", "login_failures"} <= set(sa.inspect(w.engine).get_table_names())
        migrate.downgrade(w.engine, "0002")
        assert not {"web_sessions", "login_failures"} & set(sa.inspect(w.engine).get_table_names())
        migrate.upgrade(w.engine)
        assert {"web_sessions", "login_failures"} <= set(sa.inspect(w.engine).get_table_names())
    finally:
        w.close()
