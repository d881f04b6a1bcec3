"""`rlhfops monitor ingest|drift|logs` and `rlhfops triggers` end to end in a temporary workspace.

The embedder is the hashing test double (monitor_fake_embed); everything else is real: the workspace
database and artifact store, the drift tests, the trigger table, the CLI.
"""

from __future__ import annotations

import json
import random

import pytest
from monitor_drift_texts import other_task_prompts, support_prompts
from monitor_fake_embed import use_fake_embedder

from rlhfops.cli.main import main


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _production(path, prompts, refuse_every=0, words=(1, 5)):
    rows = []
    for i, p in enumerate(prompts):
        refusal = refuse_every and i % refuse_every == 0
        resp = (
            "I'm sorry, I can't help with that." if refusal else "We will help. " * (words[0] + i % words[1])
        )
        rows.append(
            {
                "id": f"req{i}",
                "prompt": p,
                "response": resp,
                "model_id": "m1",
                "time": f"2025-03-01T{i // 60:02d}:{i % 60:02d}:00Z",
                "task_completed": i % 3 != 0,
                "review_minutes": (i % 5) / 2,
                "client_flag": i % 20 == 0,
            }
        )
    return _write_jsonl(path, rows)


@pytest.fixture
def deployed(ws, tmp_path, monkeypatch):
    """A ppo-model trained on 300 support prompts, with a gate evaluation holding per-item responses."""
    use_fake_embedder(monkeypatch)
    train = _write_jsonl(tmp_path / "train.jsonl", [{"prompt": p} for p in support_prompts(300, 1)])
    prompts_id = ws.register_artifact("prompts", train, [], "frank", {})
    model_dir = tmp_path / "ppo"
    model_dir.mkdir()
    (model_dir / "w.bin").write_bytes(b"weights")
    model = ws.register_artifact("ppo-model", model_dir, [prompts_id], "frank", {"eval": {"alarms": []}})
    items = [
        {"prompt": "q", "response": "We will help. " * (1 + i % 5), "reward": 0.1 * i} for i in range(120)
    ]
    ev = tmp_path / "eval.json"
    ev.write_text(json.dumps({"suite": "support-heldout", "items": items}))
    ws.register_artifact(
        "evaluation", ev, [model], "frank", {"model": model, "kind": "success", "alarms": []}
    )
    ws.record_baseline({"task_completion_rate": 0.9, "client_flag_rate": 0.05}, "test", "alice", n=500)
    return {"model": model, "prompts": prompts_id}


def _run_json(capsys, argv):
    capsys.readouterr()
    main(argv)
    return json.loads(capsys.readouterr().out)


