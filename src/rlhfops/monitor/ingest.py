"""Reading a production file (JSONL or CSV): check every row first, then stream records in bounded batches.

A production file is JSONL (``.jsonl``, ``.jsonl.gz``, ``.ndjson``) or CSV (``.csv``, with a header),
one record per row:

=================  ========================================  =========
field              type                                      required
=================  ========================================  =========
``prompt``         non-empty string                          yes
``response``       string (may be empty)                     yes
``model_id``       non-empty string                          yes
``time``           ISO 8601 date-time; no offset means UTC   yes
``id``             string (a request id)                     no
``task_completed`` bool (CSV: true/false/1/0/yes/no)         no
``review_minutes`` number >= 0                               no
``client_flag``    bool                                      no
=================  ========================================  =========

Other fields are ignored. An empty CSV cell or a JSON ``null`` leaves an optional field unset.
Row numbers in errors are the file's 1-based line numbers (for CSV, the header is line 1 and a row
that spans lines is reported at its last line).

:func:`ingest_production_file` reads the file twice: a first pass checks EVERY row and raises one
DataError line naming the first bad row and field (and how many rows are bad) before anything is
written; the second pass hands batches of records to a ``sink(batch)`` callable. Memory stays bounded
by the batch size. The sinks here (:class:`JsonlSink`, :class:`ParquetSink`) write to a temporary file
and move it into place only when the whole file went through, so nothing is ever half-written.
"""

from __future__ import annotations

import abc
import codecs
import contextlib
import csv
import gzip
import json
import math
import os
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rlhfops.data.files import OutputError, is_write_failure, output_error
from rlhfops.errors import DataError

FORMATS = (".jsonl", ".jsonl.gz", ".ndjson", ".csv")
REQUIRED = ("prompt", "response", "model_id", "time")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}
MAX_LISTED_ERRORS = 5


@dataclass(frozen=True, slots=True)
class ProductionRecord:
    """One logged production request. ``time`` is timezone-aware (UTC if the file gave no offset)."""

    prompt: str
    response: str
    model_id: str
    time: datetime
    id: str | None = None
    task_completed: bool | None = None
    review_minutes: float | None = None
    client_flag: bool | None = None
    line: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (time as ISO 8601)."""
        return {
            "prompt": self.prompt,
            "response": self.response,
            "model_id": self.model_id,
            "time": self.time.isoformat(),
            "id": self.id,
            "task_completed": self.task_completed,
            "review_minutes": self.review_minutes,
            "client_flag": self.client_flag,
            "line": self.line,
        }


@dataclass
class IngestSummary:
    """What a production file holds: rows, rows per model, time range, how many carry each optional field."""

    path: str
    rows: int = 0
    models: dict[str, int] = field(default_factory=dict)
    time_min: datetime | None = None
    time_max: datetime | None = None
    with_task_completed: int = 0
    with_review_minutes: int = 0
    with_client_flag: int = 0

    def add(self, rec: ProductionRecord) -> None:
        self.rows += 1
        self.models[rec.model_id] = self.models.get(rec.model_id, 0) + 1
        self.time_min = rec.time if self.time_min is None else min(self.time_min, rec.time)
        self.time_max = rec.time if self.time_max is None else max(self.time_max, rec.time)
        self.with_task_completed += rec.task_completed is not None
        self.with_review_minutes += rec.review_minutes is not None
        self.with_client_flag += rec.client_flag is not None


class _RowError(Exception):
    def __init__(self, fld: str, msg: str) -> None:
        super().__init__(f"{fld}: {msg}")


def _fmt(path: str) -> str:
    name = path.lower()
    for ext in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    raise DataError(f"{path}: unknown extension; production logs are .jsonl, .jsonl.gz, .ndjson or .csv")


def _text_lines(path: str) -> Iterator[str]:
    """The file's lines as text (line endings kept), decoded as UTF-8 one line at a time.

    A spreadsheet's byte-order mark is dropped. Bytes that are not UTF-8 raise one DataError line
    ``file:line: not valid UTF-8 (byte N of the line)``; an unreadable (e.g. corrupt gzip) file raises
    ``file: cannot read the file (...)``.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: file not found")
    opener = gzip.open if path.lower().endswith(".gz") else open
    try:
        with opener(p, "rb") as fh:
            for line_no, raw in enumerate(fh, start=1):
                if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8) :]
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DataError(
                        f"{path}:{line_no}: not valid UTF-8 (byte {err.start + 1} of the line); "
                        "save the file as UTF-8, nothing was imported"
                    ) from None
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot read the file ({err})") from None


