"""Turn validated demos / preference pairs into token ids with the model's chat template.

For each row:

* ``prompt_ids`` = the chat template applied to the prompt messages with ``add_generation_prompt=True``
  (so it ends with the assistant header, e.g. ``<|im_start|>assistant\\n``);
* ``completion_ids`` (or ``chosen_ids`` / ``rejected_ids``) = the tokens of the full templated
  conversation (prompt + the assistant message) after the prompt, so the reply ends with the template's
  end-of-turn token (e.g. ``<|im_end|>\\n``), which must contain the EOS token: that is how the model
  learns to stop.

Both texts are tokenized without extra special tokens (the template adds BOS if it wants one), and the
prompt ids must be a prefix of the full ids; a template that breaks that is refused with a clear error.

Length: when prompt + reply exceeds ``max_length`` the reply is cut (the count is reported in
:class:`EncodeResult`); a prompt that leaves fewer than :data:`MIN_COMPLETION_TOKENS` tokens for the
reply is an error for the whole file, listing how many rows and where the first is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from rlhfops.data.schema import Demo, Pref, Prompt
from rlhfops.errors import ConfigError, DataError

MIN_COMPLETION_TOKENS = 8


@dataclass(frozen=True, slots=True)
class EncodedDemo:
    """Token ids of one demonstration. ``prompt_ids + completion_ids`` is the full templated text."""

    prompt_ids: list[int]
    completion_ids: list[int]
    line: int
    source: str


@dataclass(frozen=True, slots=True)
class EncodedPref:
    """Token ids of one preference pair; both replies follow the same ``prompt_ids``."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    margin: float | None
    line: int
    source: str


class EncodeResult(NamedTuple):
    """Encoded rows, how many had a reply cut to fit max_length, and each row's uncut length.

    ``full_lengths[i]`` = len(prompt) + len(longest reply) of row i before truncation, in tokens.
    """

    rows: list[Any]
    truncated: int
    full_lengths: list[int]


def _model_name(tokenizer: Any) -> str:
    return str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)


def _check_template(tokenizer: Any, chat_template: str | None) -> None:
    if chat_template is None and not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"model {_model_name(tokenizer)} has no chat template; set chat_template in the config"
        )


def _eos_id(tokenizer: Any) -> int:
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ConfigError(
            f"model {_model_name(tokenizer)}: the tokenizer has no EOS token; the model could not learn"
            " to stop"
        )
    return int(eos)


def _render(
    tokenizer: Any, messages: list[dict[str, str]], chat_template: str | None, generation_prompt: bool
) -> str:
    text = tokenizer.apply_chat_template(
        messages, chat_template=chat_template, tokenize=False, add_generation_prompt=generation_prompt
    )
    if not isinstance(text, str):  # pragma: no cover - a tokenizer that ignores tokenize=False
        raise ConfigError(f"model {_model_name(tokenizer)}: apply_chat_template did not return text")
    return text


def _ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    if not texts:
        return []
    enc = tokenizer(texts, add_special_tokens=False)
    return [list(map(int, ids)) for ids in enc["input_ids"]]


class _Templated(NamedTuple):
    prompt_ids: list[int]
    replies: list[list[int]]  # uncut reply ids, one per response


def _template_rows(
    prompts: Sequence[list[dict[str, str]]],
    replies: Sequence[Sequence[str]],
    where: Sequence[str],
    tokenizer: Any,
    chat_template: str | None,
) -> list[_Templated]:
    """Render, tokenize, and split each (prompt, replies) into prompt ids + reply ids; checks prefix + EOS."""
    _check_template(tokenizer, chat_template)
    eos = _eos_id(tokenizer)
    prompt_texts = [_render(tokenizer, p, chat_template, True) for p in prompts]
    full_texts: list[str] = []
    for i, (prompt, reps) in enumerate(zip(prompts, replies, strict=True)):
        for reply in reps:
            text = _render(
                tokenizer, [*prompt, {"role": "assistant", "content": reply}], chat_template, False
            )
            if not text.startswith(prompt_texts[i]):
                raise ConfigError(
                    f"{where[i]}: the chat template does not render the prompt (with add_generation_prompt)"
                    " as a prefix of the full conversation, so prompt and reply cannot be split; use a"
                    " template whose generation prompt is the start of the assistant turn"
                )
            full_texts.append(text)
    prompt_ids = _ids(tokenizer, prompt_texts)
    full_ids = iter(_ids(tokenizer, full_texts))
    out: list[_Templated] = []
    for i, reps in enumerate(replies):
        p = prompt_ids[i]
        cut: list[list[int]] = []
        for _ in reps:
            ids = next(full_ids)
            if ids[: len(p)] != p:
                raise ConfigError(
                    f"{where[i]}: the prompt tokens are not a prefix of the full conversation's tokens (the"
                    " tokenizer merges across the prompt/reply boundary); use a chat template whose"
                    " assistant header ends at a token boundary (e.g. with a newline or special token)"
                )
            reply_ids = ids[len(p) :]
            if eos not in reply_ids:
                raise ConfigError(
                    f"{where[i]}: the chat template does not end the assistant turn with the EOS token"
                    f" {tokenizer.eos_token!r} (id {eos}), so the model would not learn to stop; use a"
                    " template that closes assistant turns with EOS"
                )
            cut.append(reply_ids)
        out.append(_Templated(p, cut))
    return out


