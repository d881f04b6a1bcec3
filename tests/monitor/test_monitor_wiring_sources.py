"""What production is compared with: training prompts through lineage, the gate evaluation's outputs,
the refusal detector, window parsing and the rows of the last windows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from monitor_ws_helpers import add

from rlhfops.errors import ConfigError, DataError, UserError
from rlhfops.measures.refusal import is_refusal
from rlhfops.monitor.drift_run import DriftSettings, parse_span, recent_rows
from rlhfops.monitor.ingest import ProductionRecord
from rlhfops.monitor.outputs import response_metrics
from rlhfops.monitor.sources import (
    outputs_from_items,
    prompt_text,
    reference_outputs,
    training_prompts,
)


def _jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_prompt_text_shapes():
    assert prompt_text({"prompt": "Where is my order?"}) == "Where is my order?"
    msgs = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "second"},
    ]
    assert prompt_text({"prompt": msgs}) == "second"
    assert prompt_text({"messages": [*msgs, {"role": "assistant", "content": "reply"}]}) == "second"
    assert prompt_text({"prompt": "  "}) is None and prompt_text({"chosen": "x"}) is None


def test_training_prompts_follow_the_lineage_of_the_model(ws, tmp_path):
    demos = add(
        ws, tmp_path, "demonstrations", "d.jsonl", text=_jsonl([{"prompt": "demo q", "completion": "a"}])
    )
    prefs = add(
        ws,
        tmp_path,
        "preferences",
        "p.jsonl",
        text=_jsonl([{"prompt": [{"role": "user", "content": "pref q"}], "chosen": "a", "rejected": "b"}]),
    )
    add(ws, tmp_path, "prompts", "unrelated.jsonl", text=_jsonl([{"prompt": "not trained on"}]))
    sft = add(ws, tmp_path, "sft-model", "sft", parents=[demos])
    rm = add(ws, tmp_path, "reward-model", "rm", parents=[prefs])
    ppo = add(ws, tmp_path, "ppo-model", "ppo", parents=[sft, rm])
    tp = training_prompts(ws, ws.artifact(ppo))
    assert sorted(tp.prompts) == ["demo q", "pref q"] and set(tp.sources) == {demos, prefs}
    assert tp.note == f"lineage of ppo-model {ppo[:12]}"
    everything = training_prompts(ws, None)
    assert sorted(everything.prompts) == ["demo q", "not trained on", "pref q"]
    assert "no model" in everything.note


def test_training_prompts_sampled_and_missing(ws, tmp_path):
    pid = add(ws, tmp_path, "prompts", "many.jsonl", text=_jsonl([{"prompt": f"q{i}"} for i in range(50)]))
    tp = training_prompts(ws, None, max_prompts=10, seed=3)
    assert len(tp.prompts) == 10 == len(set(tp.prompts)) and tp.total == 50 and tp.sources == [pid]
    assert tp.prompts == training_prompts(ws, None, max_prompts=10, seed=3).prompts
    bare = add(ws, tmp_path, "ppo-model", "bare")
    with pytest.raises(UserError, match="no training prompts in the lineage of ppo-model"):
        training_prompts(ws, ws.artifact(bare))


def test_outputs_from_items():
    items = [{"response": "a b", "reward": 1}, {"output": "c", "reward": 0.5, "prompt": "p"}, {"x": 1}]
    ref = outputs_from_items(items, "src")
    assert ref.responses == ["a b", "c"] and ref.rewards == [1.0, 0.5] and ref.prompts == [None, "p"]
    partial = outputs_from_items([{"response": "a", "reward": 1}, {"response": "b"}], "src")
    assert partial.rewards is None
    assert outputs_from_items([{"response": "only one"}], "src") is None


def test_reference_is_the_latest_non_redteam_evaluation_of_the_model(ws, tmp_path):
    model = add(ws, tmp_path, "ppo-model", "m")
    items = {"items": [{"response": f"reply {i}"} for i in range(5)]}
    ev = add(ws, tmp_path, "evaluation", "ev.json", {"kind": "success"}, [model], text=json.dumps(items))
    probes = {"items": [{"response": "I can't help"} for _ in range(5)]}
    add(ws, tmp_path, "evaluation", "rt.json", {"kind": "redteam"}, [model], text=json.dumps(probes))
    ref, why = reference_outputs(ws, ws.artifact(model))
    assert why == "" and ref.responses[0] == "reply 0" and ref.source.startswith(f"evaluation {ev[:12]}")
    other = add(ws, tmp_path, "dpo-model", "other")
    none, why = reference_outputs(ws, ws.artifact(other))
    assert none is None and "no evaluation with per-item responses" in why
    f = tmp_path / "ref.jsonl"
    f.write_text(_jsonl([{"response": "x"}]))
    with pytest.raises(DataError, match="fewer than 2 rows"):
        reference_outputs(ws, None, f)


@pytest.mark.parametrize(
    "text,refused",
    [
        ("I'm sorry, but I can't help with that request.", True),
        ("I\u2019m sorry, I cannot share another customer's address.", True),
        ("As an AI, I am unable to process refunds.", True),
        ("Thanks for waiting! Your refund of $20 was issued today.", False),
        ("Your order ships Monday. Sorry for the delay.", False),
        # the one refusal rule (rlhfops.measures.refusal): anywhere in the reply, an apology alone is not one
        ("x" * 250 + " I cannot help with that.", True),
        ("I'm sorry to hear your parcel is late; I've sent a replacement.", False),
        ("My apologies for the wait: your refund was issued today.", False),
    ],
)
def test_is_refusal(text, refused):
    assert is_refusal(text) is refused


def test_response_metrics():
    m = response_metrics(["one two three", "I cannot do that"], rewards=[0.5, -1.0])
    np.testing.assert_array_equal(m["response_length"], [3.0, 4.0])
    assert m["refusal"].dtype == bool and m["refusal"].tolist() == [False, True]
    np.testing.assert_array_equal(m["reward_score"], [0.5, -1.0])
    assert "reward_score" not in response_metrics(["a", "b"])


def test_parse_span():
    assert parse_span("1000") == 1000
    assert parse_span("7d") == timedelta(days=7) and parse_span("12h") == timedelta(hours=12)
    assert parse_span("30m") == timedelta(minutes=30) and parse_span("1.5h") == timedelta(minutes=90)
    for bad in ("0", "soon", "-3d", "5w"):
        with pytest.raises(ConfigError, match="--window"):
            parse_span(bad)


def _recs(n):
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    return [ProductionRecord(f"p{i}", "r", "m", t0 + timedelta(minutes=i), line=i + 1) for i in range(n)]


def test_recent_rows_keep_the_last_windows_ending_at_the_newest_row():
    recs = _recs(1050)
    got = recent_rows(recs, DriftSettings(window=100, max_windows=3))
    assert len(got) == 300 and got[-1] is recs[-1]
    sliding = recent_rows(recs, DriftSettings(window=100, step=50, max_windows=4))
    assert len(sliding) == 250 and sliding[-1] is recs[-1]  # 100 + 3 * 50
    assert recent_rows(recs[:80], DriftSettings(window=100)) == recs[:80]
    odd = recent_rows(recs[:230], DriftSettings(window=100, max_windows=5))
    assert len(odd) == 200 and odd[-1] is recs[229]  # whole windows only
    by_time = recent_rows(recs, DriftSettings(window=timedelta(minutes=100), max_windows=2))
    assert len(by_time) == 200 and by_time[0] is recs[850]