def test_ingest_drift_triggers_status_close(ws, deployed, tmp_path, capsys):
    rows = support_prompts(210, 2) + other_task_prompts(90, 3)
    random.Random(0).shuffle(rows)
    planted = set(other_task_prompts(90, 3))
    prod = _production(tmp_path / "prod.jsonl", rows, refuse_every=5)
    ingested = _run_json(capsys, ["monitor", "ingest", str(prod), "--json"])
    assert ingested["rows"] == 300 and not ingested["already_stored"]

    out = _run_json(capsys, ["monitor", "drift", "--window", "300", "--json"])
    report, rid = out["report"], out["report_id"]
    latest = report["input"]["latest"]
    assert latest["drifted"] and latest["auc"] > 0.55 and latest["mmd_p"] < 0.05
    assert latest["new_clusters"], "the planted task should show up as new clusters"
    examples = [e["prompt"] for c in latest["new_clusters"] for e in c["examples"]]
    assert sum(e in planted for e in examples) >= 0.8 * len(examples)
    # output drift vs the gate evaluation: refusals went 0 -> 20%
    metrics = {m["name"]: m for m in report["output"]["metrics"]}
    assert metrics["refusal"]["drifted"] and metrics["refusal"]["production_value"] == pytest.approx(0.2)
    assert metrics["refusal"]["reference_value"] == 0.0
    assert "reward score not compared" in report["output"]["skipped"]
    assert report["output"]["reference"].startswith("evaluation ")
    business = {b["name"]: b for b in report["business"]}
    tcr = business["task_completion_rate"]
    assert tcr["current"] == pytest.approx(2 / 3) and tcr["better"] is False and tcr["ci_high"] < 0.9
    # the report is an artifact whose lineage reaches the model, the training prompts and the log
    art = ws.artifact(rid)
    assert art.meta["monitor"] == "drift-report" and art.meta["input_drifted"] is True
    assert {deployed["model"], deployed["prompts"], ingested["artifact_id"]} <= set(art.parents)

    fired = {(t["rule"], t["play"]): t for t in out["triggers"]}
    assert set(fired) == {("net_new_task", 1), ("input_drift", 3), ("output_drift", 3)}
    batch = ws.artifact(fired[("input_drift", 3)]["comparison_batch"])
    batch_prompts = [json.loads(x)["prompt"] for x in batch.path.read_text().splitlines()]
    assert len(batch_prompts) == 50 and sum(p in planted for p in batch_prompts) >= 45
    assert batch.parents == (rid,)

    listed = _run_json(capsys, ["triggers", "--json"])
    assert {(t["rule"], t["play"]) for t in listed} == set(fired)
    main(["triggers"])
    text = capsys.readouterr().out
    assert "-> Play 1 (task spec)" in text and "comparison batch: prompts artifact" in text
    status = _run_json(capsys, ["status", "--json"])
    assert {(t["rule"], t["play"]) for t in status["triggers"]} >= set(fired)
    main(["status"])
    plain = capsys.readouterr().out
    assert all(f"#{t['id']} Play {t['play']} ({t['rule']})" in plain for t in listed), plain

    first = listed[0]["id"]
    main(["triggers", "close", str(first), "--as", "alice"])
    assert f"trigger {first} closed by alice" in capsys.readouterr().out
    assert first not in {t["id"] for t in _run_json(capsys, ["triggers", "list", "--json"])}
    # the same facts again: nothing re-opened
    again = _run_json(capsys, ["triggers", "check", "--json"])
    assert again["firings"] and not any(f["new"] for f in again["firings"])


def test_same_distribution_production_is_quiet(ws, deployed, tmp_path, capsys):
    prod = _production(tmp_path / "prod.jsonl", support_prompts(300, 7))
    main(["monitor", "ingest", str(prod)])
    out = _run_json(capsys, ["monitor", "drift", "--window", "300", "--json"])
    latest = out["report"]["input"]["latest"]
    assert not latest["drifted"], latest["evidence"]
    metrics = {m["name"]: m for m in out["report"]["output"]["metrics"]}
    assert set(metrics) == {"response_length", "refusal"}
    assert not any(m["drifted"] for m in metrics.values())  # same lengths, no refusals on either side
    assert out["triggers"] == [] and ws.triggers() == []


def test_sliding_time_windows_newest_decides(ws, deployed, tmp_path, capsys):
    # first 4 hours: support traffic; last 2 hours: another task
    rows = support_prompts(240, 2) + other_task_prompts(120, 3)
    prod = _production(tmp_path / "prod.jsonl", rows)
    main(["monitor", "ingest", str(prod)])
    out = _run_json(
        capsys, ["monitor", "drift", "--window", "2h", "--windows", "3", "--json", "--no-triggers"]
    )
    wins = out["report"]["input"]["windows"]
    assert [w["drifted"] for w in wins] == [False, False, True]
    assert "triggers" not in out and ws.triggers() == []


def test_ingest_refuses_malformed_rows_with_row_numbers_and_writes_nothing(ws, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "prompt,response,model_id,time,task_completed\n"
        "Where is my order?,Today,m1,2025-03-01T10:00:00Z,yes\n"
        "Refund?,No,m1,not-a-time,no\n"
        "Refund?,No,m1,2025-03-01T10:00:00Z,maybe\n"
    )
    before = sorted(p.name for p in ws.store_dir.iterdir()) if ws.store_dir.exists() else []
    with pytest.raises(SystemExit) as ex:
        main(["monitor", "ingest", str(bad)])
    assert ex.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}:3: time: 'not-a-time'") and "also lines 4" in err
    assert "nothing was imported" in err and "\n" not in err
    assert ws.artifacts() == []
    after = sorted(p.name for p in ws.store_dir.iterdir()) if ws.store_dir.exists() else []
    assert after == before


