"""Demonstration and preference rows: accepted shapes (TRL-compatible field names) and validation.

Demonstrations (SFT), one of:

* ``{"prompt": str, "completion": str}``
* ``{"prompt": [messages], "completion": [one assistant message]}`` (either side may also be a string)
* ``{"messages": [messages]}``: the last message must be the assistant's reply; the rest is the prompt.

Preferences (reward model, DPO), one of:

* ``{"prompt": str | [messages], "chosen": str | [one assistant message], "rejected": ...}``
* TRL's implicit prompt: ``{"chosen": [messages], "rejected": [messages]}`` with no ``prompt``; the two
  conversations share every message but the last, which is the assistant's reply in each.

plus an optional numeric ``"margin"`` (how much better ``chosen`` is; used by the Bradley-Terry loss).
Prompts (PPO rollouts, evaluation): ``{"prompt": str | [messages]}``; other fields are ignored, so
demonstration and preference files also serve as prompt files.

Length rule: every text field (a string prompt, a reply, a message's ``content``) may hold at most
:data:`MAX_FIELD_CHARS` (100,000) characters; a longer one is an error ``file:line:field: too long``,
found before tokenizing (the token limit ``max_length`` then cuts replies, see
:mod:`rlhfops.data.encode`). A line of a JSONL file may be at most
:data:`rlhfops.data.io.MAX_LINE_BYTES` (64 MiB); a longer one stops the read at that line.

Other fields (ids, metadata) are ignored. A message is ``{"role": ..., "content": str}`` with role one
of system, user, assistant, tool; only role and content are kept. A string prompt becomes
``[{"role": "user", "content": s}]``. A prompt must end with a user (or tool) message.

Errors are one line each, ``file:line:field: what is wrong``. :func:`validate_demos` /
:func:`validate_prefs` list every error (for ``rlhfops data check``); :func:`load_demos` /
:func:`load_prefs` stop at the first one (for training). Both run the same parser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rlhfops.data.io import Row, read_rows
from rlhfops.errors import DataError

ROLES = ("system", "user", "assistant", "tool")
# The longest text field (a prompt, a reply, a message's content) in characters. Rows over it are refused
# here, while reading and before any tokenizer sees them: tokenizing one 30 MB reply took 6.6 GB. 100,000
# characters is ~25,000 tokens, three times the bundled model's context (8,192), so no usable row is lost.
MAX_FIELD_CHARS = 100_000
PROMPT_END_ROLES = ("user", "tool")
Kind = Literal["demos", "prefs", "prompts"]


@dataclass(frozen=True, slots=True)
class Demo:
    """A demonstration: prompt messages and the ideal assistant reply."""

    prompt: list[dict[str, str]]
    completion: str
    line: int
    source: str


@dataclass(frozen=True, slots=True)
class Pref:
    """A preference pair: prompt messages, the preferred and the dispreferred reply, optional margin."""

    prompt: list[dict[str, str]]
    chosen: str
    rejected: str
    margin: float | None
    line: int
    source: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt alone (for generation): its messages, ending with a user message."""

    prompt: list[dict[str, str]]
    line: int
    source: str


