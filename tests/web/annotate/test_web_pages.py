"""Pages beyond the comparison page: demonstrations (expert writes, lead accepts), the calibration page,
per-criterion choices from the form, and the gate and monitor routers mounted behind the login."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from web_helpers import PASSWORD, login, pairs

from rlhfops.annotate.demos import queue_prompts
from rlhfops.annotate.queue import queue_pairs
from rlhfops.workspace import annotation_tables as m


@pytest.fixture
def app(sqlite_ws):
    from rlhfops.web.app import create_app

    return create_app(sqlite_ws.root)


def test_demonstration_written_accepted_and_escaped(app, sqlite_ws) -> None:
    from rlhfops.annotate.accounts import set_account

    queue_prompts(sqlite_ws, ["Reply to <b>angry</b> customer"], "d1")
    sqlite_ws.add_person("erin", "domain-expert-lead", "alice")
    set_account(sqlite_ws, "erin", PASSWORD)
    c = TestClient(app)
    csrf = login(c, "erin")  # one domain-expert lead writes; another reviews
    listing = c.get("/demos")
    assert listing.status_code == 200 and "Reply to &lt;b&gt;angry&lt;/b&gt; customer" in listing.text
    item_id = c.get("/api/demos").json()[0]["item_id"]
    assert c.post(f"/demos/{item_id}", data={"text": "We are sorry."}).status_code == 403  # no CSRF
    r = c.post(f"/demos/{item_id}", data={"text": "We are sorry <script>x()</script>", "csrf": csrf})
    assert r.status_code == 200 and "We are sorry &lt;script&gt;x()&lt;/script&gt;" in r.text
    demo = c.get(f"/api/demos/{item_id}").json()["demos"][0]
    assert demo["status"] == "draft"
    lead = TestClient(app)
    lcsrf = login(lead, "dora")
    own = lead.post(
        f"/demos/{item_id}", data={"text": "My own reply.", "csrf": lcsrf}, follow_redirects=False
    )
    assert own.status_code == 303
    own_id = next(d["id"] for d in lead.get(f"/api/demos/{item_id}").json()["demos"] if d["author"] == "dora")
    r = lead.post(f"/demos/review/{own_id}", data={"decision": "accept", "item_id": item_id, "csrf": lcsrf})
    assert r.status_code == 400 and "another reviewer" in r.text  # nobody accepts their own
    r = lead.post(
        f"/demos/review/{demo['id']}", data={"decision": "accept", "item_id": item_id, "csrf": lcsrf}
    )
    assert r.status_code == 200
    statuses = {d["author"]: d["status"] for d in lead.get(f"/api/demos/{item_id}").json()["demos"]}
    assert statuses == {"erin": "accepted", "dora": "draft"}
    rater = TestClient(app)
    login(rater, "rita")
    assert rater.get("/demos").status_code == 403
    assert rater.get(f"/api/demos/{item_id}").status_code == 403


def test_calibration_page_and_criteria_from_the_form(app, sqlite_ws) -> None:
    queue_pairs(sqlite_ws, pairs(4), "b1", 3)
    lead = TestClient(app)
    csrf = login(lead, "lena")
    assert "no round yet" in lead.get("/lead/calibration").text
    r = lead.post("/lead/calibration", data={"n": "2", "csrf": csrf})
    assert r.status_code == 200 and "Round 1" in r.text and "open" in r.text
    rater = TestClient(app)
    rcsrf = login(rater, "rita")
    page = rater.get("/rate").text
    assert "Calibration item" in page and 'name="criterion_resolution"' in page
    item_id = int(page.split('data-item="')[1].split('"')[0])
    form = {
        "choice": "tie",
        "criterion_resolution": "left",
        "criterion_tone": "",
        "rationale": "same",
        "csrf": rcsrf,
    }
    assert rater.post(f"/rate/{item_id}", data=form, follow_redirects=False).status_code == 303
    with sqlite_ws.session() as s:
        label = s.scalars(sa.select(m.Label)).one()
    assert label.choice == "tie" and label.rationale == "same"
    assert label.criteria == {"resolution": "B" if label.swapped else "A"}
    assert rater.post(f"/rate/{item_id}", data={**form, "choice": "sideways"}).status_code == 400
    nxt = rater.get("/api/next").json()  # the round's second item, then production waits for the others
    rater.post(
        "/api/labels",
        json={"item_id": nxt["item"]["item_id"], "choice": "left"},
        headers={"X-CSRF-Token": rcsrf},
    )
    blocked = rater.get("/api/next").json()
    assert blocked["item"] is None and "calibration round 1 open" in blocked["blocked"]
    assert blocked["labelled"] == 2 and blocked["open"] == 0
    assert "Labelling paused" in rater.get("/rate").text


def test_gate_and_monitor_routers_are_mounted_behind_the_login(sqlite_ws) -> None:
    from rlhfops.web.app import create_app

    application = create_app(sqlite_ws.root)
    anonymous, c = TestClient(application), TestClient(application)
    login(c, "lena")
    assert c.get("/gate/no-such-page").status_code == 404  # the control: an unmounted path
    for path in ("/gate", "/gate/log", "/monitor", "/api/monitor/triggers"):
        assert anonymous.get(path).status_code == 401, path
        assert c.get(path).status_code in (200, 403), path  # mounted; 403: lena lacks a reader role
    assert c.get("/api/monitor/triggers").status_code == 200


def test_agreement_page_shows_gold_drift_and_turnover(app, sqlite_ws) -> None:
    from rlhfops.annotate.queue import fetch_next, submit_label

    queue_pairs(sqlite_ws, pairs(20, start=1000, gold_every=1), "gold", 1)  # gold answer: A (good reply)
    for n in range(20):
        item = fetch_next(sqlite_ws, "rita", gold_rate=1.0)
        good = "left" if item.left.startswith("good") else "right"
        bad = "right" if good == "left" else "left"
        submit_label(sqlite_ws, "rita", item.item_id, good if n < 10 else bad)  # drifts after 10
    c = TestClient(app)
    login(c, "lena")
    report = c.get("/api/agreement").json()
    (rita,) = report["gold"]["raters"]
    assert [w["accuracy"] for w in rita["windows"]] == [1.0, 0.0] and rita["flagged"]
    assert report["turnover"]["joined"] == ["rita"]
    page = c.get("/lead/agreement").text
    assert 'class="flagged"' in page and "labels 11-20: 0.0%" in page


def test_difficulty_from_imported_pairs_flags_annotation_collapse(app, sqlite_ws) -> None:
    from rlhfops.annotate.queue import PairIn, fetch_next, submit_label

    easy = [PairIn(f"easy {i}", f"good {i}", f"bad {i}", meta={"difficulty": 0.1}) for i in range(12)]
    hard = [PairIn(f"hard {i}", f"good {i}", f"bad {i}", meta={"difficulty": 0.9}) for i in range(12)]
    queue_pairs(sqlite_ws, easy + hard, "b1", 3)
    for n, rater in enumerate(("rita", "ravi", "rosa")):
        j = 0
        while (item := fetch_next(sqlite_ws, rater, gold_rate=0)) is not None:
            good = "left" if item.left.startswith("good") else "right"
            bad = "right" if good == "left" else "left"
            j += 1
            # easy pairs: everyone agrees; hard pairs: choices cycle, agreement at or below chance
            choice = good if item.prompt.startswith("easy") else (good, bad, "tie")[(n + j) % 3]
            submit_label(sqlite_ws, rater, item.item_id, choice)
    c = TestClient(app)
    login(c, "lena")
    diff = c.get("/api/agreement").json()["difficulty"]
    assert diff["method"] == "given"
    easy_b, hard_b = diff["buckets"][0], diff["buckets"][-1]
    assert easy_b["percent_agreement"] == pytest.approx(1.0) and hard_b["percent_agreement"] < 0.5
    assert diff["collapse"] is True
    assert "annotation collapse" in c.get("/lead/agreement").text


def test_unknown_path_gets_the_html_error_page_and_the_api_json(app) -> None:
    c = TestClient(app)
    page = c.get("/no-such-page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert '<html lang="en">' in page.text and "<title>Error 404" in page.text
    api = c.get("/api/no-such-route")
    assert api.status_code == 404 and api.json() == {"detail": "Not Found"}