def _raw_rows(path: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, raw dict) per row, or (line, error message) for a row that cannot be parsed at all."""
    fmt = _fmt(path)
    lines = _text_lines(path)
    with contextlib.closing(lines):
        fh: Iterator[str] = lines
        if fmt == ".csv":
            reader = csv.DictReader(fh)
            if not reader.fieldnames:
                return
            missing = [c for c in REQUIRED if c not in reader.fieldnames]
            if missing:
                yield (
                    1,
                    f"header lacks required column(s) {', '.join(missing)} "
                    f"(has: {', '.join(reader.fieldnames)})",
                )
                return
            try:
                for raw in reader:
                    extra = raw.pop(None, None)  # type: ignore[call-overload]
                    if extra:
                        yield reader.line_num, f"{len(extra)} more cell(s) than the header has columns"
                        continue
                    yield reader.line_num, {k: v for k, v in raw.items() if v is not None}
            except csv.Error as err:
                yield reader.line_num, f"not valid CSV ({err})"
            return
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                yield line_no, f"not valid JSON ({err.msg} at column {err.colno})"
                continue
            yield (
                line_no,
                value if isinstance(value, dict) else f"expected a JSON object, got {type(value).__name__}",
            )


def _text(raw: dict[str, Any], name: str, required: bool, allow_empty: bool = False) -> str | None:
    v = raw.get(name)
    if v is None or (v == "" and not required):
        if required:
            raise _RowError(name, "missing (required)")
        return None
    if not isinstance(v, str):
        raise _RowError(name, f"expected a string, got {type(v).__name__} {v!r}"[:120])
    if not allow_empty and not v.strip():
        raise _RowError(name, "is empty")
    return v


def _bool(raw: dict[str, Any], name: str) -> bool | None:
    v = raw.get(name)
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
        return v.strip().lower() in _TRUE
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    raise _RowError(name, f"expected true/false, got {v!r}"[:120])


def _minutes(raw: dict[str, Any]) -> float | None:
    v = raw.get("review_minutes")
    if v is None or v == "":
        return None
    try:
        x = float(v) if not isinstance(v, bool) else math.nan
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x) or x < 0:
        raise _RowError("review_minutes", f"expected a number >= 0, got {v!r}"[:120])
    return x


def _time(raw: dict[str, Any]) -> datetime:
    v = _text(raw, "time", required=True) or ""
    try:
        t = datetime.fromisoformat(v.strip())
    except ValueError:
        raise _RowError("time", f"{v!r} is not an ISO 8601 date-time (e.g. 2025-03-01T14:05:00Z)") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def parse_record(raw: dict[str, Any], line: int) -> ProductionRecord:
    """Check one raw row and build its record; raises _RowError(field: what) on the first bad field."""
    rid = raw.get("id")
    return ProductionRecord(
        prompt=_text(raw, "prompt", required=True),  # type: ignore[arg-type]
        response=_text(raw, "response", required=True, allow_empty=True),  # type: ignore[arg-type]
        model_id=_text(raw, "model_id", required=True),  # type: ignore[arg-type]
        time=_time(raw),
        id=None if rid is None or rid == "" else str(rid),
        task_completed=_bool(raw, "task_completed"),
        review_minutes=_minutes(raw),
        client_flag=_bool(raw, "client_flag"),
        line=line,
    )


def _records(path: str) -> Iterator[tuple[int, ProductionRecord | str]]:
    for line, raw in _raw_rows(path):
        if isinstance(raw, str):
            yield line, raw
            continue
        try:
            yield line, parse_record(raw, line)
        except _RowError as err:
            yield line, str(err)


def iter_production_records(path: str | Path) -> Iterator[ProductionRecord]:
    """Stream the records of a production file; the first bad row raises DataError ``file:line: field: what``.

    Use :func:`validate_production_file` first when nothing may be consumed before an error is known.
    """
    src = str(path)
    for line, rec in _records(src):
        if isinstance(rec, str):
            raise DataError(f"{src}:{line}: {rec}")
        yield rec


def validate_production_file(path: str | Path) -> IngestSummary:
    """Check every row of a production file (streaming; memory independent of the file size).

    Returns the IngestSummary; raises one DataError line naming the first bad row and field, plus the
    number of bad rows and the next few line numbers, or ``file: no rows`` for an empty file.
    """
    src = str(path)
    summary = IngestSummary(path=src)
    bad: list[tuple[int, str]] = []
    n_bad = 0
    for line, rec in _records(src):
        if isinstance(rec, str):
            n_bad += 1
            if len(bad) < MAX_LISTED_ERRORS:
                bad.append((line, rec))
            continue
        summary.add(rec)
    if n_bad:
        first_line, first_msg = bad[0]
        more = ""
        if n_bad > 1:
            others = ", ".join(str(ln) for ln, _ in bad[1:]) + (", ..." if n_bad > len(bad) else "")
            more = f" ({n_bad} bad rows in all; also lines {others})"
        raise DataError(f"{src}:{first_line}: {first_msg}{more}; fix these rows, nothing was imported")
    if summary.rows == 0:
        raise DataError(f"{src}: no rows (expected one production record per line)")
    return summary


def validate_rows(rows: list[Any], where: str) -> list[ProductionRecord]:
    """Check in-memory rows (e.g. a JSON body); row numbers are 1-based positions in ``rows``.

    Raises one DataError line like :func:`validate_production_file` (``where:N: field: what``, the count
    of bad rows and the next few row numbers) when any row is bad; otherwise returns every record.
    """
    out: list[ProductionRecord] = []
    bad: list[tuple[int, str]] = []
    n_bad = 0
    for i, raw in enumerate(rows, start=1):
        try:
            if not isinstance(raw, dict):
                raise _RowError("row", f"expected a JSON object, got {type(raw).__name__}")
            out.append(parse_record(raw, i))
        except _RowError as err:
            n_bad += 1
            if len(bad) < MAX_LISTED_ERRORS:
                bad.append((i, str(err)))
    if n_bad:
        first_line, first_msg = bad[0]
        more = ""
        if n_bad > 1:
            others = ", ".join(str(ln) for ln, _ in bad[1:]) + (", ..." if n_bad > len(bad) else "")
            more = f" ({n_bad} bad rows in all; also rows {others})"
        raise DataError(f"{where}:{first_line}: {first_msg}{more}; fix these rows, nothing was imported")
    if not out:
        raise DataError(f"{where}: no rows (expected a list of production records)")
    return out


Sink = Callable[[list[ProductionRecord]], None]


def ingest_production_file(path: str | Path, sink: Sink, batch_size: int = 1000) -> IngestSummary:
    """Validate every row (first pass), then stream the records to ``sink`` in batches (second pass).

    The sink is any callable taking ``list[ProductionRecord]``; :class:`JsonlSink` and
    :class:`ParquetSink` write files, a database writer can be plugged in the same way.
    """
    if batch_size < 1:
        raise DataError(f"ingest: batch_size={batch_size} must be >= 1")
    summary = validate_production_file(path)
    batch: list[ProductionRecord] = []
    for rec in iter_production_records(path):
        batch.append(rec)
        if len(batch) >= batch_size:
            sink(batch)
            batch = []
    if batch:
        sink(batch)
    return summary


class _AtomicFileSink(abc.ABC):
    """Writes to a temporary file next to ``target``; ``close()`` moves it into place, ``abort()`` removes it.

    Use as a context manager: an exception inside the ``with`` block aborts, so the target is never
    half-written.
    """

    suffix = ".tmp"

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target)
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.target.name}.", suffix=self.suffix, dir=self.target.parent
            )
            os.close(fd)
        except OSError as err:
            raise _write_error(self.target, err) from None
        self.tmp = Path(tmp)
        self.rows = 0

    def __enter__(self) -> _AtomicFileSink:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.abort()
        except OSError:
            pass  # the first error is the one to report; the temporary file is gone either way
        if is_write_failure(exc):  # a full disk or a read-only directory: one line, not a traceback
            raise output_error(self.target, exc) from None  # type: ignore[arg-type]  # is an OSError

    @abc.abstractmethod
    def _finish(self) -> None:
        """Flush and close the writer."""

    def close(self) -> None:
        try:
            self._finish()
            os.replace(self.tmp, self.target)
        except OSError as err:
            self.tmp.unlink(missing_ok=True)
            raise _write_error(self.target, err) from None

    def abort(self) -> None:
        try:
            self._finish()
        finally:
            self.tmp.unlink(missing_ok=True)


def _write_error(target: Path, err: OSError) -> OSError | OutputError:
    """The one-line OutputError for a refused write (read-only, disk full), else ``err`` unchanged."""
    return output_error(target, err) if is_write_failure(err) else err


class JsonlSink(_AtomicFileSink):
    """A sink writing one JSON object per record (time as ISO 8601)."""

    def __init__(self, target: str | Path) -> None:
        super().__init__(target)
        self._fh = open(self.tmp, "w", encoding="utf-8")

    def __call__(self, batch: list[ProductionRecord]) -> None:
        self._fh.write("".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in batch))
        self.rows += len(batch)

    def _finish(self) -> None:
        if not self._fh.closed:
            self._fh.close()


class ParquetSink(_AtomicFileSink):
    """A sink writing a Parquet file, one row group per batch (pyarrow)."""

    def __init__(self, target: str | Path) -> None:
        import pyarrow as pa

        super().__init__(target)
        self._schema = pa.schema(
            [
                ("prompt", pa.string()),
                ("response", pa.string()),
                ("model_id", pa.string()),
                ("time", pa.timestamp("us", tz="UTC")),
                ("id", pa.string()),
                ("task_completed", pa.bool_()),
                ("review_minutes", pa.float64()),
                ("client_flag", pa.bool_()),
                ("line", pa.int64()),
            ]
        )
        self._writer: Any = None

    def __call__(self, batch: list[ProductionRecord]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is None:
            self._writer = pq.ParquetWriter(str(self.tmp), self._schema)
        cols = {name: [getattr(r, name) for r in batch] for name in self._schema.names}
        cols["time"] = [r.time.astimezone(UTC) for r in batch]
        self._writer.write_table(pa.table(cols, schema=self._schema))
        self.rows += len(batch)

    def _finish(self) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:  # no batch: still write a valid empty file
            self._writer = pq.ParquetWriter(str(self.tmp), self._schema)
        self._writer.close()
