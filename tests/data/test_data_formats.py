"""Export formats (data/formats.py): each checked against its documented schema and documented example.

The schemas below are written from the formats' documentation, field by field:
* OpenAI preference (DPO) fine-tuning:
  https://developers.openai.com/api/docs/guides/direct-preference-optimization
* TRL conversational preference (explicit prompt): https://huggingface.co/docs/trl/dataset_formats
* OpenAI chat fine-tuning: https://developers.openai.com/api/docs/guides/supervised-fine-tuning
  (the example file of openai/openai-node, examples/fine-tuning-data.jsonl)
* Stanford Alpaca: https://github.com/tatsu-lab/stanford_alpaca#data-release
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shared_helpers import run_cli

from rlhfops.data.formats import DemoIn, PrefIn, convert, export_file
from rlhfops.errors import UserError

ROLES = {"system", "user", "assistant"}


def _msgs_ok(msgs, roles=ROLES) -> bool:
    return (
        isinstance(msgs, list)
        and len(msgs) > 0
        and all(
            isinstance(m, dict)
            and set(m) == {"role", "content"}
            and m["role"] in roles
            and isinstance(m["content"], str)
            for m in msgs
        )
    )


def openai_preference_ok(row) -> bool:
    """input.messages (system/user/assistant), optional tools / parallel_tool_calls; each output exactly
    one assistant message (the docs: 'we only train on one-turn conversations')."""
    inp = row.get("input")
    return (
        set(row) == {"input", "preferred_output", "non_preferred_output"}
        and isinstance(inp, dict)
        and set(inp) <= {"messages", "tools", "parallel_tool_calls"}
        and _msgs_ok(inp["messages"])
        and inp["messages"][-1]["role"] == "user"
        and all(m["role"] != "assistant" for m in inp["messages"])
        and all(
            _msgs_ok(row[k], {"assistant"}) and len(row[k]) == 1
            for k in ("preferred_output", "non_preferred_output")
        )
    )


def trl_conversational_ok(row) -> bool:
    return (
        set(row) == {"prompt", "chosen", "rejected"}
        and _msgs_ok(row["prompt"])
        and all(_msgs_ok(row[k], {"assistant"}) for k in ("chosen", "rejected"))
    )


def openai_chat_ok(row) -> bool:
    return (
        set(row) == {"messages"} and _msgs_ok(row["messages"]) and row["messages"][-1]["role"] == "assistant"
    )


def alpaca_ok(row) -> bool:
    return set(row) == {"instruction", "input", "output"} and all(isinstance(v, str) for v in row.values())


# The documented examples (shortened text; structure as documented).
OPENAI_PREF_DOC = {
    "input": {
        "messages": [{"role": "user", "content": "Hello, can you tell me how cold San Francisco is today?"}],
        "tools": [],
        "parallel_tool_calls": True,
    },
    "preferred_output": [
        {"role": "assistant", "content": "Today in San Francisco, it is not quite cold as expected."}
    ],
    "non_preferred_output": [
        {"role": "assistant", "content": "It is not particularly cold in San Francisco today."}
    ],
}
TRL_PREF_DOC = {
    "prompt": [{"role": "user", "content": "What color is the sky?"}],
    "chosen": [{"role": "assistant", "content": "It is blue."}],
    "rejected": [{"role": "assistant", "content": "It is green."}],
}
OPENAI_CHAT_DOC = {
    "messages": [
        {"role": "system", "content": "Marv is a factual chatbot that is also sarcastic."},
        {"role": "user", "content": "What's the capital of France?"},
        {"role": "assistant", "content": "Paris, as if everyone doesn't know that already."},
    ]
}
ALPACA_DOC = {"instruction": "Give three tips for staying healthy.", "input": "", "output": "1. Eat well."}


def test_documented_examples_pass_the_schemas_and_broken_ones_fail() -> None:
    assert openai_preference_ok(OPENAI_PREF_DOC) and trl_conversational_ok(TRL_PREF_DOC)
    assert openai_chat_ok(OPENAI_CHAT_DOC) and alpaca_ok(ALPACA_DOC)
    assert not openai_preference_ok({**OPENAI_PREF_DOC, "preferred_output": "text"})
    assert not trl_conversational_ok({**TRL_PREF_DOC, "chosen": "It is blue."})
    assert not openai_chat_ok({"messages": OPENAI_CHAT_DOC["messages"][:2]})


def test_documented_examples_are_what_the_converters_write() -> None:
    doc = OPENAI_PREF_DOC
    p = PrefIn(
        doc["input"]["messages"],
        doc["preferred_output"][0]["content"],
        doc["non_preferred_output"][0]["content"],
        "x:1",
    )
    row = convert("prefs", "openai-preference", [p]).rows[0]
    assert openai_preference_ok(row)
    assert row == {k: v for k, v in doc.items()} | {"input": {"messages": doc["input"]["messages"]}}
    t = PrefIn(TRL_PREF_DOC["prompt"], "It is blue.", "It is green.", "x:1")
    assert convert("prefs", "trl-conversational", [t]).rows == [TRL_PREF_DOC]
    msgs = OPENAI_CHAT_DOC["messages"]
    assert convert("demos", "openai-chat", [DemoIn(msgs[:2], msgs[2]["content"], "x:1")]).rows == [
        OPENAI_CHAT_DOC
    ]
    a = DemoIn([{"role": "user", "content": ALPACA_DOC["instruction"]}], ALPACA_DOC["output"], "x:1")
    assert convert("demos", "alpaca", [a]).rows == [ALPACA_DOC]


MULTI = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello"},
    {"role": "user", "content": "Where is my order?"},
]
SYSTEM = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is my order?"}]
SINGLE = [{"role": "user", "content": "Where is my order?"}]


def test_refusals_are_counted_with_the_first_place_and_edges_on_both_sides() -> None:
    prefs = [
        PrefIn(SINGLE, "a", "b", "f:1"),
        PrefIn(MULTI, "a", "b", "f:2"),
        PrefIn(MULTI, "a", "b", "f:3"),
        PrefIn(SYSTEM, "a", "b", "f:4"),
    ]
    conv = convert("prefs", "openai-preference", prefs)
    assert len(conv.rows) == 2 and all(
        openai_preference_ok(r) for r in conv.rows
    )  # system + user is one turn
    assert conv.refused["multi_turn"].count == 2 and conv.refused["multi_turn"].first == "f:2"
    assert "refused 2 row(s)" in conv.summary() and "first at f:2" in conv.summary()
    tool = [{"role": "user", "content": "q"}, {"role": "tool", "content": "42"}]
    assert (
        convert("prefs", "openai-preference", [PrefIn(tool, "a", "b", "f:9")]).refused["tool_message"].first
        == "f:9"
    )
    trl = convert("prefs", "trl-conversational", prefs)  # TRL holds every conversation
    assert len(trl.rows) == 4 and not trl.refused and all(trl_conversational_ok(r) for r in trl.rows)
    demos = [DemoIn(SINGLE, "c", "d:1"), DemoIn(SYSTEM, "c", "d:2"), DemoIn(MULTI, "c", "d:3")]
    al = convert("demos", "alpaca", demos)
    assert [r["instruction"] for r in al.rows] == ["Where is my order?"]
    assert al.refused["system_message"].first == "d:2" and al.refused["multi_turn"].first == "d:3"
    oc = convert("demos", "openai-chat", demos)
    assert len(oc.rows) == 3 and all(openai_chat_ok(r) for r in oc.rows)
    with pytest.raises(UserError, match="not a prefs export format; use one of rlhfops, openai-preference"):
        convert("prefs", "alpaca", prefs)


def _write(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_data_export_cli_names_file_and_line_and_writes_nothing_when_no_row_fits(
    tmp_path: Path, capsys
) -> None:
    src = _write(
        tmp_path / "prefs.jsonl",
        [
            {"prompt": "Where is my order?", "chosen": "On its way.", "rejected": "No idea."},
            {"prompt": MULTI, "chosen": "On its way.", "rejected": "No idea."},
        ],
    )
    out = tmp_path / "openai.jsonl"
    code, stdout, err = run_cli(
        ["data", "export", str(src), "--format", "openai-preference", "-o", str(out)], capsys
    )
    assert code == 0, err
    assert "wrote 1 prefs row(s)" in stdout
    assert f"1 multi_turn (first at {src}:2)" in stdout
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 1 and openai_preference_ok(rows[0])
    code, _, err = run_cli(
        ["data", "export", str(src), "--format", "openai-preference", "-o", str(out)], capsys
    )
    assert code == 2 and "exists; pass --force" in err
    only_multi = _write(tmp_path / "multi.jsonl", [{"prompt": MULTI, "chosen": "x", "rejected": "y"}])
    none_out = tmp_path / "none.jsonl"
    with pytest.raises(UserError, match=r"no row fits --format openai-preference; refused 1 row"):
        export_file(only_multi, "openai-preference", none_out)
    assert not none_out.exists()
    demos = _write(
        tmp_path / "demos.jsonl",
        [{"prompt": "q", "completion": "a"}, {"messages": SYSTEM + [{"role": "assistant", "content": "a"}]}],
    )
    kind, conv = export_file(demos, "alpaca", tmp_path / "alpaca.json")
    assert kind == "demos" and len(conv.rows) == 1 and conv.refused["system_message"].first == f"{demos}:2"
    assert json.loads((tmp_path / "alpaca.json").read_text()) == [
        {"instruction": "q", "input": "", "output": "a"}
    ]
