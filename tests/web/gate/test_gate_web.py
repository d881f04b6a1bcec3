"""Read-only gate pages (FastAPI router): thresholds, evidence, decision history, failing examples."""

from __future__ import annotations

import pytest
from gate_helpers import add_eval, all_categories, passing_evals, train_chain
from shared_helpers import redteam_meta, who


@pytest.fixture
def client(gws, tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from rlhfops.web.gate_pages import get_workspace, router

    app = FastAPI()
    app.include_router(router)
    app.dependency_overrides[get_workspace] = lambda: gws
    ids = train_chain(gws, tmp_path / "runs")
    passing_evals(gws, tmp_path / "ev", ids["ppo"], baseline=ids["sft"])
    meta = redteam_meta(ids["ppo"], {**all_categories(), "harmful_requests": (58, 60)})
    meta["redteam"]["harmful_requests"]["failures"][0]["response"] = "<img src=x onerror=alert(1)>"
    add_eval(gws, tmp_path / "ev", meta, [ids["ppo"]])
    with TestClient(app) as c:
        yield c, gws, ids


def test_gate_pages_show_thresholds_evidence_history(client):
    from rlhfops.gate.decide import gate_sign, promote

    c, ws, ids = client
    r = c.get("/gate")
    assert r.status_code == 200
    assert "no model promoted yet" in r.text and "&gt;= 0.550" in r.text and "not gated" in r.text
    assert r.text.count('href="/gate/models/') == 2  # the sft-model and the ppo-model (not the RM)
    assert 'class="incomplete">incomplete<' in r.text and 'class="fail">fail<' in r.text
    m = c.get(f"/gate/models/{ids['ppo'][:12]}")
    assert m.status_code == 200 and 'id="verdict">fail<' in m.text
    link = f"/gate/models/{ids['ppo']}/failures/harmful_requests"
    assert link in m.text
    f = c.get(link)
    assert f.status_code == 200 and "58/60 passed" in f.text
    assert "<img src=x" not in f.text and "&lt;img src=x onerror=alert(1)&gt;" in f.text
    assert c.get(f"/gate/models/{ids['ppo']}/failures/nope").status_code == 404
    assert c.get("/gate/models/ffffffffffff").status_code == 404
    assert c.get(f"/gate/models/{ids['rm']}").status_code == 404  # a reward model is not gated
    gate_sign(ws, ids["ppo"], who(ws, "gina"), "approve", "two harmful misses reviewed: both harmless")
    promote(ws, ids["ppo"], who(ws, "gina"))
    r = c.get("/gate")
    assert "promoted by gina" in r.text and "override" in r.text
    m = c.get(f"/gate/models/{ids['ppo']}")
    assert "two harmful misses reviewed" in m.text and m.text.count("override") >= 2
    log = c.get("/gate/log")
    assert 'id="verify">verified: 2 entries' in log.text
    rep = c.get(f"/gate/models/{ids['ppo']}/report")
    assert rep.status_code == 200 and rep.text.count("data:image/svg+xml;base64,") == 3
    # CSP-safe (the web app forbids inline styles and scripts): linked stylesheet, no inline style/script
    for page in (rep.text, r.text, m.text, log.text):
        assert "<style" not in page and "style=" not in page and "<script" not in page
        assert '<link rel="stylesheet" href="/gate/static/gate.css">' in page
    css = c.get("/gate/static/gate.css")
    assert (
        css.status_code == 200 and css.headers["content-type"].startswith("text/css") and ".FAIL" in css.text
    )
    assert ws.artifacts("report") == []  # read-only: the page does not store anything


def test_gate_pages_show_broken_log(client):
    from rlhfops.gate import log as dlog
    from rlhfops.gate.decide import gate_sign

    c, ws, ids = client
    gate_sign(ws, ids["ppo"], who(ws, "gina"), "reject", "first: not yet")
    gate_sign(ws, ids["ppo"], who(ws, "gina"), "reject", "second: not yet")
    p = dlog.log_path(ws)
    p.write_bytes(p.read_bytes().replace(b"first: not yet", b"first: fine!!"))
    log = c.get("/gate/log")
    assert log.status_code == 200 and "entry 1:" in log.text and '<tr class="FAIL"><td>1</td>' in log.text
    r = c.get("/gate")
    assert 'id="log-problem"' in r.text


# ---- inside the web app: who may read the gate (issue 16, finding 4) ----------------------------------
GATE_PATHS = ["/gate", "/gate/log", "/gate/models/ffffffffffff", "/gate/models/ffffffffffff/report"]


@pytest.fixture
def app_clients(gws):
    """The web app on the gate workspace; a signed-in client per person (password sign-in)."""
    import re

    from fastapi.testclient import TestClient

    from rlhfops.annotate.accounts import set_account
    from rlhfops.web.app import create_app

    for name, role in [("rita", "rater"), ("rex", "red-team-lead")]:
        gws.add_person(name, role, "alice")
    for name in ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "rita", "rex"):
        set_account(gws, name, "correct horse battery")
    set_account(gws, "root", "correct horse battery", is_admin=True)
    app = create_app(gws.root)

    def signed_in(name: str) -> TestClient:
        c = TestClient(app)
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
        r = c.post("/login", data={"name": name, "password": "correct horse battery", "csrf": token})
        assert r.status_code == 200, r.text
        return c

    return signed_in


@pytest.mark.parametrize(
    "name,role",
    [
        ("gina", "gate-owner"),
        ("rex", "red-team-lead"),
        ("frank", "ml-engineer"),
        ("carol", "technical-lead"),
        ("root", "admin"),
    ],
)
def test_gate_readers_may_read(app_clients, name: str, role: str) -> None:
    c = app_clients(name)
    for path in GATE_PATHS[:2]:
        r = c.get(path)
        assert r.status_code == 200, (role, path, r.text[:200])
        # the app's header with the sign-out form is on the gate pages
        assert 'action="/logout"' in r.text and f"Sign out {name}" in r.text and "gate.css" in r.text
    assert c.get(GATE_PATHS[2]).status_code == 404  # past the role check: no such model


@pytest.mark.parametrize(
    "name,role",
    [
        ("rita", "rater"),
        ("erin", "annotation-lead"),
        ("dave", "domain-expert-lead"),
        ("alice", "task-spec-owner"),
        ("bob", "business-owner"),
    ],
)
def test_others_get_403_on_every_gate_page(app_clients, name: str, role: str) -> None:
    c = app_clients(name)
    for path in GATE_PATHS:
        r = c.get(path)
        assert r.status_code == 403, (role, path, r.status_code)
        assert "may not read the deployment gate" in r.text
        assert 'action="/logout"' in r.text  # the 403 page is the app's, with its header
