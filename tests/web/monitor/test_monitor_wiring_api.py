"""The monitoring API router on a bare FastAPI app: events validated then stored; open triggers listed."""

from __future__ import annotations

import pytest

fastapi = pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from rlhfops.monitor.logs import log_artifacts, production_records  # noqa: E402
from rlhfops.web import monitor_api  # noqa: E402

GOOD = {
    "prompt": "Where is my order?",
    "response": "Today.",
    "model_id": "m1",
    "time": "2025-03-01T10:00:00Z",
}


@pytest.fixture
def client(ws):
    app = fastapi.FastAPI()
    app.include_router(monitor_api.router)
    app.dependency_overrides[monitor_api.get_workspace] = lambda: ws
    app.dependency_overrides[monitor_api.get_person] = lambda: "api-user"
    with TestClient(app) as c:
        yield c


def test_post_events_stores_a_production_log(client, ws):
    events = [{**GOOD, "id": "a", "task_completed": True}, {**GOOD, "id": "b", "review_minutes": 1.5}]
    r = client.post("/api/monitor/events", json={"events": events})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["rows"] == 2 and body["models"] == {"m1": 2} and body["already_stored"] is False
    (art,) = log_artifacts(ws)
    assert art.id == body["artifact_id"] and art.creator == "api-user"
    assert art.meta["source"].startswith("api-events-")
    recs, _, _ = production_records(ws)
    assert [(r.id, r.task_completed, r.review_minutes) for r in recs] == [("a", True, None), ("b", None, 1.5)]
    again = client.post("/api/monitor/events", json=events)  # a bare list works too; same content
    assert again.status_code == 201 and again.json()["already_stored"] is True


@pytest.mark.parametrize(
    "events,detail",
    [
        ([GOOD, {**GOOD, "time": "later"}, GOOD], "events:2: time: 'later' is not an ISO 8601"),
        ([GOOD, GOOD, {**GOOD, "client_flag": "perhaps"}], "events:3: client_flag: expected true/false"),
        ([{**GOOD, "prompt": ""}, 7], "events:1: prompt: is empty (2 bad rows in all; also rows 2)"),
        ([], "events: no rows"),
    ],
)
def test_bad_events_are_refused_with_row_numbers_and_nothing_stored(client, ws, events, detail):
    r = client.post("/api/monitor/events", json={"events": events})
    assert r.status_code == 422 and detail in r.json()["detail"]
    assert ws.artifacts() == []


def test_body_must_be_a_list(client, ws):
    r = client.post("/api/monitor/events", json={"rows": [GOOD]})
    assert r.status_code == 422 and "expected a JSON list" in r.json()["detail"]


def test_get_open_triggers(client, ws):
    assert client.get("/api/monitor/triggers").json() == []
    tid = ws.open_trigger(3, "input_drift", "AUC 0.8 > 0.55", "monitor:input_drift:abc")
    ws.open_trigger(5, "new_edge_case", "harmful/p1 x1", "monitor:new_edge_case:def")
    ws.close_trigger(tid, "erin")
    (t,) = client.get("/api/monitor/triggers").json()
    assert (t["play"], t["play_name"], t["rule"], t["evidence"]) == (
        5,
        "red team + gate",
        "new_edge_case",
        "harmful/p1 x1",
    )
