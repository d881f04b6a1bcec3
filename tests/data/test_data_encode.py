"""rlhfops.data.encode: chat-template split into prompt/reply ids, EOS, truncation, length errors."""

from __future__ import annotations

import pytest

from rlhfops.data.encode import (
    MIN_COMPLETION_TOKENS,
    EncodedDemo,
    EncodedPref,
    encode_demos,
    encode_prefs,
    encode_prompts,
)
from rlhfops.data.schema import Demo, Pref, Prompt
from rlhfops.errors import ConfigError, DataError

SYS = {"role": "system", "content": "You are the support desk."}


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


DEMOS = [
    Demo(_user("Where is my order?"), "It ships today.", 1, "d.jsonl"),
    Demo([SYS, *_user("Refund please")], "Done: refunded £12.", 2, "d.jsonl"),
    Demo(
        [*_user("hi"), {"role": "assistant", "content": "hello"}, *_user("cancel it")],
        "Cancelled.",
        4,
        "d.jsonl",
    ),
]


def _full_ids(tokenizer, messages, reply):
    text = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": reply}], tokenize=False, add_generation_prompt=False
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_demo_split_is_prompt_prefix_plus_reply_with_eos(tokenizer) -> None:
    result = encode_demos(DEMOS, tokenizer, max_length=512)
    assert result.truncated == 0
    assert [type(r) for r in result.rows] == [EncodedDemo] * 3
    for demo, row in zip(DEMOS, result.rows, strict=True):
        full = _full_ids(tokenizer, demo.prompt, demo.completion)
        assert row.prompt_ids + row.completion_ids == full
        gen = tokenizer.apply_chat_template(demo.prompt, tokenize=False, add_generation_prompt=True)
        assert row.prompt_ids == tokenizer(gen, add_special_tokens=False)["input_ids"]
        assert tokenizer.eos_token_id in row.completion_ids
        # the reply decodes to the assistant text followed by the end-of-turn marker
        assert tokenizer.decode(row.completion_ids).startswith(demo.completion + tokenizer.eos_token)
        assert (row.line, row.source) == (demo.line, demo.source)
    assert result.full_lengths == [len(r.prompt_ids) + len(r.completion_ids) for r in result.rows]


def test_prefs_share_the_prompt_and_keep_margin(tokenizer) -> None:
    prefs = [
        Pref(
            _user("Broken mug"), "Sorry! A replacement ships today.", "As an AI I cannot help.", 1.5, 3, "p"
        ),
        Pref(_user("Late parcel"), "Tracking sent.", "Things happen.", None, 4, "p"),
    ]
    result = encode_prefs(prefs, tokenizer, max_length=512)
    assert result.truncated == 0
    for pref, row in zip(prefs, result.rows, strict=True):
        assert isinstance(row, EncodedPref)
        assert row.prompt_ids + row.chosen_ids == _full_ids(tokenizer, pref.prompt, pref.chosen)
        assert row.prompt_ids + row.rejected_ids == _full_ids(tokenizer, pref.prompt, pref.rejected)
        assert tokenizer.eos_token_id in row.chosen_ids and tokenizer.eos_token_id in row.rejected_ids
        assert (row.margin, row.line) == (pref.margin, pref.line)


def test_truncation_cuts_replies_and_counts_rows(tokenizer) -> None:
    long_reply = "word " * 60
    demos = [Demo(_user("q"), long_reply, 1, "d"), Demo(_user("q2"), "ok", 2, "d")]
    untruncated = encode_demos(demos, tokenizer, max_length=4096).rows
    p0 = len(untruncated[0].prompt_ids)
    max_length = p0 + 20
    assert len(untruncated[0].completion_ids) > 20  # so the first row must be cut
    assert len(untruncated[1].prompt_ids) + len(untruncated[1].completion_ids) <= max_length
    result = encode_demos(demos, tokenizer, max_length=max_length)
    assert result.truncated == 1
    assert result.rows[0].completion_ids == untruncated[0].completion_ids[:20]
    assert result.rows[1] == untruncated[1]
    assert result.full_lengths[0] == p0 + len(untruncated[0].completion_ids)


