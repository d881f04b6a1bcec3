"""`prefs export --format` / `demos export --format` (issue 22): other tools' formats from the labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from web_helpers import pairs

from rlhfops.annotate.demos import demo_prompts, export_demos, queue_prompts, review_demo, save_demo
from rlhfops.annotate.export import export_preferences
from rlhfops.annotate.queue import fetch_next, queue_pairs, submit_label
from rlhfops.errors import UserError


def _label(ws, plan: dict[str, str]) -> None:
    """Each rater labels every pair: "good" -> the good reply, else the given choice for prompts 1 / 2."""
    for rater in ("rita", "ravi", "rosa"):
        while (item := fetch_next(ws, rater)) is not None:
            choice = plan.get(item.prompt, "good")
            if choice == "good":
                choice = "left" if item.left.startswith("good") else "right"
            submit_label(ws, rater, item.item_id, choice)


def test_openai_preference_refuses_ties_and_both_bad_with_count_and_first_item(ws, tmp_path: Path) -> None:
    queue_pairs(ws, pairs(5), "b1", 3)
    _label(ws, {"prompt 1": "tie", "prompt 2": "both_bad", "prompt 4": "tie"})
    out = tmp_path / "openai.jsonl"
    res = export_preferences(ws, out, "lena", min_labels=3, fmt="openai-preference")
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert res.rows == len(rows) == 2
    assert rows[0] == {
        "input": {"messages": [{"role": "user", "content": "prompt 0"}]},
        "preferred_output": [{"role": "assistant", "content": "good reply 0"}],
        "non_preferred_output": [{"role": "assistant", "content": "bad reply 0"}],
    }
    assert "2 tie (first at item 2)" in res.refused and "1 both_bad (first at item 3)" in res.refused
    art = ws.artifact(res.artifact_id)
    assert art.kind == "dataset" and art.meta["format"] == "openai-preference"  # not trainable preferences
    assert art.meta["refused"] == {"tie": 2, "both_bad": 1}
    trl = export_preferences(ws, tmp_path / "trl.jsonl", "lena", min_labels=3, fmt="trl-conversational")
    first = json.loads((tmp_path / "trl.jsonl").read_text().splitlines()[0])
    assert first == {
        "prompt": [{"role": "user", "content": "prompt 0"}],
        "chosen": [{"role": "assistant", "content": "good reply 0"}],
        "rejected": [{"role": "assistant", "content": "bad reply 0"}],
    }
    assert trl.rows == 2
    default = export_preferences(ws, tmp_path / "prefs.jsonl", "lena", min_labels=3)
    assert ws.artifact(default.artifact_id).kind == "preferences"
    assert set(json.loads((tmp_path / "prefs.jsonl").read_text().splitlines()[0])) >= {
        "prompt",
        "chosen",
        "agreement",
    }
    with pytest.raises(UserError, match="not a prefs export format"):
        export_preferences(ws, tmp_path / "x.jsonl", "lena", fmt="alpaca")
    assert not (tmp_path / "x.jsonl").exists()


def test_demos_export_formats(ws, tmp_path: Path) -> None:
    queue_prompts(ws, ["How do I return shoes?"], "b")
    item = demo_prompts(ws)[0]
    d = save_demo(ws, "dora", item["item_id"], "Send them back within 30 days.")
    review_demo(ws, "lena", d.id, True)
    n, art, refused = export_demos(ws, tmp_path / "chat.jsonl", "dora", fmt="openai-chat")
    assert n == 1 and not refused and ws.artifact(art).kind == "dataset"
    assert json.loads((tmp_path / "chat.jsonl").read_text()) == {
        "messages": [
            {"role": "user", "content": "How do I return shoes?"},
            {"role": "assistant", "content": "Send them back within 30 days."},
        ]
    }
    export_demos(ws, tmp_path / "alpaca.jsonl", "dora", fmt="alpaca", register=False)
    assert json.loads((tmp_path / "alpaca.jsonl").read_text()) == {
        "instruction": "How do I return shoes?",
        "input": "",
        "output": "Send them back within 30 days.",
    }
    n, art, _ = export_demos(ws, tmp_path / "demos.jsonl", "dora")
    assert ws.artifact(art).kind == "demonstrations"