class _Row:
    """Collects the errors of one row; ``where(field)`` gives the ``file:line:field`` prefix."""

    def __init__(self, row: Row) -> None:
        self.row = row
        self.errors: list[str] = []

    def err(self, field: str, message: str) -> None:
        where = f"{self.row.source}:{self.row.line}"
        self.errors.append(f"{where}:{field}: {message}" if field else f"{where}: {message}")

    def get(self, key: str) -> Any:
        return self.row.data.get(key)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {str: "a string", list: "a list", dict: "an object", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def _text(r: _Row, field: str, value: Any) -> str | None:
    """A non-empty string, else an error."""
    if value is None:
        r.err(field, "missing field")
    elif not isinstance(value, str):
        r.err(field, f"must be a string, got {_type_name(value)}")
    elif len(value) > MAX_FIELD_CHARS:
        r.err(
            field,
            f"too long: {len(value):,} characters; a text field may hold at most {MAX_FIELD_CHARS:,}"
            " (split or shorten it)",
        )
    elif not value.strip():
        r.err(field, "empty string")
    else:
        return value
    return None


def _messages(r: _Row, field: str, value: Any) -> list[dict[str, str]] | None:
    """A non-empty list of ``{"role", "content"}`` messages with known roles and non-empty content."""
    if not isinstance(value, list):
        r.err(field, f"must be a string or a list of messages, got {_type_name(value)}")
        return None
    if not value:
        r.err(field, "empty message list")
        return None
    out: list[dict[str, str]] = []
    before = len(r.errors)
    for i, msg in enumerate(value):
        at = f"{field}[{i}]"
        if not isinstance(msg, dict):
            r.err(at, f"a message must be an object with role and content, got {_type_name(msg)}")
            continue
        role = msg.get("role")
        if role is None:
            r.err(f"{at}.role", "missing field")
        elif role not in ROLES:
            r.err(f"{at}.role", f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        content = _text(r, f"{at}.content", msg.get("content"))
        if content is not None and role in ROLES:
            out.append({"role": role, "content": content})
    return out if len(r.errors) == before else None


def _prompt(r: _Row, field: str, value: Any) -> list[dict[str, str]] | None:
    if value is None:
        r.err(field, "missing field")
        return None
    if isinstance(value, str):
        text = _text(r, field, value)
        return None if text is None else [{"role": "user", "content": text}]
    msgs = _messages(r, field, value)
    if msgs is not None and msgs[-1]["role"] not in PROMPT_END_ROLES:
        r.err(field, f"the last prompt message must be from the user, got {msgs[-1]['role']!r}")
        return None
    return msgs


def _reply(r: _Row, field: str, value: Any) -> str | None:
    """A reply: a string, or a list holding exactly one assistant message."""
    if value is None or isinstance(value, str):
        return _text(r, field, value)
    msgs = _messages(r, field, value)
    if msgs is None:
        return None
    if len(msgs) != 1 or msgs[0]["role"] != "assistant":
        roles = [m["role"] for m in msgs]
        r.err(field, f"must be one assistant message, got roles {roles}")
        return None
    return msgs[0]["content"]


def _split_conversation(r: _Row, field: str, value: Any) -> tuple[list[dict[str, str]], str] | None:
    """A full conversation -> (prompt messages, final assistant reply)."""
    if value is None:
        r.err(field, "missing field")
        return None
    msgs = _messages(r, field, value)
    if msgs is None:
        return None
    if msgs[-1]["role"] != "assistant":
        r.err(field, f"the last message must be the assistant's reply, got {msgs[-1]['role']!r}")
        return None
    if len(msgs) < 2 or msgs[-2]["role"] not in PROMPT_END_ROLES:
        r.err(field, "the assistant's reply must follow a user message (the prompt)")
        return None
    return msgs[:-1], msgs[-1]["content"]


def parse_demo(row: Row) -> tuple[Demo | None, list[str]]:
    """One row -> (Demo or None, every error found in it)."""
    r = _Row(row)
    if not isinstance(row.data, dict):
        r.err("", "expected a JSON object")
        return None, r.errors
    if row.data.get("messages") is not None:
        if row.data.get("prompt") is not None or row.data.get("completion") is not None:
            r.err("messages", "give either 'messages' or 'prompt' + 'completion', not both")
            return None, r.errors
        split = _split_conversation(r, "messages", row.data["messages"])
        if split is None:
            return None, r.errors
        prompt, completion = split
    else:
        if row.data.get("prompt") is None and row.data.get("completion") is None:
            keys = ", ".join(sorted(row.data)) or "none"
            r.err(
                "",
                f"missing fields: a demonstration needs 'prompt' + 'completion' or 'messages' (has {keys})",
            )
            return None, r.errors
        prompt = _prompt(r, "prompt", row.data.get("prompt"))
        completion = _reply(r, "completion", row.data.get("completion"))
    if r.errors or prompt is None or completion is None:
        return None, r.errors
    return Demo(prompt=prompt, completion=completion, line=row.line, source=row.source), []


def _margin(r: _Row, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        r.err("margin", f"must be a number, got {value!r}")
        return None
    if not math.isfinite(value):
        r.err("margin", f"must be a finite number, got {value!r}")
        return None
    return float(value)


def parse_pref(row: Row) -> tuple[Pref | None, list[str]]:
    """One row -> (Pref or None, every error found in it)."""
    r = _Row(row)
    data = row.data
    if not isinstance(data, dict):
        r.err("", "expected a JSON object")
        return None, r.errors
    chosen_v, rejected_v = data.get("chosen"), data.get("rejected")
    implicit = data.get("prompt") is None and isinstance(chosen_v, list) and isinstance(rejected_v, list)
    if implicit:
        a = _split_conversation(r, "chosen", chosen_v)
        b = _split_conversation(r, "rejected", rejected_v)
        prompt, chosen, rejected = (a[0], a[1], b[1]) if a and b else (None, None, None)
        if a and b and a[0] != b[0]:
            at = next((i for i, (x, y) in enumerate(zip(a[0], b[0], strict=False)) if x != y), None)
            at = min(len(a[0]), len(b[0])) if at is None else at
            r.err(
                "rejected",
                f"chosen and rejected conversations must share every message but the last (they differ"
                f" at message {at}); or give the shared part as 'prompt'",
            )
    else:
        if data.get("prompt") is None and isinstance(chosen_v, str | type(None)):
            r.err("prompt", "missing field (string chosen/rejected need a 'prompt')")
            prompt = None
        else:
            prompt = _prompt(r, "prompt", data.get("prompt"))
        chosen = _reply(r, "chosen", chosen_v)
        rejected = _reply(r, "rejected", rejected_v)
    margin = _margin(r, data.get("margin"))
    if chosen is not None and rejected is not None and chosen.strip() == rejected.strip():
        r.err("rejected", "identical to chosen; identical responses carry no preference")
    if r.errors or prompt is None or chosen is None or rejected is None:
        return None, r.errors
    pref = Pref(
        prompt=prompt, chosen=chosen, rejected=rejected, margin=margin, line=row.line, source=row.source
    )
    return pref, []


def parse_prompt(row: Row) -> tuple[Prompt | None, list[str]]:
    """One row -> (Prompt or None, every error found in it)."""
    r = _Row(row)
    prompt = _prompt(r, "prompt", row.data.get("prompt"))
    if prompt is None:
        return None, r.errors
    return Prompt(prompt=prompt, line=row.line, source=row.source), []


def validate_prompts(rows: Sequence[Row]) -> list[str]:
    """Every error in ``rows`` read as prompts, in file order (empty list: all valid)."""
    return [e for row in rows for e in parse_prompt(row)[1]]


def load_prompts(path: str | Path) -> list[Prompt]:
    """Read and validate a prompts file; stops with a one-line DataError at the first problem."""
    out: list[Prompt] = []
    for row in read_rows(path):
        prompt, errors = parse_prompt(row)
        if prompt is None:
            raise DataError(errors[0])
        out.append(prompt)
    return out


def validate_demos(rows: Sequence[Row]) -> list[str]:
    """Every error in ``rows`` read as demonstrations, in file order (empty list: all valid)."""
    return [e for row in rows for e in parse_demo(row)[1]]


def validate_prefs(rows: Sequence[Row]) -> list[str]:
    """Every error in ``rows`` read as preference pairs, in file order (empty list: all valid)."""
    return [e for row in rows for e in parse_pref(row)[1]]


def demos_from_rows(rows: Sequence[Row]) -> list[Demo]:
    """Parse rows as demonstrations; the first error raises DataError (one line)."""
    out: list[Demo] = []
    for row in rows:
        demo, errors = parse_demo(row)
        if demo is None:
            raise DataError(errors[0])
        out.append(demo)
    return out


def prefs_from_rows(rows: Sequence[Row]) -> list[Pref]:
    """Parse rows as preference pairs; the first error raises DataError (one line)."""
    out: list[Pref] = []
    for row in rows:
        pref, errors = parse_pref(row)
        if pref is None:
            raise DataError(errors[0])
        out.append(pref)
    return out


def load_demos(path: str | Path) -> list[Demo]:
    """Read and validate a demonstrations file; stops with a one-line DataError at the first problem."""
    return demos_from_rows(read_rows(path))


def load_prefs(path: str | Path) -> list[Pref]:
    """Read and validate a preferences file; stops with a one-line DataError at the first problem."""
    return prefs_from_rows(read_rows(path))


def detect_kind(rows: Sequence[Row]) -> Kind:
    """From the first row's fields: chosen/rejected -> 'prefs'; completion/messages -> 'demos';
    prompt alone -> 'prompts'; anything else is a one-line DataError."""
    first = rows[0]
    keys = set(first.data)
    if keys & {"chosen", "rejected"}:
        return "prefs"
    if keys & {"completion", "messages"}:
        return "demos"
    if "prompt" in keys:
        return "prompts"
    shown = ", ".join(sorted(keys)) or "none"
    raise DataError(
        f"{first.source}:{first.line}: cannot tell the kind of data from the fields ({shown}): demos need"
        " prompt+completion or messages, prefs prompt+chosen+rejected, prompts a prompt; or pass --kind"
    )


VALIDATORS = {"demos": validate_demos, "prefs": validate_prefs, "prompts": validate_prompts}
PARSERS = {"demos": parse_demo, "prefs": parse_pref, "prompts": parse_prompt}