def test_pref_truncation_counts_a_row_once(tokenizer) -> None:
    prefs = [Pref(_user("q"), "a " * 50, "b " * 50, None, 1, "p")]
    p0 = len(encode_prefs(prefs, tokenizer, max_length=4096).rows[0].prompt_ids)
    result = encode_prefs(prefs, tokenizer, max_length=p0 + 10)
    assert result.truncated == 1
    assert len(result.rows[0].chosen_ids) == len(result.rows[0].rejected_ids) == 10


def test_too_long_prompts_are_one_error_for_the_file(tokenizer) -> None:
    short = Demo(_user("hi"), "hello", 1, "d.jsonl")
    p_short = len(encode_demos([short], tokenizer, max_length=4096).rows[0].prompt_ids)
    max_length = p_short + MIN_COMPLETION_TOKENS  # the short prompt leaves exactly 8 tokens: allowed
    long1 = Demo(_user("x" * 40), "a", 12, "d.jsonl")
    long2 = Demo(_user("y" * 90), "a", 30, "d.jsonl")
    lens = [len(r.prompt_ids) for r in encode_demos([long1, long2], tokenizer, max_length=4096).rows]
    with pytest.raises(DataError) as info:
        encode_demos([short, long1, short, long2], tokenizer, max_length=max_length)
    assert str(info.value) == (
        f"d.jsonl: 2 of 4 rows have a prompt too long for max_length={max_length} tokens"
        f" (longest {max(lens)}, first at line 12; a prompt may use at most {p_short} tokens to leave 8"
        " for the reply); raise max_length, shorten those prompts or set truncation to keep_end or drop"
    )
    assert encode_demos([short], tokenizer, max_length=max_length).rows  # boundary row is fine


def test_no_chat_template(tokenizer) -> None:
    tokenizer.chat_template = None
    with pytest.raises(ConfigError) as info:
        encode_demos(DEMOS, tokenizer, max_length=512)
    assert str(info.value) == (
        f"model {tokenizer.name_or_path or type(tokenizer).__name__} has no chat template;"
        " set chat_template in the config"
    )
    # a template given explicitly is used
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    assert encode_demos(DEMOS, tokenizer, max_length=512, chat_template=template).truncated == 0


def test_template_whose_prompt_is_not_a_prefix(tokenizer) -> None:
    # The generation prompt says "Answer:" but the rendered assistant turn says "<|im_start|>assistant".
    bad = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}Answer:{% endif %}"
    )
    with pytest.raises(ConfigError) as info:
        encode_demos(DEMOS, tokenizer, max_length=512, chat_template=bad)
    msg = str(info.value)
    assert msg.startswith(
        "d.jsonl:1: the chat template does not render the prompt (with add_generation_prompt)"
    )
    assert "\n" not in msg


def test_template_without_eos(tokenizer) -> None:
    no_eos = (
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant] {% endif %}"
    )
    with pytest.raises(ConfigError) as info:
        encode_demos(DEMOS, tokenizer, max_length=512, chat_template=no_eos)
    assert str(info.value).startswith(
        "d.jsonl:1: the chat template does not end the assistant turn with the EOS token"
        f" {tokenizer.eos_token!r}"
    )


def test_empty_inputs() -> None:
    with pytest.raises(DataError, match="no demonstrations to encode"):
        encode_demos([], None, 512)
    with pytest.raises(DataError, match="no preference pairs to encode"):
        encode_prefs([], None, 512)


def test_encode_prompts_matches_demo_prompt_ids(tokenizer) -> None:
    prompts = [Prompt(d.prompt, d.line, d.source) for d in DEMOS]
    assert encode_prompts(prompts, tokenizer) == [
        r.prompt_ids for r in encode_demos(DEMOS, tokenizer, 512).rows
    ]


def test_tokens_merging_across_the_prompt_reply_boundary(merging_tokenizer) -> None:
    # Text-level prefix holds, but ":" + " " merge into one token, so the prompt ids are not a prefix.
    template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    with pytest.raises(ConfigError) as info:
        encode_demos(DEMOS, merging_tokenizer, max_length=512, chat_template=template)
    assert str(info.value).startswith(
        "d.jsonl:1: the prompt tokens are not a prefix of the full conversation's tokens"
    )
