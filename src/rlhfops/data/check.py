"""``rlhfops data check`` and ``rlhfops data import``: the functions behind the commands.

:func:`check_file` runs exactly the checks training runs (read -> schema -> optionally the chat template
and length checks of :mod:`rlhfops.data.encode`), but collects every schema error instead of stopping at
the first. :func:`import_file` converts a foreign format (``hh-rlhf``) and writes the result atomically.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhfops.data.encode import MIN_COMPLETION_TOKENS, encode_demos, encode_prefs, fit_prompts
from rlhfops.data.hh import convert_hh_rlhf
from rlhfops.data.io import Row, file_format, read_rows, write_rows
from rlhfops.data.schema import (
    PARSERS,
    Kind,
    demos_from_rows,
    detect_kind,
    parse_prompt,
    prefs_from_rows,
)
from rlhfops.data.truncate import MODES, TruncationCounts
from rlhfops.errors import DataError, UserError


@dataclass(frozen=True, slots=True)
class TokenStats:
    """Token lengths with the chat template applied: prompt + (longest) reply per row, before cutting."""

    model: str
    max_length: int
    mean: float
    median: float
    max: int
    truncated: int  # rows whose reply is cut to fit max_length (prompts: prompts too long to answer)
    modes: dict[str, TruncationCounts | None] = field(default_factory=dict)  # None: the mode refuses
    refusal: str | None = None  # mode error's one-line refusal, when it refuses the file


def _describe(mode: str, c: TruncationCounts | None) -> str:
    if c is None:
        return f"{mode}: refuses the file"
    if mode == "error":
        return f"{mode}: {c.whole} whole, {c.replies_cut} with the reply cut"
    if mode == "drop":
        return f"{mode}: {c.whole} kept whole, {c.dropped} dropped"
    return f"{mode}: {c.whole} whole, {c.truncated} truncated, {c.dropped} dropped"


def truncation_line(stats: TokenStats) -> str:
    """What each ``truncation`` setting would do at this max_length, in one line."""
    parts = "; ".join(_describe(m, stats.modes[m]) for m in MODES if m in stats.modes)
    return f"truncation at max_length={stats.max_length}: {parts}"


@dataclass(slots=True)
class CheckReport:
    """What ``data check`` found: the kind, the row count, every error (in file order), token stats."""

    path: str
    kind: Kind
    rows: int
    errors: list[str] = field(default_factory=list)
    bad_rows: int = 0  # rows with at least one schema error
    tokens: TokenStats | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def _token_stats(
    rows: list[Row],
    kind: Kind,
    tokenizer: Any,
    max_length: int,
    chat_template: str | None,
    reply_room: int = MIN_COMPLETION_TOKENS,
) -> TokenStats:
    """Length statistics and what each truncation mode would do (mode error's refusal kept as text)."""
    modes: dict[str, TruncationCounts | None] = {}
    refusal = None
    if kind == "prompts":
        prompts = [p for p in (parse_prompt(r)[0] for r in rows) if p is not None]
        limit = max_length - reply_room
        fitted = fit_prompts(prompts, tokenizer, limit, "keep_end", chat_template)
        lengths = [len(ids) for ids in fitted.full]
        truncated = sum(n > limit for n in lengths)
        kept = fitted.counts
        modes["error"] = None if truncated else TruncationCounts("error", whole=len(lengths))
        if truncated:
            refusal = (
                f"{prompts[0].source}: {truncated} of {len(lengths)} prompts are too long for"
                f" max_length={max_length} tokens (a prompt may use at most {limit} tokens to leave"
                f" {reply_room} for the reply)"
            )
    else:
        encode = encode_demos if kind == "demos" else encode_prefs
        items = demos_from_rows(rows) if kind == "demos" else prefs_from_rows(rows)
        result = encode(items, tokenizer, max_length, chat_template, "keep_end")
        lengths, kept = result.full_lengths, result.counts or TruncationCounts("keep_end")
        try:
            legacy = encode(items, tokenizer, max_length, chat_template, "error")
            modes["error"], truncated = legacy.counts, legacy.truncated
        except DataError as err:
            modes["error"], truncated, refusal = None, 0, str(err)
    modes["keep_end"] = kept
    modes["drop"] = TruncationCounts("drop", whole=kept.whole, dropped=kept.truncated + kept.dropped)
    name = str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)
    return TokenStats(
        model=name,
        max_length=max_length,
        mean=statistics.fmean(lengths),
        median=float(statistics.median(lengths)),
        max=max(lengths),
        truncated=truncated,
        modes=modes,
        refusal=refusal,
    )


