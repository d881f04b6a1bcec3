"""The ``truncation`` setting (rlhfops.data.truncate + encode): keep_end, drop and error on both sides of
the edge, message boundaries first, the reply never cut. The tokenizer is byte-level (a token per byte),
so every length is exact."""

from __future__ import annotations

import pytest

from rlhfops.data.encode import MIN_COMPLETION_TOKENS, encode_demos, encode_prefs, fit_prompts
from rlhfops.data.schema import Demo, Pref, Prompt
from rlhfops.errors import ConfigError, DataError

A = {"role": "user", "content": "first question about the parcel"}
B = {"role": "assistant", "content": "an earlier answer"}
C = {"role": "user", "content": "and where is it now, please tell me"}
SYS = {"role": "system", "content": "You are the support desk."}
REPLY = "It ships today."
BIG = 100_000


def _demo(prompt, reply=REPLY, line=1) -> Demo:
    return Demo(list(prompt), reply, line, "d.jsonl")


def _need(tokenizer, prompt, reply=REPLY) -> int:
    """prompt + reply tokens of the row, uncut."""
    (row,) = encode_demos([_demo(prompt, reply)], tokenizer, BIG).rows
    return len(row.prompt_ids) + len(row.completion_ids)


def _one(tokenizer, prompt, max_length, mode, reply=REPLY):
    result = encode_demos([_demo(prompt, reply)], tokenizer, max_length, truncation=mode)
    return result.rows, result.counts


def test_row_exactly_at_the_limit_is_untouched_one_over_is_handled(tokenizer) -> None:
    full = encode_demos([_demo([A, B, C])], tokenizer, BIG).rows[0]
    n = _need(tokenizer, [A, B, C])
    for mode in ("keep_end", "drop"):
        rows, counts = _one(tokenizer, [A, B, C], n, mode)
        assert rows == [full] and (counts.whole, counts.truncated, counts.dropped) == (1, 0, 0), mode
    rows, counts = _one(tokenizer, [A, B, C], n - 1, "keep_end")
    assert (counts.whole, counts.truncated, counts.dropped) == (0, 1, 0)
    assert rows[0].completion_ids == full.completion_ids and rows[0].prompt_ids != full.prompt_ids
    rows, counts = _one(tokenizer, [A, B, C], n - 1, "drop")
    assert rows == [] and (counts.whole, counts.truncated, counts.dropped) == (0, 0, 1)


def test_error_mode_edge_is_the_prompt_budget(tokenizer) -> None:
    p = len(encode_demos([_demo([A, B, C])], tokenizer, BIG).rows[0].prompt_ids)
    rows, counts = _one(tokenizer, [A, B, C], p + MIN_COMPLETION_TOKENS, "error")  # exactly 8 left
    assert len(rows) == 1 and counts.replies_cut == 1  # the reply is cut, as before the setting
    assert len(rows[0].completion_ids) == MIN_COMPLETION_TOKENS
    with pytest.raises(DataError, match="1 of 1 rows have a prompt too long"):
        _one(tokenizer, [A, B, C], p + MIN_COMPLETION_TOKENS - 1, "error")


def test_keep_end_drops_whole_earliest_messages_first(tokenizer) -> None:
    full_reply = encode_demos([_demo([C])], tokenizer, BIG).rows[0].completion_ids
    for kept in ([B, C], [C]):
        n = _need(tokenizer, kept)
        expected = encode_demos([_demo(kept)], tokenizer, BIG).rows[0]
        rows, counts = _one(tokenizer, [A, B, C], n, "keep_end")
        assert rows[0].prompt_ids == expected.prompt_ids, kept  # cut exactly at a message boundary
        assert rows[0].completion_ids == full_reply and counts.truncated == 1
    # one token under [B, C]'s need: B must go too (no partial B)
    n = _need(tokenizer, [B, C]) - 1
    rows, _ = _one(tokenizer, [A, B, C], n, "keep_end")
    assert rows[0].prompt_ids == encode_demos([_demo([C])], tokenizer, BIG).rows[0].prompt_ids


