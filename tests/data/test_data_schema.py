"""rlhfops.data.schema: accepted forms, one-line file:line:field errors, collect-all vs stop-at-first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlhfops.data.io import Row
from rlhfops.data.schema import (
    Demo,
    Pref,
    Prompt,
    detect_kind,
    load_demos,
    load_prefs,
    load_prompts,
    validate_demos,
    validate_prefs,
)
from rlhfops.errors import DataError

U = {"role": "user", "content": "Where is my order?"}
A = {"role": "assistant", "content": "It ships today."}
SYS = {"role": "system", "content": "Be brief."}


def _write(tmp_path: Path, rows: list, name: str = "d.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return p


# ---------- accepted forms ----------


def test_demo_string_form(tmp_path: Path) -> None:
    p = _write(tmp_path, [{"prompt": "Hi?", "completion": "Hello.", "id": 7}])
    assert load_demos(p) == [Demo([{"role": "user", "content": "Hi?"}], "Hello.", 1, str(p))]


def test_demo_conversational_prompt_completion(tmp_path: Path) -> None:
    p = _write(tmp_path, [{"prompt": [SYS, U], "completion": [A]}])
    assert load_demos(p) == [Demo([SYS, U], A["content"], 1, str(p))]


def test_demo_messages_form_keeps_only_role_and_content(tmp_path: Path) -> None:
    extra = {**U, "name": "cust"}
    p = _write(tmp_path, [{"messages": [SYS, extra, A, U, A]}])
    (demo,) = load_demos(p)
    assert demo.prompt == [SYS, U, A, U] and demo.completion == A["content"]


def test_pref_string_form_with_margin(tmp_path: Path) -> None:
    p = _write(tmp_path, [{"prompt": "Q", "chosen": "good", "rejected": "bad", "margin": 2}])
    assert load_prefs(p) == [Pref([{"role": "user", "content": "Q"}], "good", "bad", 2.0, 1, str(p))]


def test_pref_conversational_explicit_prompt(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        [
            {
                "prompt": [U],
                "chosen": [A],
                "rejected": [{"role": "assistant", "content": "No."}],
                "margin": None,
            }
        ],
    )
    assert load_prefs(p) == [Pref([U], A["content"], "No.", None, 1, str(p))]


def test_pref_implicit_prompt_form(tmp_path: Path) -> None:
    no = {"role": "assistant", "content": "No."}
    p = _write(tmp_path, [{"chosen": [SYS, U, A, U, A], "rejected": [SYS, U, A, U, no]}])
    assert load_prefs(p) == [Pref([SYS, U, A, U], A["content"], "No.", None, 1, str(p))]


def test_prompts(tmp_path: Path) -> None:
    p = _write(tmp_path, [{"prompt": "Hi"}, {"prompt": [SYS, U], "other": 1}])
    assert load_prompts(p) == [
        Prompt([{"role": "user", "content": "Hi"}], 1, str(p)),
        Prompt([SYS, U], 2, str(p)),
    ]


# ---------- errors: one line, file:line:field ----------

DEMO_ERRORS = [
    ({"completion": "x"}, "prompt: missing field"),
    ({"prompt": "x"}, "completion: missing field"),
    ({"prompt": "  ", "completion": "x"}, "prompt: empty string"),
    ({"prompt": "q", "completion": ""}, "completion: empty string"),
    ({"prompt": 5, "completion": "x"}, "prompt: must be a string or a list of messages, got a number"),
    (
        {"prompt": {"a": 1}, "completion": "x"},
        "prompt: must be a string or a list of messages, got an object",
    ),
    ({"prompt": [], "completion": "x"}, "prompt: empty message list"),
    (
        {"prompt": [{"role": "bot", "content": "x"}], "completion": "y"},
        "prompt[0].role: unknown role 'bot'; use one of system, user, assistant, tool",
    ),
    ({"prompt": [{"content": "x"}], "completion": "y"}, "prompt[0].role: missing field"),
    (
        {"prompt": [U, {"role": "user", "content": 3}], "completion": "y"},
        "prompt[1].content: must be a string, got a number",
    ),
    (
        {"prompt": ["hi"], "completion": "y"},
        "prompt[0]: a message must be an object with role and content, got a string",
    ),
    (
        {"prompt": [U, A], "completion": "y"},
        "prompt: the last prompt message must be from the user, got 'assistant'",
    ),
    (
        {"prompt": [U], "completion": [A, A]},
        "completion: must be one assistant message, got roles ['assistant', 'assistant']",
    ),
    ({"prompt": [U], "completion": [U]}, "completion: must be one assistant message, got roles ['user']"),
    ({"messages": [U]}, "messages: the last message must be the assistant's reply, got 'user'"),
    ({"messages": [A]}, "messages: the assistant's reply must follow a user message (the prompt)"),
    (
        {"messages": [U, A], "prompt": "x"},
        "messages: give either 'messages' or 'prompt' + 'completion', not both",
    ),
    ({"messages": "hi"}, "messages: must be a string or a list of messages, got a string"),
]


@pytest.mark.parametrize(("row", "expected"), DEMO_ERRORS)
def test_demo_errors(tmp_path: Path, row: dict, expected: str) -> None:
    p = _write(tmp_path, [{"prompt": "ok", "completion": "ok"}, row])
    with pytest.raises(DataError) as info:
        load_demos(p)
    assert str(info.value) == f"{p}:2:{expected}"


def test_demo_row_with_no_known_fields(tmp_path: Path) -> None:
    p = _write(tmp_path, [{"text": "x"}])
    with pytest.raises(DataError) as info:
        load_demos(p)
    assert str(info.value) == (
        f"{p}:1: missing fields: a demonstration needs 'prompt' + 'completion' or 'messages' (has text)"
    )


PREF_ERRORS = [
    ({"prompt": "q", "rejected": "b"}, "chosen: missing field"),
    ({"prompt": "q", "chosen": "a"}, "rejected: missing field"),
    ({"chosen": "a", "rejected": "b"}, "prompt: missing field (string chosen/rejected need a 'prompt')"),
    ({"prompt": "q", "chosen": "", "rejected": "b"}, "chosen: empty string"),
    (
        {"prompt": "q", "chosen": 1, "rejected": "b"},
        "chosen: must be a string or a list of messages, got a number",
    ),
    (
        {"prompt": "q", "chosen": "same ", "rejected": "same"},
        "rejected: identical to chosen; identical responses carry no preference",
    ),
    (
        {"prompt": "q", "chosen": "a", "rejected": "b", "margin": "high"},
        "margin: must be a number, got 'high'",
    ),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "margin": True}, "margin: must be a number, got True"),
    (
        {"prompt": "q", "chosen": "a", "rejected": "b", "margin": float("nan")},
        "margin: must be a finite number, got nan",
    ),
    (
        {"prompt": [U], "chosen": [{"role": "helper", "content": "a"}], "rejected": "b"},
        "chosen[0].role: unknown role 'helper'; use one of system, user, assistant, tool",
    ),
    (
        {"chosen": [U, A], "rejected": [SYS, U, {"role": "assistant", "content": "No."}]},
        "rejected: chosen and rejected conversations must share every message but the last (they differ at"
        " message 0); or give the shared part as 'prompt'",
    ),
    (
        {"chosen": [U, A], "rejected": [U, A]},
        "rejected: identical to chosen; identical responses carry no preference",
    ),
    (
        {"chosen": [U, A], "rejected": [U]},
        "rejected: the last message must be the assistant's reply, got 'user'",
    ),
]


@pytest.mark.parametrize(("row", "expected"), PREF_ERRORS)
def test_pref_errors(tmp_path: Path, row: dict, expected: str) -> None:
    p = _write(tmp_path, [{"prompt": "ok", "chosen": "a", "rejected": "b"}, row])
    with pytest.raises(DataError) as info:
        load_prefs(p)
    assert str(info.value) == f"{p}:2:{expected}"


def test_prompt_errors(tmp_path: Path) -> None:
    p = _write(tmp_path, [{"prompt": "ok"}, {"prompt": [U, A]}])
    with pytest.raises(DataError) as info:
        load_prompts(p)
    assert str(info.value) == f"{p}:2:prompt: the last prompt message must be from the user, got 'assistant'"


def test_validate_collects_every_error_while_load_stops_at_first(tmp_path: Path) -> None:
    rows = [
        {"prompt": "q", "chosen": "a", "rejected": "b"},
        {"prompt": "", "chosen": 3, "rejected": "b", "margin": "x"},  # three errors in one row
        {"prompt": "q", "chosen": "a", "rejected": "a"},
    ]
    p = _write(tmp_path, rows)
    from rlhfops.data.io import read_rows

    errors = validate_prefs(read_rows(p))
    assert errors == [
        f"{p}:2:prompt: empty string",
        f"{p}:2:chosen: must be a string or a list of messages, got a number",
        f"{p}:2:margin: must be a number, got 'x'",
        f"{p}:3:rejected: identical to chosen; identical responses carry no preference",
    ]
    with pytest.raises(DataError) as info:
        load_prefs(p)
    assert str(info.value) == errors[0]


def test_validate_demos_empty_for_valid_rows() -> None:
    rows = [Row({"prompt": "q", "completion": "a"}, 1, "f"), Row({"messages": [U, A]}, 2, "f")]
    assert validate_demos(rows) == []


def test_parquet_rows_with_null_columns_validate(tmp_path: Path) -> None:
    from rlhfops.data.io import write_rows

    p = write_rows(
        tmp_path / "p.parquet",
        [
            {
                "prompt": [U],
                "chosen": [A],
                "rejected": [{"role": "assistant", "content": "no"}],
                "margin": 1.0,
            },
            {"prompt": [U], "chosen": [A], "rejected": [{"role": "assistant", "content": "nah"}]},
        ],
    )
    prefs = load_prefs(p)
    assert [(x.margin, x.rejected, x.line) for x in prefs] == [(1.0, "no", 1), (None, "nah", 2)]


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ({"prompt": "q", "chosen": "a", "rejected": "b"}, "prefs"),
        ({"chosen": [U, A], "rejected": [U, A]}, "prefs"),
        ({"prompt": "q", "completion": "a"}, "demos"),
        ({"messages": [U, A]}, "demos"),
        ({"prompt": "q"}, "prompts"),
    ],
)
def test_detect_kind(data: dict, kind: str) -> None:
    assert detect_kind([Row(data, 1, "f")]) == kind


def test_detect_kind_unknown() -> None:
    with pytest.raises(DataError) as info:
        detect_kind([Row({"text": "x", "label": 1}, 3, "f.jsonl")])
    assert str(info.value) == (
        "f.jsonl:3: cannot tell the kind of data from the fields (label, text): demos need"
        " prompt+completion or messages, prefs prompt+chosen+rejected, prompts a prompt; or pass --kind"
    )
