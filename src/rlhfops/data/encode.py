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

Length: what happens to a row whose prompt + reply exceed ``max_length`` is the ``truncation`` mode
(:mod:`rlhfops.data.truncate`): ``keep_end`` cuts the prompt's beginning at message boundaries and keeps
the reply whole, ``drop`` skips the row, ``error`` cuts the reply and refuses the whole file when a
prompt leaves fewer than :data:`MIN_COMPLETION_TOKENS` tokens for it. :class:`EncodeResult` counts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from rlhfops.data.schema import Demo, Pref, Prompt
from rlhfops.data.truncate import TruncationCounts, check_mode, keep_end
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
    """Encoded rows (dropped rows left out), how many had a reply cut to fit max_length (mode error),
    each input row's uncut length and the counts of the truncation mode.

    ``full_lengths[i]`` = len(prompt) + len(longest reply) of input row i before truncation, in tokens.
    """

    rows: list[Any]
    truncated: int
    full_lengths: list[int]
    counts: TruncationCounts | None = None


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


def _check_prompt_lengths(
    items: list[_Templated], where: Sequence[str], max_length: int, setting: bool = True
) -> None:
    budget = max_length - MIN_COMPLETION_TOKENS
    bad = [i for i, t in enumerate(items) if len(t.prompt_ids) > budget]
    if not bad:
        return
    longest = max(len(items[i].prompt_ids) for i in bad)
    source, _, line = where[bad[0]].rpartition(":")
    raise DataError(
        f"{source}: {len(bad)} of {len(items)} rows have a prompt too long for max_length={max_length}"
        f" tokens (longest {longest}, first at line {line}; a prompt may use at most {budget} tokens to"
        f" leave {MIN_COMPLETION_TOKENS} for the reply); raise max_length"
        + (
            ", shorten those prompts or set truncation to keep_end or drop"
            if setting
            else " or shorten those prompts"
        )
    )


def _empty(kind: str) -> DataError:
    return DataError(f"no {kind} to encode (empty dataset)")


class _Fitted(NamedTuple):
    index: int  # the input row
    item: _Templated
    room: int  # tokens the reply may use


def _fit_rows(
    items: list[_Templated],
    prompts: Sequence[list[dict[str, str]]],
    replies: Sequence[Sequence[str]],
    where: Sequence[str],
    tokenizer: Any,
    chat_template: str | None,
    max_length: int,
    truncation: str,
) -> tuple[list[_Fitted], TruncationCounts]:
    """The rows the ``truncation`` mode keeps (with the room their reply may use) and its counts."""
    check_mode(truncation)
    counts = TruncationCounts(truncation)
    if truncation == "error":
        _check_prompt_lengths(items, where, max_length)
        for t in items:
            cut = max(map(len, t.replies)) > max_length - len(t.prompt_ids)
            counts.replies_cut += cut
            counts.whole += not cut
        return [_Fitted(i, t, max_length - len(t.prompt_ids)) for i, t in enumerate(items)], counts
    out: list[_Fitted] = []
    for i, t in enumerate(items):
        if len(t.prompt_ids) + max(map(len, t.replies)) <= max_length:
            counts.whole += 1
            out.append(_Fitted(i, t, max_length))
            continue
        kept = None
        if truncation == "keep_end":

            def measure(msgs: list[dict[str, str]], i: int = i) -> int:
                (u,) = _template_rows([msgs], [replies[i]], [where[i]], tokenizer, chat_template)
                return len(u.prompt_ids) + max(map(len, u.replies))

            kept = keep_end(prompts[i], measure, max_length, tokenizer)
        if kept is None:
            counts.dropped += 1
            continue
        counts.truncated += 1
        (u,) = _template_rows([kept], [replies[i]], [where[i]], tokenizer, chat_template)
        out.append(_Fitted(i, u, max_length))
    return out, counts


def require_rows(result: EncodeResult, path: str, max_length: int) -> EncodeResult:
    """``result`` unless its truncation mode dropped every row (then a one-line error for ``path``)."""
    if not result.rows:
        counts = result.counts
        mode = counts.mode if counts else "error"
        raise DataError(
            f"{path}: all {len(result.full_lengths)} rows were dropped by truncation={mode} (none fits in"
            f" max_length={max_length} tokens with its reply whole); raise max_length"
        )
    return result