def test_keep_end_cuts_the_beginning_of_a_last_message_still_too_long(tokenizer) -> None:
    n = _need(tokenizer, [C]) - 10
    rows, counts = _one(tokenizer, [A, B, C], n, "keep_end")
    assert counts.truncated == 1
    row = rows[0]
    assert len(row.prompt_ids) + len(row.completion_ids) == n
    text = tokenizer.decode(row.prompt_ids)
    assert C["content"][10:] in text and C["content"] not in text  # the end of the last message stays
    assert A["content"] not in text and B["content"] not in text


def test_keep_end_keeps_a_leading_system_message(tokenizer) -> None:
    n = _need(tokenizer, [SYS, C])
    rows, _ = _one(tokenizer, [SYS, A, B, C], n, "keep_end")
    assert rows[0].prompt_ids == encode_demos([_demo([SYS, C])], tokenizer, BIG).rows[0].prompt_ids


def test_reply_is_never_cut_a_reply_too_long_drops_the_row(tokenizer) -> None:
    long_reply = "x" * 200
    demos = [_demo([A, B, C], line=1), _demo([C], long_reply, line=2)]
    n = _need(tokenizer, [C]) + 5  # room for C and the short reply, never for 200 bytes
    result = encode_demos(demos, tokenizer, n, truncation="keep_end")
    assert (result.counts.whole, result.counts.truncated, result.counts.dropped) == (0, 1, 1)
    assert [r.line for r in result.rows] == [1]
    assert result.rows[0].completion_ids == encode_demos([demos[0]], tokenizer, BIG).rows[0].completion_ids
    assert len(result.full_lengths) == 2  # the stats still see every row


def test_prefs_keep_both_replies_whole(tokenizer) -> None:
    pref = Pref([A, B, C], "Short.", "A much longer rejected reply here.", None, 1, "p.jsonl")
    (full,) = encode_prefs([pref], tokenizer, BIG).rows
    n = len(full.prompt_ids) + len(full.rejected_ids) - 1  # the longer reply sets the need
    result = encode_prefs([pref], tokenizer, n, truncation="keep_end")
    (row,) = result.rows
    assert (row.chosen_ids, row.rejected_ids) == (full.chosen_ids, full.rejected_ids)
    assert len(row.prompt_ids) < len(full.prompt_ids) and result.counts.truncated == 1
    assert encode_prefs([pref], tokenizer, n + 1, truncation="keep_end").counts.whole == 1
    assert encode_prefs([pref], tokenizer, n, truncation="drop").rows == []


def test_generation_prompts_at_and_over_the_limit(tokenizer) -> None:
    prompt = Prompt([A, B, C], 1, "q.jsonl")
    (ids,) = fit_prompts([prompt], tokenizer, BIG, "error").ids
    at = fit_prompts([prompt], tokenizer, len(ids), "keep_end")
    assert at.ids == [ids] and at.counts.whole == 1
    over = fit_prompts([prompt], tokenizer, len(ids) - 1, "keep_end")
    assert over.counts.truncated == 1 and len(over.ids[0]) <= len(ids) - 1
    assert over.ids[0] == fit_prompts([Prompt([B, C], 1, "q.jsonl")], tokenizer, BIG, "error").ids[0]
    dropped = fit_prompts([prompt], tokenizer, len(ids) - 1, "drop")
    assert dropped.ids == [] and dropped.counts.dropped == 1


def test_unknown_mode_is_refused(tokenizer) -> None:
    with pytest.raises(ConfigError, match="truncation='keep_start': use one of keep_end, drop, error"):
        encode_demos([_demo([C])], tokenizer, BIG, truncation="keep_start")


def test_keep_end_skips_a_suffix_the_template_refuses(tokenizer) -> None:
    """Under a template that refuses a conversation opening with an assistant turn, keep_end goes on to
    the next boundary instead of failing."""
    strict = (
        "{% if messages[0]['role'] == 'assistant' %}{{ raise_exception('start with a user turn') }}"
        "{% endif %}" + tokenizer.chat_template
    )
    n = _need(tokenizer, [B, C])  # room for [B, C], which the strict template refuses
    tokenizer.chat_template = strict
    rows, counts = _one(tokenizer, [A, B, C], n, "keep_end")
    assert counts.truncated == 1
    assert rows[0].prompt_ids == encode_demos([_demo([C])], tokenizer, BIG).rows[0].prompt_ids
