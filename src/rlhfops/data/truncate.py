"""What a stage does with a row that does not fit in ``max_length`` tokens: the ``truncation`` setting.

* ``keep_end`` keeps the end of the conversation and the reply whole: it drops the earliest whole
  messages (a leading system message stays) until prompt + reply fit; when the last message alone is
  still too long, it cuts that message's beginning. A row whose reply does not fit even then is dropped.
* ``drop`` skips every row that does not fit whole.
* ``error`` (the default; the behaviour before the setting existed) cuts a reply to the room its prompt
  leaves and refuses the whole file when a prompt leaves fewer than ``MIN_COMPLETION_TOKENS`` tokens.

:func:`keep_end` is the message-level search; :mod:`rlhfops.data.encode` supplies the measure (the
templated token count) and turns the counts into :class:`TruncationCounts`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from rlhfops.errors import ConfigError

Truncation = Literal["keep_end", "drop", "error"]
MODES: tuple[str, ...] = ("keep_end", "drop", "error")

TRUNCATION_HELP = (
    "What to do with a row whose prompt and reply do not fit in max_length tokens together (for the RL "
    "stage: a prompt longer than max_length - max_new_tokens). keep_end: keep the reply whole and the "
    "end of the prompt, dropping the earliest whole messages first (a leading system message stays) and "
    "cutting the beginning of the last message only when it alone is too long; a row whose reply does "
    "not fit even then is dropped (the right choice for multi-turn data such as HH-RLHF). drop: skip the "
    "row. error (the default, the behaviour before this setting): a reply is cut to the room its prompt "
    "leaves, and a prompt that leaves fewer than 8 tokens refuses the whole file, naming this setting. "
    "error stays the default so that a config which ran before trains on the same tokens and reproduces "
    "its numbers (keep_end would change every row whose reply used to be cut); nothing is changed "
    "silently: cut replies are counted, too-long prompts stop the run. The counts (whole, truncated, "
    "dropped, replies_cut) are in summary.json; `rlhfops data check --model` shows them for every setting "
    "before training."
)


@dataclass(slots=True)
class TruncationCounts:
    """Rows of one data file by what the ``truncation`` setting did to them.

    ``truncated``: prompt cut by keep_end; ``replies_cut``: reply cut (mode error only);
    ``dropped``: skipped (drop, or keep_end when the reply alone does not fit).
    """

    mode: str
    whole: int = 0
    truncated: int = 0
    dropped: int = 0
    replies_cut: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_mode(mode: str) -> None:
    """A one-line error for an unknown mode (callers outside the typed configs)."""
    if mode not in MODES:
        raise ConfigError(f"truncation={mode!r}: use one of {', '.join(MODES)}")


def _template_refused(err: Exception) -> bool:
    """The chat template raised (jinja2's ``TemplateError``, e.g. its ``raise_exception``)."""
    return any(c.__module__.startswith("jinja2") for c in type(err).__mro__)


def keep_end(
    messages: list[dict[str, str]],
    measure: Callable[[list[dict[str, str]]], int],
    limit: int,
    tokenizer: Any,
) -> list[dict[str, str]] | None:
    """The messages with the most of the conversation's end whose ``measure`` (tokens) is <= ``limit``.

    Drops the earliest whole messages one at a time (keeping a leading system message; a suffix the
    chat template refuses, e.g. one starting with an assistant turn under a strict template, is
    skipped); when only the last message is left and still too long, cuts the beginning of its content
    token by token. None when nothing fits (the reply alone is too long).
    """
    head = messages[:1] if messages[0]["role"] == "system" and len(messages) > 1 else []
    body = messages[len(head) :]
    for k in range(1, len(body)):
        candidate = [*head, *body[k:]]
        try:
            if measure(candidate) <= limit:
                return candidate
        except Exception as err:  # jinja2 is not imported here (it is heavy): its TemplateError by name
            if not _template_refused(err):
                raise
            continue
    last = body[-1]
    ids = tokenizer(last["content"], add_special_tokens=False)["input_ids"]
    keep = len(ids)
    candidate = [*head, last]
    while True:
        over = measure(candidate) - limit
        if over <= 0:
            return candidate
        keep -= over
        if keep <= 0:
            return None
        text = tokenizer.decode(ids[-keep:]).lstrip("\ufffd")  # a split multi-byte character
        if not text.strip():
            return None
        candidate = [*head, {**last, "content": text}]