def encode_demos(
    demos: Sequence[Demo],
    tokenizer: Any,
    max_length: int,
    chat_template: str | None = None,
    truncation: str = "error",
) -> EncodeResult:
    """Tokenize demonstrations; rows = list[EncodedDemo]. Rows too long for ``max_length`` are handled
    as ``truncation`` says (:mod:`rlhfops.data.truncate`)."""
    if not demos:
        raise _empty("demonstrations")
    where = [f"{d.source}:{d.line}" for d in demos]
    prompts, replies = [d.prompt for d in demos], [[d.completion] for d in demos]
    items = _template_rows(prompts, replies, where, tokenizer, chat_template)
    lengths = [len(t.prompt_ids) + len(t.replies[0]) for t in items]
    fitted, counts = _fit_rows(
        items, prompts, replies, where, tokenizer, chat_template, max_length, truncation
    )
    rows = []
    for f in fitted:
        d, t = demos[f.index], f.item
        rows.append(EncodedDemo(t.prompt_ids, t.replies[0][: f.room], d.line, d.source))
    return EncodeResult(rows=rows, truncated=counts.replies_cut, full_lengths=lengths, counts=counts)


def encode_prefs(
    prefs: Sequence[Pref],
    tokenizer: Any,
    max_length: int,
    chat_template: str | None = None,
    truncation: str = "error",
) -> EncodeResult:
    """Tokenize preference pairs; rows = list[EncodedPref]. Rows too long for ``max_length`` are
    handled as ``truncation`` says; in mode error a row counts as truncated if either reply is cut."""
    if not prefs:
        raise _empty("preference pairs")
    where = [f"{p.source}:{p.line}" for p in prefs]
    prompts, replies = [p.prompt for p in prefs], [[p.chosen, p.rejected] for p in prefs]
    items = _template_rows(prompts, replies, where, tokenizer, chat_template)
    lengths = [len(t.prompt_ids) + max(map(len, t.replies)) for t in items]
    fitted, counts = _fit_rows(
        items, prompts, replies, where, tokenizer, chat_template, max_length, truncation
    )
    rows = []
    for f in fitted:
        p, t = prefs[f.index], f.item
        chosen, rejected = t.replies
        rows.append(
            EncodedPref(t.prompt_ids, chosen[: f.room], rejected[: f.room], p.margin, p.line, p.source)
        )
    return EncodeResult(rows=rows, truncated=counts.replies_cut, full_lengths=lengths, counts=counts)


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
    _check_prompt_lengths(items, lines, max_length, setting=False)
    return [(t.prompt_ids, t.replies[0][: max_length - len(t.prompt_ids)]) for t in items]


def encode_prompts(
    prompts: Sequence[Prompt], tokenizer: Any, chat_template: str | None = None
) -> list[list[int]]:
    """Prompt ids for generation: the chat template with ``add_generation_prompt=True``, per prompt."""
    _check_template(tokenizer, chat_template)
    return _ids(tokenizer, [_render(tokenizer, p.prompt, chat_template, True) for p in prompts])


class FittedPrompts(NamedTuple):
    """Prompt ids that fit (dropped prompts left out), the uncut ids of every prompt, the counts."""

    ids: list[list[int]]
    full: list[list[int]]
    counts: TruncationCounts


def fit_prompts(
    prompts: Sequence[Prompt],
    tokenizer: Any,
    max_prompt_tokens: int,
    truncation: str,
    chat_template: str | None = None,
) -> FittedPrompts:
    """Prompt ids for generation, each at most ``max_prompt_tokens`` long: a longer prompt keeps its end
    (``keep_end``) or is dropped (``drop``); with ``error`` nothing is changed (the caller refuses)."""
    check_mode(truncation)
    full = encode_prompts(prompts, tokenizer, chat_template)
    counts = TruncationCounts(truncation)
    out: list[list[int]] = []
    for p, ids in zip(prompts, full, strict=True):
        if len(ids) <= max_prompt_tokens or truncation == "error":
            counts.whole += len(ids) <= max_prompt_tokens
            out.append(ids)
            continue
        kept = None
        if truncation == "keep_end":

            def measure(msgs: list[dict[str, str]]) -> int:
                return len(_ids(tokenizer, [_render(tokenizer, msgs, chat_template, True)])[0])

            kept = keep_end(p.prompt, measure, max_prompt_tokens, tokenizer)
        if kept is None:
            counts.dropped += 1
            continue
        counts.truncated += 1
        out.append(_ids(tokenizer, [_render(tokenizer, kept, chat_template, True)])[0])
    return FittedPrompts(out, full, counts)
