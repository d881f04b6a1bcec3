"""Export formats other tools read: preference (DPO) and supervised fine-tuning rows.

Pure conversion: a :class:`~rlhfops.data.schema.Pref` / :class:`~rlhfops.data.schema.Demo` (or the
same fields from the annotation database) becomes one row of the target format, or a *refusal reason*
when the format cannot hold it. Nothing is dropped silently: :func:`convert` returns the rows and, per
reason, the count and the first place (``file:line`` or ``item N``) it happened, and the caller writes
the rows atomically (:func:`rlhfops.data.io.write_rows`) and prints the refusals.

Preference formats
  * ``rlhfops`` -- ``{"prompt", "chosen", "rejected"}`` (the engine's own, TRL's standard format).
  * ``openai-preference`` -- OpenAI preference (DPO) fine-tuning JSONL,
    https://developers.openai.com/api/docs/guides/direct-preference-optimization :
    ``{"input": {"messages": [...]}, "preferred_output": [{"role": "assistant", "content"}],
    "non_preferred_output": [...]}``. "Currently, we only train on one-turn conversations for each
    example": a prompt holding an earlier assistant turn is refused (``multi_turn``); a ``tool`` message
    needs a ``tool_call_id`` rlhfops does not keep, so it is refused too (``tool_message``).
  * ``trl-conversational`` -- TRL's conversational preference type with an explicit prompt,
    https://huggingface.co/docs/trl/dataset_formats : ``{"prompt": [messages], "chosen": [{"role":
    "assistant", ...}], "rejected": [...]}``. Holds any conversation rlhfops holds.

Demonstration (SFT) formats
  * ``rlhfops`` -- ``{"prompt", "completion"}``.
  * ``openai-chat`` -- OpenAI chat fine-tuning JSONL ``{"messages": [...]}`` (the conversation ending
    with the assistant's reply), https://developers.openai.com/api/docs/guides/supervised-fine-tuning ;
    ``tool`` messages refused as above.
  * ``alpaca`` -- Stanford Alpaca ``{"instruction", "input", "output"}``,
    https://github.com/tatsu-lab/stanford_alpaca#data-release : one instruction, one reply, no system
    prompt; multi-turn prompts (``multi_turn``) and system messages (``system_message``) are refused.

Preference labels rlhfops keeps out of every format (``tie``, ``both_bad``) are refused by the export
before they reach a converter (:mod:`rlhfops.annotate.export`), with the same count-and-first report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhfops.data.io import file_format, read_rows, write_rows
from rlhfops.data.schema import demos_from_rows, detect_kind, prefs_from_rows
from rlhfops.errors import UserError

Messages = list[dict[str, str]]
Converted = dict[str, Any] | str  # a row, or a refusal reason


@dataclass(frozen=True, slots=True)
class PrefIn:
    """One preference to convert: prompt messages, the preferred and dispreferred reply, where it is from."""

    prompt: Messages
    chosen: str
    rejected: str
    where: str
    extra: dict[str, Any] = field(default_factory=dict)  # kept only by the rlhfops format


@dataclass(frozen=True, slots=True)
class DemoIn:
    """One demonstration to convert: prompt messages, the ideal reply, where it is from."""

    prompt: Messages
    completion: str
    where: str


@dataclass
class Refused:
    """How many rows a format refused for one reason, and where the first one was."""

    count: int
    first: str


@dataclass
class Conversion:
    """The converted rows and, per refusal reason, a :class:`Refused`."""

    rows: list[dict[str, Any]]
    refused: dict[str, Refused]

    def refuse(self, reason: str, where: str, count: int = 1) -> None:
        if reason in self.refused:
            self.refused[reason].count += count
        else:
            self.refused[reason] = Refused(count, where)

    def summary(self) -> str:
        """``"refused 3 row(s): 2 multi_turn (first at a.jsonl:4), 1 tie (first at item 9)"`` or ``""``."""
        if not self.refused:
            return ""
        total = sum(r.count for r in self.refused.values())
        parts = ", ".join(f"{r.count} {k} (first at {r.first})" for k, r in self.refused.items())
        return f"refused {total} row(s) the format cannot hold: {parts}"


def _assistant(text: str) -> Messages:
    return [{"role": "assistant", "content": text}]


def _one_turn(prompt: Messages) -> str | None:
    """Refusal reason for a prompt with an earlier assistant turn (not one turn) or a tool message."""
    roles = [m["role"] for m in prompt]
    if "assistant" in roles:
        return "multi_turn"
    if "tool" in roles:
        return "tool_message"
    return None


def _rlhfops_pref(p: PrefIn) -> Converted:
    prompt: Any = p.prompt[0]["content"] if len(p.prompt) == 1 and p.prompt[0]["role"] == "user" else p.prompt
    return {"prompt": prompt, "chosen": p.chosen, "rejected": p.rejected, **p.extra}


def _openai_pref(p: PrefIn) -> Converted:
    reason = _one_turn(p.prompt)
    if reason:
        return reason
    return {
        "input": {"messages": [dict(m) for m in p.prompt]},
        "preferred_output": _assistant(p.chosen),
        "non_preferred_output": _assistant(p.rejected),
    }


def _trl_pref(p: PrefIn) -> Converted:
    return {
        "prompt": [dict(m) for m in p.prompt],
        "chosen": _assistant(p.chosen),
        "rejected": _assistant(p.rejected),
    }


def _rlhfops_demo(d: DemoIn) -> Converted:
    prompt: Any = d.prompt[0]["content"] if len(d.prompt) == 1 and d.prompt[0]["role"] == "user" else d.prompt
    return {"prompt": prompt, "completion": d.completion}


def _openai_chat(d: DemoIn) -> Converted:
    if any(m["role"] == "tool" for m in d.prompt):
        return "tool_message"
    return {"messages": [dict(m) for m in d.prompt] + _assistant(d.completion)}


def _alpaca(d: DemoIn) -> Converted:
    roles = [m["role"] for m in d.prompt]
    if "system" in roles:
        return "system_message"
    if roles != ["user"]:
        return "multi_turn"
    return {"instruction": d.prompt[0]["content"], "input": "", "output": d.completion}


PREF_FORMATS: dict[str, Callable[[PrefIn], Converted]] = {
    "rlhfops": _rlhfops_pref,
    "openai-preference": _openai_pref,
    "trl-conversational": _trl_pref,
}
DEMO_FORMATS: dict[str, Callable[[DemoIn], Converted]] = {
    "rlhfops": _rlhfops_demo,
    "openai-chat": _openai_chat,
    "alpaca": _alpaca,
}


def check_format(kind: str, fmt: str) -> Callable[[Any], Converted]:
    """The converter for ``fmt`` of ``kind`` ('prefs' or 'demos'); an unknown name is a one-line UserError."""
    table: dict[str, Callable[[Any], Converted]] = PREF_FORMATS if kind == "prefs" else DEMO_FORMATS  # type: ignore[assignment]
    if fmt not in table:
        raise UserError(f"--format {fmt!r}: not a {kind} export format; use one of {', '.join(table)}")
    return table[fmt]


def convert(
    kind: str, fmt: str, items: Iterable[PrefIn | DemoIn], conv: Conversion | None = None
) -> Conversion:
    """Convert ``items`` (PrefIn for prefs, DemoIn for demos) to ``fmt``; refusals counted, not raised."""
    fn = check_format(kind, fmt)
    out = conv or Conversion([], {})
    for item in items:
        row = fn(item)
        if isinstance(row, str):
            out.refuse(row, item.where)
        else:
            out.rows.append(row)
    return out


def export_file(path: Any, fmt: str, out: Any, force: bool = False) -> tuple[str, Conversion]:
    """Convert a demonstrations or preferences file (any shape rlhfops reads) to ``fmt``, written atomically.

    Returns (kind, conversion). Invalid rows stop it with the first ``file:line:field`` error (as training
    would); rows the format cannot hold are refused with ``file:line`` of the first.
    """

    out = Path(out)
    file_format(out)
    if out.exists() and not force:
        raise UserError(f"{out}: exists; pass --force to replace it")
    rows = read_rows(path)
    if not rows:
        raise UserError(f"{path}: no rows to export")
    kind = detect_kind(rows)
    if kind == "prompts":
        raise UserError(f"{path}: holds prompts only; export needs demonstrations or preferences")
    check_format(kind, fmt)
    if kind == "prefs":
        items: list[Any] = [
            PrefIn(p.prompt, p.chosen, p.rejected, f"{p.source}:{p.line}") for p in prefs_from_rows(rows)
        ]
    else:
        items = [DemoIn(d.prompt, d.completion, f"{d.source}:{d.line}") for d in demos_from_rows(rows)]
    conv = convert(kind, fmt, items)
    if not conv.rows:
        raise UserError(f"{path}: no row fits --format {fmt}; {conv.summary()}")
    write_rows(out, conv.rows)
    return kind, conv
