"""`rlhfops data check|import`: thin wrappers around rlhfops.data.check."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from rlhfops.data.check import check_file, import_file, truncation_line
from rlhfops.data.formats import export_file
from rlhfops.errors import DataError
from rlhfops.models.loading import load_tokenizer

app = typer.Typer(
    help="Data files: check them as training would, import other formats.", no_args_is_help=True
)

FORMATS_HELP = ".jsonl, .jsonl.gz, .json (a list of objects) or .parquet"


class KindChoice(StrEnum):
    demos = "demos"
    prefs = "prefs"
    prompts = "prompts"


class TruncationChoice(StrEnum):
    keep_end = "keep_end"
    drop = "drop"
    error = "error"


class ImportFormat(StrEnum):
    hh_rlhf = "hh-rlhf"


def _read_template(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise DataError(f"{path}: cannot read the chat template ({err.strerror or err})") from err


CHECK_HELP = (
    "Validate a data file exactly as training reads it and list every error as file:line:field.\n\n"
    "Exits 2 when any row is invalid; otherwise prints the row count and, with --model, token-length"
    " statistics and how many rows each `truncation` setting (keep_end, drop, error) would keep whole,"
    " truncate or drop."
)
IMPORT_HELP = (
    "Convert another format to rlhfops preference rows and print how many rows converted and why any"
    " were skipped.\n\nThe output is written (atomically) only when the import succeeds."
)


@app.command("check", help=CHECK_HELP)
def check(
    file: Path = typer.Argument(..., help=f"Data file: {FORMATS_HELP}.", show_default=False),
    kind: KindChoice = typer.Option(
        None,
        "--kind",
        help="demos (prompt+completion or messages), prefs (prompt+chosen+rejected, optional margin) or"
        " prompts; detected from the first row's fields when omitted.",
    ),
    model: str = typer.Option(
        None,
        "--model",
        help="Also apply this model's chat template and length checks, as training does: the bundled"
        " model name or a local Hugging Face directory. Prints token-length stats and truncated rows.",
    ),
    max_length: int = typer.Option(
        512, "--max-length", min=16, help="Longest prompt+response in tokens (with --model)."
    ),
    chat_template: Path = typer.Option(
        None, "--chat-template", help="File holding a Jinja chat template to use instead of the model's."
    ),
    truncation: TruncationChoice = typer.Option(
        TruncationChoice.error,
        "--truncation",
        help="The truncation setting training will use (with --model): its refusal (error: a prompt too"
        " long; keep_end or drop: every row dropped) fails the check. Counts for every setting are printed.",
    ),
    max_new_tokens: int = typer.Option(
        None,
        "--max-new-tokens",
        min=1,
        help="For a prompts file (with --model): the RL stage's max_new_tokens; a prompt may use"
        " max_length minus this many tokens, as in `train ppo` (8 when omitted).",
    ),
    limit: int = typer.Option(20, "--limit", min=1, help="List at most this many errors."),
) -> None:
    """`rlhfops data check` (help: CHECK_HELP)."""
    template = _read_template(chat_template)
    tokenizer = None
    if model is not None:
        tokenizer = load_tokenizer(model, chat_template=template)
    report = check_file(
        file, kind.value if kind else None, tokenizer, max_length, template, truncation.value, max_new_tokens
    )
    if not report.ok:
        for line in report.errors[:limit]:
            typer.echo(line)
        more = len(report.errors) - limit
        if more > 0:
            typer.echo(f"... and {more} more")
        if report.tokens is not None:  # refused by the chosen truncation: what the others would do
            typer.echo(truncation_line(report.tokens))
        bad = report.bad_rows
        where = f" in {bad} of {report.rows} {report.kind} rows" if bad else ""
        raise DataError(f"{file}: {len(report.errors)} error(s){where}; fix them and check again")
    typer.echo(f"{file}: {report.rows} {report.kind} rows, no errors")
    t = report.tokens
    if t is not None:
        typer.echo(
            f"tokens ({t.model}, chat template applied): mean {t.mean:.1f}, median {t.median:.0f},"
            f" max {t.max}"
        )
        typer.echo(truncation_line(t))


@app.command("import", help=IMPORT_HELP)
def import_(
    file: Path = typer.Argument(..., help=f"File to convert: {FORMATS_HELP}.", show_default=False),
    fmt: ImportFormat = typer.Option(
        ...,
        "--format",
        help="Input format. hh-rlhf: Anthropic HH-RLHF rows {chosen, rejected} as '\\n\\nHuman: ..."
        " \\n\\nAssistant: ...' dialogues -> rows with prompt (a message list), chosen and rejected.",
        show_default=False,
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help=f"Output file; format by extension: {FORMATS_HELP}.", show_default=False
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Stop at the first row that cannot convert instead of skipping it."
    ),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
) -> None:
    """`rlhfops data import` (help: IMPORT_HELP)."""
    report = import_file(fmt.value, file, out, strict=strict, force=force)
    typer.echo(f"imported {report.written} of {report.total} rows to {report.out}")
    if report.skipped:
        reasons: dict[str, int] = {}
        for _, why in report.skipped:
            reasons[why] = reasons.get(why, 0) + 1
        listed = "; ".join(f"{why}: {n}" for why, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
        first = ", ".join(str(line) for line, _ in report.skipped[:10])
        typer.echo(f"skipped {len(report.skipped)} ({listed}); first at lines {first}")


EXPORT_HELP = (
    "Write a demonstrations or preferences file in another tool's format.\n\n"
    "prefs: rlhfops, openai-preference (OpenAI preference fine-tuning), trl-conversational (TRL prompt /"
    " chosen / rejected message lists). demos: rlhfops, openai-chat (OpenAI chat fine-tuning messages),"
    " alpaca (instruction / input / output). Rows the format cannot hold (multi-turn, system or tool"
    " messages where unsupported) are refused with a count and the first file:line."
)


@app.command("export", help=EXPORT_HELP)
def export(
    file: Path = typer.Argument(
        ..., help=f"Demonstrations or preferences: {FORMATS_HELP}.", show_default=False
    ),
    fmt: str = typer.Option(..., "--format", help="Target row format (see above).", show_default=False),
    out: Path = typer.Option(
        ..., "--out", "-o", help=f"Output file; file type by extension: {FORMATS_HELP}.", show_default=False
    ),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
) -> None:
    """`rlhfops data export` (help: EXPORT_HELP)."""

    kind, conv = export_file(file, fmt, out, force=force)
    typer.echo(f"wrote {len(conv.rows)} {kind} row(s) as {fmt} to {out}")
    if conv.refused:
        typer.echo(conv.summary())