def _check_prompt_lengths(items: list[_Templated], where: Sequence[str], max_length: int) -> None:
    budget = max_length - MIN_COMPLETION_TOKENS
    bad = [i for i, t in enumerate(items) if len(t.prompt_ids) > budget]
    if not bad:
        return
    longest = max(len(items[i].prompt_ids) for i in bad)
    source, _, line = where[bad[0]].rpartition(":")
    raise DataError(
        f"{source}: {len(bad)} of {len(items)} rows have a prompt too long for max_length={max_length}"
        f" tokens (longest {longest}, first at line {line}; a prompt may use at most {budget} tokens to"
        f" leave {MIN_COMPLETION_TOKENS} for the reply); raise max_length or shorten those prompts"
    )


def _empty(kind: str) -> DataError:
    return DataError(f"no {kind} to encode (empty dataset)")


def encode_demos(
    demos: Sequence[Demo], tokenizer: Any, max_length: int, chat_template: str | None = None
) -> EncodeResult:
    """Tokenize demonstrations; rows = list[EncodedDemo]. Replies longer than the room left are cut."""
    if not demos:
        raise _empty("demonstrations")
    where = [f"{d.source}:{d.line}" for d in demos]
    items = _template_rows(
        [d.prompt for d in demos], [[d.completion] for d in demos], where, tokenizer, chat_template
    )
    _check_prompt_lengths(items, where, max_length)
    rows, truncated, lengths = [], 0, []
    for d, t in zip(demos, items, strict=True):
        room = max_length - len(t.prompt_ids)
        reply = t.replies[0]
        truncated += len(reply) > room
        lengths.append(len(t.prompt_ids) + len(reply))
        rows.append(EncodedDemo(t.prompt_ids, reply[:room], d.line, d.source))
    return EncodeResult(rows=rows, truncated=truncated, full_lengths=lengths)


def encode_prefs(
    prefs: Sequence[Pref], tokenizer: Any, max_length: int, chat_template: str | None = None
) -> EncodeResult:
    """Tokenize preference pairs; rows = list[EncodedPref]; a row is truncated if either reply is cut."""
    if not prefs:
        raise _empty("preference pairs")
    where = [f"{p.source}:{p.line}" for p in prefs]
    items = _template_rows(
        [p.prompt for p in prefs], [[p.chosen, p.rejected] for p in prefs], where, tokenizer, chat_template
    )
    _check_prompt_lengths(items, where, max_length)
    rows, truncated, lengths = [], 0, []
    for p, t in zip(prefs, items, strict=True):
        room = max_length - len(t.prompt_ids)
        chosen, rejected = t.replies
        truncated += max(len(chosen), len(rejected)) > room
        lengths.append(len(t.prompt_ids) + max(len(chosen), len(rejected)))
        rows.append(EncodedPref(t.prompt_ids, chosen[:room], rejected[:room], p.margin, p.line, p.source))
    return EncodeResult(rows=rows, truncated=truncated, full_lengths=lengths)


def encode_replies(
    prompts: Sequence[str],
    replies: Sequence[str],
    tokenizer: Any,
    max_length: int,
    where: str = "production",
    first_line: int = 1,
    chat_template: str | None = None,
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, reply ids) of single-turn prompts and their replies, encoded exactly as
    :func:`encode_prefs` encodes a preference pair's prompt and reply (the prompt as one user message);
    each reply is cut to fit ``max_length``. Errors name ``where:line`` (lines from ``first_line``)."""
    if not prompts:
        raise _empty("replies")
    lines = [f"{where}:{first_line + i}" for i in range(len(prompts))]
    msgs = [[{"role": "user", "content": p}] for p in prompts]
    items = _template_rows(msgs, [[r] for r in replies], lines, tokenizer, chat_template)
    _check_prompt_lengths(items, lines, max_length)
    return [(t.prompt_ids, t.replies[0][: max_length - len(t.prompt_ids)]) for t in items]


def encode_prompts(
    prompts: Sequence[Prompt], tokenizer: Any, chat_template: str | None = None
) -> list[list[int]]:
    """Prompt ids for generation: the chat template with ``add_generation_prompt=True``, per prompt."""
    _check_template(tokenizer, chat_template)
    return _ids(tokenizer, [_render(tokenizer, p.prompt, chat_template, True) for p in prompts])
