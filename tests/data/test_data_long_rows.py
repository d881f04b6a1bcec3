"""Issue 16, part 9: very long rows are refused by a stated rule before anything is tokenized.

Rule (README, "Training stages"; rlhfops.data.schema.MAX_FIELD_CHARS): a text field holds at most 100,000
characters; a JSONL line over rlhfops.data.io.MAX_LINE_BYTES (64 MiB) stops the read at that line. One
30 MB completion used to pass ``data check`` and train at 6.6 GB peak memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shared_helpers import run_cli

import rlhfops.data.io as io_mod
from rlhfops.data.check import check_file
from rlhfops.data.schema import MAX_FIELD_CHARS, load_demos, load_prefs, load_prompts
from rlhfops.errors import DataError


def _write(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return path


def _too_long(n: int) -> str:
    return f"too long: {n:,} characters; a text field may hold at most 100,000 (split or shorten it)"


def test_rule_is_100k_characters() -> None:
    assert MAX_FIELD_CHARS == 100_000  # the number the README and the messages state


def test_data_check_reports_a_30mb_completion_with_file_line(tmp_path: Path, capsys) -> None:
    p = _write(
        tmp_path / "d.jsonl",
        [
            {"prompt": "q", "completion": "a"},
            {"prompt": "q", "completion": "x" * 30_000_000},
            {"prompt": "q", "completion": "b"},
        ],
    )
    code, out, err = run_cli(["data", "check", str(p)], capsys)
    assert code == 2
    assert out.splitlines() == [f"{p}:2:completion: {_too_long(30_000_000)}"]
    assert err == f"error: {p}: 1 error(s) in 1 of 3 demos rows; fix them and check again\n"


@pytest.mark.parametrize(("n", "ok"), [(MAX_FIELD_CHARS, True), (MAX_FIELD_CHARS + 1, False)])
def test_both_sides_of_the_field_limit(tmp_path: Path, n: int, ok: bool) -> None:
    text = "é" * n  # characters, not bytes: 2 bytes each in UTF-8
    demos = _write(tmp_path / "d.jsonl", [{"prompt": "q", "completion": text}])
    msgs = _write(
        tmp_path / "m.jsonl",
        [{"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "a"}]}],
    )
    prefs = _write(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "a", "rejected": text}])
    prompts = _write(tmp_path / "q.jsonl", [{"prompt": text}])
    cases = [
        (load_demos, demos, "completion"),
        (load_demos, msgs, "messages[0].content"),
        (load_prefs, prefs, "rejected"),
        (load_prompts, prompts, "prompt"),
    ]
    for load, path, field in cases:
        if ok:
            assert len(load(path)) == 1
        else:  # training stops at the first error: the same line as data check
            with pytest.raises(DataError) as info:
                load(path)
            assert str(info.value) == f"{path}:1:{field}: {_too_long(n)}"


class _NoTokenizer:
    """A tokenizer that fails the test if anything is tokenized."""

    name_or_path = "no-tokenizer"
    chat_template = "x"
    eos_token_id = 0

    def apply_chat_template(self, *args, **kwargs):
        raise AssertionError("a refused row reached the chat template")

    def __call__(self, *args, **kwargs):
        raise AssertionError("a refused row reached the tokenizer")


def test_a_long_row_is_refused_before_tokenizing(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.jsonl", [{"prompt": "q", "completion": "x" * (MAX_FIELD_CHARS + 1)}])
    report = check_file(p, "demos", tokenizer=_NoTokenizer(), max_length=512)
    assert report.errors == [f"{p}:1:completion: {_too_long(MAX_FIELD_CHARS + 1)}"] and report.tokens is None


@pytest.mark.parametrize(("cap", "ok"), [(64, True), (63, False)])
def test_both_sides_of_the_line_cap(tmp_path: Path, monkeypatch, cap: int, ok: bool) -> None:
    """A line of exactly MAX_LINE_BYTES (newline included) is read; one byte more stops the read there."""
    row = json.dumps({"prompt": "q", "completion": "y" * 30})
    line = row + " " * (63 - len(row)) + "\n"  # 64 bytes
    p = tmp_path / "d.jsonl"
    p.write_text('{"prompt": "q", "completion": "a"}\n' + line, encoding="utf-8")
    monkeypatch.setattr(io_mod, "MAX_LINE_BYTES", cap)
    if ok:
        assert [r.line for r in io_mod.read_rows(p)] == [1, 2]
        return
    with pytest.raises(DataError) as info:
        io_mod.read_rows(p)
    assert str(info.value) == (
        f"{p}:2: line longer than {cap} bytes; shorten or split that row (a row this long cannot be valid)"
    )


def test_the_line_cap_reads_no_more_than_it_allows(tmp_path: Path, monkeypatch) -> None:
    """The reader asks for at most MAX_LINE_BYTES + 1 bytes per line: a huge line is never held whole."""
    p = tmp_path / "d.jsonl"
    p.write_text('{"prompt": "' + "z" * 5000 + '"}\n', encoding="utf-8")
    monkeypatch.setattr(io_mod, "MAX_LINE_BYTES", 100)
    asked: list[int] = []
    real_open = open

    class _Spy:
        def __init__(self, fh) -> None:
            self._fh = fh

        def readline(self, size: int = -1) -> bytes:
            asked.append(size)
            return self._fh.readline(size)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self._fh.close()

    monkeypatch.setattr(
        io_mod, "open", lambda f, mode="r", *a, **k: _Spy(real_open(f, mode, *a, **k)), raising=False
    )
    with pytest.raises(DataError, match="line longer than 100 bytes"):
        io_mod.read_rows(p)
    assert asked and max(asked) == 101
