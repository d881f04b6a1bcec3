"""`rlhfops data check|import`: exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shared_helpers import run_cli

from rlhfops.data.check import check_file
from rlhfops.datasets import hh_rlhf_harmless_path


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


GOOD_PREFS = [{"prompt": "Where is my parcel?", "chosen": "It ships today.", "rejected": "No idea."}] * 3


def test_check_ok_prints_counts(tmp_path: Path, capsys) -> None:
    p = _write(tmp_path / "p.jsonl", GOOD_PREFS)
    code, out, err = run_cli(["data", "check", str(p)], capsys)
    assert (code, err) == (0, "")
    assert out == f"{p}: 3 prefs rows, no errors\n"


def test_check_lists_every_error_and_exits_2(tmp_path: Path, capsys) -> None:
    rows = [
        {"prompt": "q", "completion": "a"},
        {"prompt": "", "completion": 3},
        {"prompt": "q", "completion": "a"},
        {"messages": [{"role": "bot", "content": "x"}]},
    ]
    p = _write(tmp_path / "d.jsonl", rows)
    code, out, err = run_cli(["data", "check", str(p)], capsys)
    assert code == 2
    assert out.splitlines() == [
        f"{p}:2:prompt: empty string",
        f"{p}:2:completion: must be a string or a list of messages, got a number",
        f"{p}:4:messages[0].role: unknown role 'bot'; use one of system, user, assistant, tool",
    ]
    assert err == f"error: {p}: 3 error(s) in 2 of 4 demos rows; fix them and check again\n"


def test_check_limit_lists_a_count_of_the_rest(tmp_path: Path, capsys) -> None:
    p = _write(tmp_path / "d.jsonl", [{"prompt": "q", "completion": ""}] * 30)
    code, out, err = run_cli(["data", "check", str(p)], capsys)
    lines = out.splitlines()
    assert code == 2 and len(lines) == 21 and lines[-1] == "... and 10 more"
    assert lines[19] == f"{p}:20:completion: empty string"
    code, out, _ = run_cli(["data", "check", str(p), "--limit", "2"], capsys)
    assert out.splitlines()[-1] == "... and 28 more"


def test_check_same_errors_as_training_first_one(tmp_path: Path, capsys) -> None:
    from rlhfops.data.schema import load_demos
    from rlhfops.errors import DataError

    p = _write(
        tmp_path / "d.jsonl", [{"prompt": "q", "completion": "a"}, {"prompt": "q"}, {"completion": "x"}]
    )
    _, out, _ = run_cli(["data", "check", str(p), "--kind", "demos"], capsys)
    with pytest.raises(DataError) as info:
        load_demos(p)
    assert out.splitlines()[0] == str(info.value) == f"{p}:2:completion: missing field"


def test_check_kind_override_and_unknown_kind(tmp_path: Path, capsys) -> None:
    p = _write(tmp_path / "p.jsonl", GOOD_PREFS)
    code, out, _ = run_cli(["data", "check", str(p), "--kind", "demos"], capsys)
    assert code == 2 and out.splitlines()[0] == f"{p}:1:completion: missing field"
    code, out, _ = run_cli(["data", "check", str(p), "--kind", "prompts"], capsys)
    assert code == 0 and out == f"{p}: 3 prompts rows, no errors\n"


def test_bad_option_value_is_a_usage_error(tmp_path: Path, capsys) -> None:
    p = _write(tmp_path / "p.jsonl", GOOD_PREFS)
    code, _, err = run_cli(["data", "check", str(p), "--kind", "pairs"], capsys)
    assert code == 2 and "pairs" in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"prompt": "q" "chosen": 1}\n', "{p}:1: not valid JSON (Expecting ',' delimiter at column 16)"),
        ("\n\n", "{p}: empty dataset (no rows)"),
        (
            '{"text": "x"}\n',
            "{p}:1: cannot tell the kind of data from the fields (text): demos need"
            " prompt+completion or messages, prefs prompt+chosen+rejected, prompts a prompt; or pass --kind",
        ),
    ],
)
def test_check_read_errors_are_one_line(tmp_path: Path, capsys, content: str, expected: str) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text(content, encoding="utf-8")
    code, out, err = run_cli(["data", "check", str(p)], capsys)
    assert (code, out) == (2, "")
    assert err == "error: " + expected.format(p=p) + "\n"


def test_check_missing_file(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(["data", "check", str(tmp_path / "x.jsonl")], capsys)
    assert (code, err) == (2, f"error: {tmp_path / 'x.jsonl'}: file not found\n")


def test_check_file_with_tokenizer_stats_and_length_error(tmp_path: Path, tokenizer) -> None:
    rows = [{"prompt": "q", "completion": "a " * 40}, {"prompt": "q", "completion": "ok"}]
    p = _write(tmp_path / "d.jsonl", rows)
    from rlhfops.data.encode import encode_prompts
    from rlhfops.data.schema import load_prompts

    prompt_len = max(len(ids) for ids in encode_prompts(load_prompts(p), tokenizer))
    limit = prompt_len + 20  # room for "ok" and its end-of-turn tokens, not for 40 "a "s
    report = check_file(p, tokenizer=tokenizer, max_length=limit)
    assert report.ok and report.tokens is not None
    assert report.tokens.truncated == 1 and report.tokens.max > limit and report.tokens.max_length == limit
    longest = max(len(ids) for ids in encode_prompts(load_prompts(p), tokenizer))
    max_length = longest + 7  # one token short of room for an 8-token reply
    too_short = check_file(p, tokenizer=tokenizer, max_length=max_length)  # the default: error
    assert too_short.tokens is not None and too_short.tokens.modes["error"] is None
    assert too_short.errors == [
        f"{p}: 2 of 2 rows have a prompt too long for max_length={max_length} tokens (longest {longest},"
        f" first at line 1; a prompt may use at most {longest - 1} tokens to leave 8 for the reply); raise"
        " max_length, shorten those prompts or set truncation to keep_end or drop"
    ]
    # keep_end does not refuse: the long reply's row is dropped, the other kept whole
    kept = check_file(p, tokenizer=tokenizer, max_length=max_length, truncation="keep_end")
    assert kept.ok and kept.tokens is not None
    assert (kept.tokens.modes["keep_end"].whole, kept.tokens.modes["keep_end"].dropped) == (1, 1)


def test_check_with_model_option(tmp_path: Path, capsys, tokenizer) -> None:
    model_dir = tmp_path / "tok"
    tokenizer.save_pretrained(model_dir)
    p = _write(tmp_path / "p.jsonl", GOOD_PREFS)
    code, out, err = run_cli(
        ["data", "check", str(p), "--model", str(model_dir), "--max-length", "256"], capsys
    )
    assert (code, err) == (0, "")
    assert out.splitlines()[1].startswith("tokens (")
    assert out.splitlines()[2] == (
        "truncation at max_length=256: keep_end: 3 whole, 0 truncated, 0 dropped; drop: 3 kept whole,"
        " 0 dropped; error: 3 whole, 0 with the reply cut"
    )


def test_import_hh_rlhf_real_file(tmp_path: Path, capsys) -> None:
    out_file = tmp_path / "out" / "hh.parquet"
    code, out, err = run_cli(
        ["data", "import", "--format", "hh-rlhf", str(hh_rlhf_harmless_path()), "--out", str(out_file)],
        capsys,
    )
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"imported 1495 of 1500 rows to {out_file}",
        "skipped 5 (empty final reply in chosen: 4; chosen and rejected differ before the last Assistant"
        " reply: 1); first at lines 87, 517, 926, 1104, 1255",
    ]
    code, out, _ = run_cli(["data", "check", str(out_file)], capsys)
    assert (code, out) == (0, f"{out_file}: 1495 prefs rows, no errors\n")
    # an existing output is refused unless --force
    before = out_file.stat().st_mtime_ns
    code, _, err = run_cli(
        ["data", "import", "--format", "hh-rlhf", str(hh_rlhf_harmless_path()), "-o", str(out_file)], capsys
    )
    assert (code, err) == (2, f"error: {out_file}: already exists; pass --force to replace it\n")
    assert out_file.stat().st_mtime_ns == before


def test_import_errors_write_nothing(tmp_path: Path, capsys) -> None:
    bad = _write(tmp_path / "in.jsonl", [{"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "nope"}])
    out_file = tmp_path / "out.jsonl"
    code, _, err = run_cli(
        ["data", "import", "--format", "hh-rlhf", str(bad), "--out", str(out_file), "--strict"], capsys
    )
    assert code == 2 and err == (
        f"error: {bad}:1: cannot import as HH-RLHF: rejected has no '\\n\\nAssistant:' turn; fix or drop the"
        " row, or import without --strict to skip such rows\n"
    )
    code, _, err = run_cli(
        ["data", "import", "--format", "hh-rlhf", str(bad), "--out", str(out_file)], capsys
    )
    assert code == 2 and err.startswith(f"error: {bad}: no row could be imported as HH-RLHF")
    code, _, err = run_cli(
        ["data", "import", "--format", "hh-rlhf", str(bad), "--out", str(tmp_path / "o.csv")], capsys
    )
    assert (code, err) == (
        2,
        f"error: {tmp_path / 'o.csv'}: unknown extension '.csv'; use .jsonl, .jsonl.gz, .json or .parquet\n",
    )
    assert sorted(f.name for f in tmp_path.iterdir()) == ["in.jsonl"]


def test_help_documents_both_commands(capsys) -> None:
    code, out, _ = run_cli(["data", "--help"], capsys)
    assert code == 0 and "check" in out and "import" in out
    code, out, _ = run_cli(["data", "check", "--help"], capsys)
    for opt in ("--kind", "--model", "--max-length", "--chat-template", "--limit"):
        assert opt in out
    code, out, _ = run_cli(["data", "import", "--help"], capsys)
    for opt in ("--format", "--out", "--strict", "--force", "hh-rlhf"):
        assert opt in out


def test_check_says_what_each_truncation_setting_would_do(tmp_path: Path, capsys, tokenizer) -> None:
    model_dir = tmp_path / "tok"
    tokenizer.save_pretrained(model_dir)
    long_prompt = [
        {"role": "user", "content": "My order " + "is late again, " * 6},
        {"role": "assistant", "content": "Sorry, " * 8},
        {"role": "user", "content": "Where is it?"},
    ]
    rows = [*GOOD_PREFS[:2], {"prompt": long_prompt, "chosen": "Here.", "rejected": "No."}]
    p = _write(tmp_path / "p.jsonl", rows)
    args = ["data", "check", str(p), "--model", str(model_dir), "--max-length", "100"]
    code, out, err = run_cli(args, capsys)  # the default, error, refuses the long prompt
    assert code == 2 and "1 of 3 rows have a prompt too long for max_length=100" in out
    counts = (
        "truncation at max_length=100: keep_end: 2 whole, 1 truncated, 0 dropped; drop: 2 kept whole,"
        " 1 dropped; error: refuses the file"
    )
    assert out.splitlines()[-1] == counts
    for mode in ("keep_end", "drop"):
        code, out, err = run_cli([*args, "--truncation", mode], capsys)
        assert (code, err) == (0, "") and out.splitlines()[-1] == counts, mode


def test_check_prompts_uses_max_new_tokens_like_the_rl_stage(tmp_path: Path, capsys, tokenizer) -> None:
    from rlhfops.data.encode import encode_prompts
    from rlhfops.data.schema import load_prompts

    model_dir = tmp_path / "tok"
    tokenizer.save_pretrained(model_dir)
    p = _write(tmp_path / "q.jsonl", [{"prompt": "Where is my parcel?"}])
    (ids,) = encode_prompts(load_prompts(p), tokenizer)
    args = ["data", "check", str(p), "--model", str(model_dir), "--max-length", str(len(ids) + 40)]
    code, out, _ = run_cli([*args, "--max-new-tokens", "40"], capsys)  # exactly at the limit
    assert code == 0 and out.splitlines()[-1].startswith("truncation at max_length=")
    assert "keep_end: 1 whole, 0 truncated, 0 dropped" in out
    code, out, _ = run_cli([*args, "--max-new-tokens", "41"], capsys)  # one token over
    assert code == 2 and "1 of 1 prompts are too long" in out and "at most " + str(len(ids) - 1) in out
    assert "keep_end: 0 whole, 1 truncated, 0 dropped" in out.splitlines()[-1]
