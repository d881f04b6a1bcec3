"""Import Anthropic HH-RLHF preference rows into rlhfops / TRL preference rows.

HH-RLHF rows are ``{"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": "..."}``: two whole
dialogues as text that share every turn but the last Assistant reply. Each converts to::

    {"prompt": [{"role": "user", ...}, {"role": "assistant", ...}, ..., {"role": "user", ...}],
     "chosen": "<last Assistant reply of chosen>", "rejected": "<last Assistant reply of rejected>"}

The split is at the last ``"\\n\\nAssistant:"`` of each dialogue; the text before it must be identical
in both and is cut into turns at ``"\\n\\nHuman:"`` / ``"\\n\\nAssistant:"`` (contents stripped).
Turns are kept as they are: a few real dialogues hold two Assistant turns in a row, and stay so.

Rows that cannot convert (a field not a string, no Assistant turn, dialogues that differ before the last
reply, an empty final reply or turn, identical replies, a prompt not ending with a Human turn) are
skipped and reported with their line and reason (:class:`HHImport`); with ``strict=True`` the first
such row raises a one-line DataError instead. Every converted row passes
:func:`rlhfops.data.schema.validate_prefs`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from rlhfops.data.io import Row, read_rows
from rlhfops.data.schema import parse_pref
from rlhfops.errors import DataError

HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"
_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLE = {"Human": "user", "Assistant": "assistant"}


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A row the importer left out: where, and why (a short reason, the same text for the same cause)."""

    line: int
    reason: str


class HHImport(NamedTuple):
    """Converted rows, the rows left out, and how many rows the input had."""

    rows: list[dict[str, Any]]
    skipped: list[SkippedRow]
    total: int

    def reasons(self) -> Counter[str]:
        """How many rows were skipped for each reason."""
        return Counter(s.reason for s in self.skipped)


class _Skip(Exception):
    pass


def _turns(prefix: str) -> list[dict[str, str]]:
    """``"\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c"`` -> user/assistant/user messages."""
    parts = _TURN.split(prefix)
    if parts[0].strip():
        raise _Skip("text before the first Human turn")
    messages = []
    for role, content in zip(parts[1::2], parts[2::2], strict=True):
        if not content.strip():
            raise _Skip(f"empty {role} turn in the prompt")
        messages.append({"role": _ROLE[role], "content": content.strip()})
    if not messages:
        raise _Skip("no Human turn before the last Assistant reply")
    if messages[-1]["role"] != "user":
        raise _Skip("the turn before the last Assistant reply is not a Human turn")
    return messages


def _split(text: Any, field: str) -> tuple[str, str]:
    if not isinstance(text, str):
        raise _Skip(f"{field} is not a string")
    if text.startswith("Human:"):
        text = "\n\n" + text
    cut = text.rfind(ASSISTANT)
    if cut < 0:
        raise _Skip(f"{field} has no '\\n\\nAssistant:' turn")
    return text[:cut], text[cut + len(ASSISTANT) :].strip()


def convert_hh_row(data: dict[str, Any]) -> dict[str, Any]:
    """One HH-RLHF row -> ``{"prompt": [messages], "chosen": str, "rejected": str}``; raises _Skip."""
    prefix_c, chosen = _split(data.get("chosen"), "chosen")
    prefix_r, rejected = _split(data.get("rejected"), "rejected")
    if prefix_c != prefix_r:
        raise _Skip("chosen and rejected differ before the last Assistant reply")
    if not chosen or not rejected:
        raise _Skip(f"empty final reply in {'chosen' if not chosen else 'rejected'}")
    if chosen == rejected:
        raise _Skip("identical final replies")
    return {"prompt": _turns(prefix_c), "chosen": chosen, "rejected": rejected}


def convert_hh_rows(rows: list[Row], strict: bool = False) -> HHImport:
    """Convert read rows (see module doc); ``strict``: DataError at the first row that cannot convert."""
    out: list[dict[str, Any]] = []
    skipped: list[SkippedRow] = []
    for row in rows:
        try:
            converted = convert_hh_row(row.data)
            _, errors = parse_pref(Row(converted, row.line, row.source))
            if errors:  # defensive: the output must always pass the preference schema
                raise _Skip(errors[0].split(": ", 1)[-1])
        except _Skip as why:
            if strict:
                raise DataError(
                    f"{row.source}:{row.line}: cannot import as HH-RLHF: {why}; fix or drop the row,"
                    " or import without --strict to skip such rows"
                ) from None
            skipped.append(SkippedRow(row.line, str(why)))
            continue
        out.append(converted)
    return HHImport(rows=out, skipped=skipped, total=len(rows))


def convert_hh_rlhf(path: str | Path, strict: bool = False) -> HHImport:
    """Read an HH-RLHF file (JSONL, JSONL.gz, JSON or Parquet) and convert every row it can."""
    result = convert_hh_rows(read_rows(path), strict=strict)
    if not result.rows:
        top = ", ".join(f"{r} ({n})" for r, n in result.reasons().most_common(3))
        raise DataError(f"{path}: no row could be imported as HH-RLHF ({top}); is this an HH-RLHF file?")
    return result


def import_hh_rlhf(path: str | Path, strict: bool = False) -> list[dict[str, Any]]:
    """The converted rows of an HH-RLHF file (rows that cannot convert are skipped unless ``strict``)."""
    return convert_hh_rlhf(path, strict=strict).rows
