"""Access control over HTTP: 401 without login, 403 for other raters' items / labels, admin pages and
export; CSRF refusal; bearer tokens; escaping of model output; double submit over the API."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from web_helpers import PASSWORD, csrf_of, login, pairs

from rlhfops.annotate.accounts import create_token
from rlhfops.annotate.queue import PairIn, fetch_next, queue_pairs
from rlhfops.workspace import annotation_tables as m


@pytest.fixture
def app(ws):
    from rlhfops.web.app import create_app

    queue_pairs(ws, pairs(6), "b1", 2)
    application = create_app(ws.root)
    yield application


def client(app) -> TestClient:
    return TestClient(app)


def _labels(ws) -> list[tuple]:
    with ws.session() as s:
        return s.execute(sa.select(m.Label.item_id, m.Label.rater, m.Label.choice)).all()


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/api/next"),
        ("get", "/api/labels"),
        ("get", "/api/agreement"),
        ("post", "/api/export"),
        ("get", "/rate"),
        ("get", "/lead/agreement"),
        ("get", "/admin/accounts"),
        ("get", "/demos"),
    ],
)
def test_no_login_is_401(app, method: str, path: str) -> None:
    r = getattr(client(app), method)(path)
    assert r.status_code == 401


def test_bad_password_and_bad_token_are_401(app, ws) -> None:
    c = client(app)
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"name": "rita", "password": "wrong password", "csrf": token})
    assert r.status_code == 401 and "Wrong name or password" in r.text
    assert client(app).get("/api/me", headers={"Authorization": "Bearer rlh_nope"}).status_code == 401
    with ws.session() as s:
        stored = s.scalar(sa.select(m.Account.password_hash).where(m.Account.name == "rita"))
    assert stored.startswith("scrypt$") and PASSWORD not in stored


def test_repeated_failed_sign_ins_are_throttled(app, ws) -> None:
    """5 wrong passwords for one name from one client: the 6th attempt is 429 with Retry-After, even
    with the right password; another name is unaffected; the block lifts once the window has passed."""
    clock = [1000.0]
    app.state.auth.throttle.clock = lambda: clock[0]
    c = client(app)
    token = csrf_of(c.get("/login").text)

    def attempt(name: str, password: str) -> int:
        data = {"name": name, "password": password, "csrf": token}
        return c.post("/login", data=data, follow_redirects=False).status_code

    assert [attempt("rita", f"wrong {i}") for i in range(5)] == [401] * 5
    r = c.post("/login", data={"name": "rita", "password": PASSWORD, "csrf": token}, follow_redirects=False)
    assert r.status_code == 429 and "Too many failed sign-ins for rita" in r.text
    assert 0 < int(r.headers["retry-after"]) <= 15 * 60
    assert attempt("ravi", PASSWORD) == 303  # another account signs in
    clock[0] += 15 * 60 + 1
    assert attempt("rita", PASSWORD) == 303
    assert attempt("rita", "wrong again") == 401  # the success cleared the count: one failure is not a block
    assert attempt("rita", PASSWORD) == 303


def test_login_throttle_window_is_sliding(ws) -> None:
    from rlhfops.web.sessions import LoginThrottle

    now = [0.0]
    t = LoginThrottle(ws, limit=3, window=100, clock=lambda: now[0])
    for at in (0, 10, 20):
        now[0] = at
        assert t.retry_after("a", "h") is None
        t.failed("a", "h")
    now[0] = 30
    assert t.retry_after("a", "h") == 70  # until the first failure (t=0) is 100 s old
    assert t.retry_after("a", "other-host") is None
    now[0] = 100.5
    assert t.retry_after("a", "h") is None  # only 2 failures in the last 100 s
    t.failed("a", "h")
    assert t.retry_after("a", "h") == pytest.approx(9.5)  # blocked until t=10's failure ages out


def test_rater_gets_403_for_other_raters_admin_and_export(app, ws) -> None:
    other = fetch_next(ws, "ravi", gold_rate=0)
    c = client(app)
    csrf = login(c, "rita")
    mine = c.get("/api/next").json()["item"]
    assert c.get(f"/api/items/{mine['item_id']}").status_code == 200
    if other.item_id != mine["item_id"]:
        assert c.get(f"/api/items/{other.item_id}").status_code == 403
    assert c.get("/api/labels", params={"rater": "ravi"}).status_code == 403
    assert c.get("/api/raters/ravi/items").status_code == 403
    assert c.get("/api/raters/rita/items").status_code == 200
    assert c.get("/admin/accounts").status_code == 403
    assert c.get("/api/admin/accounts").status_code == 403
    assert c.get("/lead/agreement").status_code == 403
    assert c.get("/api/agreement").status_code == 403
    assert c.post("/api/export", json={}, headers={"X-CSRF-Token": csrf}).status_code == 403
    assert c.post("/lead/export", data={"csrf": csrf}).status_code == 403
    # a label on an item assigned to someone else
    r = c.post(
        "/api/labels", json={"item_id": other.item_id, "choice": "left"}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == (201 if other.item_id == mine["item_id"] else 403)


def test_forms_and_cookie_api_writes_need_the_csrf_token(app, ws) -> None:
    c = client(app)
    assert c.post("/login", data={"name": "rita", "password": PASSWORD}).status_code == 403
    csrf = login(c, "rita")
    item = c.get("/api/next").json()["item"]
    assert c.post(f"/rate/{item['item_id']}", data={"choice": "left"}).status_code == 403
    assert c.post(f"/rate/{item['item_id']}", data={"choice": "left", "csrf": "forged"}).status_code == 403
    assert c.post("/api/labels", json={"item_id": item["item_id"], "choice": "left"}).status_code == 403
    assert _labels(ws) == []
    r = c.post(f"/rate/{item['item_id']}", data={"choice": "left", "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and len(_labels(ws)) == 1
    # another browser (its own CSRF cookie) cannot reuse this token
    other = client(app)
    login(other, "ravi")
    nxt = other.get("/api/next").json()["item"]
    assert other.post(f"/rate/{nxt['item_id']}", data={"choice": "left", "csrf": csrf}).status_code == 403


def test_bearer_token_api_double_submit_stores_once(app, ws) -> None:
    token = create_token(ws, "rosa")
    c = client(app)
    h = {"Authorization": f"Bearer {token}"}
    assert c.get("/api/me", headers=h).json() == {"name": "rosa", "roles": ["rater"], "is_admin": False}
    item = c.get("/api/next", headers=h).json()["item"]
    body = {"item_id": item["item_id"], "choice": "right", "criteria": {"tone": "left"}, "rationale": "r"}
    first = c.post("/api/labels", json=body, headers=h)
    second = c.post("/api/labels", json={**body, "choice": "left"}, headers=h)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["label_id"] == second.json()["label_id"] and second.json()["created"] is False
    rows = [x for x in _labels(ws) if x[1] == "rosa"]
    assert len(rows) == 1
    mine = c.get("/api/labels", headers=h).json()
    assert [(x["item_id"], x["choice"]) for x in mine] == [(item["item_id"], "right")]
    r = c.post("/api/labels", json={**body, "criteria": {"nonsense": "left"}}, headers=h)
    assert r.status_code == 422


def test_model_output_is_escaped_on_the_comparison_page(ws) -> None:
    from rlhfops.web.app import create_app

    evil = "<script>window.pwned=1</script><img src=x onerror=alert(1)>"
    queue_pairs(ws, [PairIn("say <b>hi</b>", evil, "fine")], "x", 1)
    c = TestClient(create_app(ws.root))
    login(c, "rita")
    html = c.get("/rate").text
    assert "<script>window.pwned" not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html and "say &lt;b&gt;hi&lt;/b&gt;" in html
    r = c.get("/rate")
    assert "script-src 'self'" in r.headers["content-security-policy"]


def test_lead_sees_agreement_and_exports(app, ws) -> None:
    for rater in ("rita", "ravi"):
        while (item := fetch_next(ws, rater, gold_rate=0)) is not None:
            from rlhfops.annotate.queue import submit_label

            submit_label(ws, rater, item.item_id, "left" if item.left.startswith("good") else "right")
    c = client(app)
    csrf = login(c, "lena")
    page = c.get("/lead/agreement")
    assert page.status_code == 200 and "Overall agreement 100.0%" in page.text
    assert c.get("/api/agreement").json()["overall"]["percent_agreement"] == pytest.approx(1.0)
    r = c.post("/api/export", json={}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201 and r.json()["rows"] == 6
    assert ws.artifact(r.json()["artifact_id"]).kind == "preferences"
    assert c.get("/guidelines").status_code == 200
    assert "edge" not in c.get("/api/guidelines").text.lower()


def test_admin_pages(app, ws) -> None:
    c = client(app)
    csrf = login(c, "root")
    assert c.get("/admin/accounts").status_code == 200
    # accounts are only for workspace people (issue 20)
    r = c.post("/admin/accounts", data={"name": "nobody-here", "password": "a long password", "csrf": csrf})
    assert r.status_code == 400 and "not a workspace person" in r.text
    assert "nobody-here" not in c.get("/admin/accounts").text
    ws.add_person("newbie", "rater", "alice")
    r = c.post("/admin/accounts", data={"name": "newbie", "password": "a long password", "csrf": csrf})
    assert r.status_code == 200 and "newbie" in r.text
    login(client(app), "newbie", "a long password")