def test_ingest_csv_and_logs_listing(ws, tmp_path, capsys):
    good = tmp_path / "good.csv"
    good.write_text(
        "prompt,response,model_id,time,client_flag\n"
        'Where is my order?,"Today, by noon",m1,2025-03-01T10:00:00Z,0\n'
        "Refund?,No,m2,2025-03-02T10:00:00Z,1\n"
    )
    main(["monitor", "ingest", str(good)])
    out = capsys.readouterr().out
    assert "2 rows from" in out and "m1 (1), m2 (1)" in out
    main(["monitor", "ingest", str(good)])
    assert "already stored" in capsys.readouterr().out
    logs = _run_json(capsys, ["monitor", "logs", "--json"])
    assert len(logs) == 1 and logs[0]["meta"]["rows"] == 2 and logs[0]["meta"]["monitor"] == "production-log"


def test_drift_user_errors(ws, deployed, tmp_path, capsys):
    with pytest.raises(SystemExit) as ex:
        main(["monitor", "drift"])
    assert ex.value.code == 2 and "no production records" in capsys.readouterr().err
    prod = _production(tmp_path / "prod.jsonl", support_prompts(20, 7))
    main(["monitor", "ingest", str(prod)])
    capsys.readouterr()
    for argv, message in [
        (["--window", "300"], "a window needs at least 30"),
        (["--set", "alpah=0.1"], "monitor.drift.alpah"),
        (["--window", "soon"], "--window 'soon'"),
        (["--since", "yesterday"], "--since 'yesterday'"),
    ]:
        with pytest.raises(SystemExit) as ex:
            main(["monitor", "drift", *argv])
        err = capsys.readouterr().err
        assert ex.value.code == 2 and message in err, err


def test_triggers_rules_init_and_tuned_table(ws, tmp_path, capsys):
    main(["triggers", "rules", "--init"])
    out = capsys.readouterr().out
    path = ws.root / "triggers.yaml"
    assert path.is_file() and "rater_turnover: -> Play 3 when rater_turnover(threshold=0.3)" in out
    path.write_text(path.read_text().replace("threshold: 0.30", "threshold: 0.10"))
    for i in range(4):
        ws.add_person(f"old{i}", "rater", "erin")
    prefs = _write_jsonl(tmp_path / "prefs.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}])
    pid = ws.register_artifact("preferences", prefs, [], "erin", {"agreement": 0.7})
    rm = tmp_path / "rm.bin"
    rm.write_bytes(b"rm")
    ws.register_artifact("reward-model", rm, [pid], "erin", {})
    ws.add_person("new0", "rater", "erin")  # 1 of 5 = 20%: over the tuned 10%, under the default 30%
    res = _run_json(capsys, ["triggers", "check", "--json"])
    assert res["rules"].endswith("triggers.yaml")
    assert [(f["rule"], f["play"], f["new"]) for f in res["firings"]] == [("rater_turnover", 3, True)]
    res = _run_json(capsys, ["triggers", "check", "--json", "--rules", str(_default_rules(tmp_path))])
    assert res["firings"] == []
    with pytest.raises(SystemExit):
        main(["triggers", "rules", "--init"])
    assert "already exists" in capsys.readouterr().err


def _default_rules(tmp_path):
    from rlhfops.monitor.triggers import init_rules_file

    return init_rules_file(tmp_path, "default_copy.yaml")


def test_triggers_open_by_hand_and_close(ws, capsys):
    main(["triggers", "open", "--play", "1", "--rule", "net_new_task", "--evidence", "invoice disputes"])
    out = capsys.readouterr().out
    assert "-> Play 1 [net_new_task] by alice" in out
    (t,) = ws.triggers()
    assert (t.play, t.rule, t.evidence, t.source) == (1, "net_new_task", "invoice disputes", "manual:alice")
    for argv in (["--play", "6"], ["--play", "1", "--evidence", " "]):
        with pytest.raises(SystemExit) as ex:
            main(["triggers", "open", "--rule", "x", "--evidence", "e", *argv])
        assert ex.value.code == 2
    main(["triggers", "close", str(t.id)])
    assert ws.triggers() == []
    with pytest.raises(SystemExit) as ex:
        main(["triggers", "close", str(t.id)])
    assert ex.value.code == 2 and "no open trigger" in capsys.readouterr().err
