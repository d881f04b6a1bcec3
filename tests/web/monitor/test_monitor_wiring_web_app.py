"""The monitor router and page inside the real web app (mounted by create_app): behind the login, the
signed-in user is the creator, the page shows open triggers and the latest drift report, escaped."""

from __future__ import annotations

import json
import random

import pytest

accounts = pytest.importorskip("rlhfops.annotate.accounts")


@pytest.fixture
def app_client(ws):
    from fastapi.testclient import TestClient

    from rlhfops.web.app import create_app

    ws.add_person("mona", "ml-engineer", "alice")  # reads monitoring and posts production logs
    accounts.set_account(ws, "mona", "correct horse battery")
    token = accounts.create_token(ws, "mona")
    with TestClient(create_app(ws.root)) as client:
        yield client, {"Authorization": f"Bearer {token}"}


def test_api_behind_login_and_creator_is_the_signed_in_user(ws, app_client):
    client, auth = app_client
    assert client.get("/api/monitor/triggers").status_code == 401
    event = {"prompt": "Where is my order?", "response": "Today.", "model_id": "m1", "time": "2025-03-01"}
    assert client.post("/api/monitor/events", json=[event]).status_code in (401, 403)
    r = client.post("/api/monitor/events", json=[event, {**event, "id": "2"}], headers=auth)
    assert r.status_code == 201, r.text
    assert ws.artifact(r.json()["artifact_id"]).creator == "mona"
    bad = client.post("/api/monitor/events", json=[event, {**event, "time": "soon"}], headers=auth)
    assert bad.status_code == 422 and "events:2: time" in bad.text
    assert client.get("/api/monitor/triggers", headers=auth).json() == []


def test_monitor_page_shows_triggers_and_the_latest_drift_report(ws, app_client, tmp_path, monkeypatch):
    from monitor_drift_texts import other_task_prompts, support_prompts
    from monitor_fake_embed import use_fake_embedder

    from rlhfops.monitor.drift_run import DriftSettings, run_drift
    from rlhfops.monitor.logs import ingest_to_workspace

    client, auth = app_client
    assert client.get("/monitor").status_code == 401
    page = client.get("/monitor", headers=auth)
    assert page.status_code == 200 and "No open triggers." in page.text and "No drift report yet" in page.text

    use_fake_embedder(monkeypatch)
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in support_prompts(200, 1)))
    ws.register_artifact("prompts", train, [], "frank", {})
    prompts = support_prompts(140, 2) + other_task_prompts(60, 3) + ["<script>alert(1)</script> refund?"] * 10
    random.Random(0).shuffle(prompts)
    prod = tmp_path / "prod.jsonl"
    prod.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": p,
                    "response": "ok",
                    "model_id": "m",
                    "time": f"2025-03-01T{i // 60:02d}:{i % 60:02d}",
                }
            )
            + "\n"
            for i, p in enumerate(prompts)
        )
    )
    ingest_to_workspace(ws, prod, "alice")
    run = run_drift(ws, DriftSettings(window=210), "alice")
    assert run.check is not None and run.check.opened
    ws.open_trigger(5, "new_edge_case", "probe <b>x</b> failed", "manual:test")
    page = client.get("/monitor", headers=auth).text
    assert f"Report {run.report_id[:12]}" in page and "Latest drift report" in page
    for t in ws.triggers():
        assert f"<td>{t.id}</td>" in page and f"Play {t.play}" in page
    assert "probe &lt;b&gt;x&lt;/b&gt; failed" in page and "<b>x</b>" not in page
    assert "<script>alert(1)</script>" not in page
    assert "New cluster:" in page


# ---- who may read and write monitoring; CSRF and the body limit (issue 16, finding 4) ------------------
EVENT = {"prompt": "Where is my order?", "response": "Today.", "model_id": "m1", "time": "2025-03-01"}


@pytest.fixture
def signed_in(ws):
    """A client signed in with a password (session cookie) per person; returns (client, csrf)."""
    import re

    from fastapi.testclient import TestClient

    from rlhfops.web.app import create_app

    for name, role in [("rita", "rater"), ("dave", "domain-expert-lead"), ("gina", "gate-owner")]:
        ws.add_person(name, role, "alice")
    for name in ("alice", "bob", "carol", "erin", "frank", "rita", "dave", "gina"):
        accounts.set_account(ws, name, "correct horse battery")
    accounts.set_account(ws, "root", "correct horse battery", is_admin=True)
    app = create_app(ws.root)

    def login(name: str):
        c = TestClient(app)
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
        r = c.post("/login", data={"name": name, "password": "correct horse battery", "csrf": token})
        assert r.status_code == 200, r.text
        return c, re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)

    return login


@pytest.mark.parametrize("name", ["alice", "carol", "erin", "frank", "gina", "root"])
def test_monitor_readers_may_read(signed_in, name: str) -> None:
    c, _csrf = signed_in(name)
    page = c.get("/monitor")
    assert page.status_code == 200 and f"Sign out {name}" in page.text
    assert c.get("/api/monitor/triggers").status_code == 200


@pytest.mark.parametrize("name", ["rita", "dave", "bob"])
def test_others_get_403_on_monitoring(signed_in, name: str) -> None:
    c, csrf = signed_in(name)
    page = c.get("/monitor")
    assert (
        page.status_code == 403 and "may not read monitoring" in page.text and 'action="/logout"' in page.text
    )
    assert c.get("/api/monitor/triggers").status_code == 403
    r = c.post("/api/monitor/events", json=[EVENT], headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403


@pytest.mark.parametrize("name,allowed", [("frank", True), ("root", True), ("gina", False), ("erin", False)])
def test_posting_events_needs_a_writer_role(ws, signed_in, name: str, allowed: bool) -> None:
    from rlhfops.monitor.logs import log_artifacts

    c, csrf = signed_in(name)
    r = c.post("/api/monitor/events", json=[EVENT], headers={"X-CSRF-Token": csrf})
    assert r.status_code == (201 if allowed else 403), r.text
    assert len(log_artifacts(ws)) == (1 if allowed else 0)


def test_posting_events_with_the_session_needs_the_csrf_header(ws, signed_in) -> None:
    from rlhfops.monitor.logs import log_artifacts

    c, csrf = signed_in("frank")
    assert c.post("/api/monitor/events", json=[EVENT]).status_code == 403
    assert c.post("/api/monitor/events", json=[EVENT], headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert log_artifacts(ws) == []
    assert c.post("/api/monitor/events", json=[EVENT], headers={"X-CSRF-Token": csrf}).status_code == 201


def test_a_body_over_the_limit_is_413_and_nothing_is_stored(ws, app_client) -> None:
    from rlhfops.monitor.logs import log_artifacts

    client, auth = app_client  # mona, ml-engineer, bearer token (no CSRF needed)
    row = {**EVENT, "prompt": "x" * 10_000}
    big = json.dumps([{**row, "id": str(i)} for i in range(1100)])  # ~11 MB
    assert len(big) > 10 * 1024 * 1024
    r = client.post("/api/monitor/events", content=big, headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert log_artifacts(ws) == []