def check_file(
    path: str | Path,
    kind: Kind | None = None,
    tokenizer: Any = None,
    max_length: int = 512,
    chat_template: str | None = None,
    truncation: str = "error",
    max_new_tokens: int | None = None,
) -> CheckReport:
    """Validate a data file as training would, reporting every error.

    Read errors (missing file, invalid JSON...) raise DataError at once (nothing else can be checked).
    Schema errors are collected. With a tokenizer and no schema errors, the chat-template and
    prompt-length checks of training run too: ``tokens`` holds length statistics and what each
    ``truncation`` mode would do (a prompt file's prompts may use ``max_length - max_new_tokens``
    tokens, as in the RL stage; 8 are left when it is None); a refusal by the ``truncation`` mode
    training will use (error: a prompt too long; keep_end / drop: every row dropped) is added to
    ``errors``.
    """
    rows = read_rows(path)
    kind = kind or detect_kind(rows)
    report = CheckReport(path=str(path), kind=kind, rows=len(rows))
    for row in rows:
        errors = PARSERS[kind](row)[1]
        report.errors += errors
        report.bad_rows += bool(errors)
    if tokenizer is not None and report.ok:
        try:
            room = max_new_tokens or MIN_COMPLETION_TOKENS
            report.tokens = _token_stats(rows, kind, tokenizer, max_length, chat_template, room)
        except UserError as err:
            report.errors.append(str(err))
            return report
        counts = report.tokens.modes.get(truncation)
        if counts is None and report.tokens.refusal:
            report.errors.append(report.tokens.refusal)
        elif counts is not None and not counts.whole + counts.truncated + counts.replies_cut:
            report.errors.append(
                f"{path}: truncation={truncation} drops all {report.rows} rows at max_length={max_length};"
                " raise max_length"
            )
    return report


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What ``data import`` did: rows in, rows written, rows skipped (line, reason)."""

    source: str
    out: str
    total: int
    written: int
    skipped: list[tuple[int, str]]


def _hh(path: str | Path, strict: bool) -> tuple[list[dict[str, Any]], int, list[tuple[int, str]]]:
    res = convert_hh_rlhf(path, strict=strict)
    return res.rows, res.total, [(s.line, s.reason) for s in res.skipped]


IMPORTERS: dict[
    str, Callable[[str | Path, bool], tuple[list[dict[str, Any]], int, list[tuple[int, str]]]]
] = {
    "hh-rlhf": _hh,
}


def import_file(
    fmt: str, path: str | Path, out: str | Path, strict: bool = False, force: bool = False
) -> ImportReport:
    """Convert ``path`` from ``fmt`` to rlhfops rows and write them to ``out`` (format by extension).

    The output is written atomically and only when the conversion succeeded; an existing ``out`` is
    refused unless ``force``.
    """
    if fmt not in IMPORTERS:
        raise DataError(f"unknown import format {fmt!r}; use one of {', '.join(sorted(IMPORTERS))}")
    file_format(out)  # an unusable extension fails before any work
    if Path(out).exists() and not force:
        raise DataError(f"{out}: already exists; pass --force to replace it")
    rows, total, skipped = IMPORTERS[fmt](path, strict)
    write_rows(out, rows)
    return ImportReport(source=str(path), out=str(out), total=total, written=len(rows), skipped=skipped)
