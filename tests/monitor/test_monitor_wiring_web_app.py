"""The monitor router and page inside the real web app (EXTRA_ROUTERS): behind the login, the signed-in
user is the creator, the page shows open triggers and the latest drift report, escaped."""

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
