"""Read and write row files: JSONL, JSONL.gz, JSON (a list of objects) and Parquet.

Every row keeps where it came from (``source`` = the path as given, ``line``) so that later checks can
say ``file:line:field: what is wrong``. Where a row "is" depends on the format:

* ``.jsonl`` / ``.jsonl.gz`` / ``.ndjson``: ``line`` is the 1-based line in the (decompressed) file;
  blank lines are skipped.
* ``.json`` (one JSON list of objects) and ``.parquet``: ``line`` is the 1-based row number.

Writing is atomic (:func:`rlhfops.data.files.atomic_output`): the rows go to a temporary file in the
target directory, which then replaces the target with :func:`os.replace`; on any error nothing is left
behind, and a refused write (read-only, disk full) is one line naming the file and the errno.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhfops.data.files import atomic_output
from rlhfops.errors import DataError

FORMATS = (".jsonl", ".jsonl.gz", ".ndjson", ".json", ".parquet")
# The longest line of a JSONL file, newline included: a longer one is refused while reading, before it
# is held in memory whole. Far above any valid row (a text field holds at most 100,000 characters).
MAX_LINE_BYTES = 64 * 2**20


@dataclass(frozen=True, slots=True)
class Row:
    """One record of a data file: its fields, its 1-based line (or row number) and the file it came from."""

    data: dict[str, Any]
    line: int
    source: str


def file_format(path: str | Path) -> str:
    """The format key of ``path`` from its extension (one of :data:`FORMATS`), or a one-line DataError."""
    name = str(path).lower()
    for ext in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    suffix = "".join(Path(str(path)).suffixes) or "(none)"
    raise DataError(f"{path}: unknown extension {suffix!r}; use .jsonl, .jsonl.gz, .json or .parquet")


def read_rows(path: str | Path) -> list[Row]:
    """All rows of a JSONL / JSONL.gz / JSON / Parquet file, each a JSON object, in file order.

    Raises DataError (one line) for a missing file, an unknown extension, invalid JSON
    (``file:line: not valid JSON (Expecting ',' delimiter at column 12)``), a record that is not an
    object, or a file without rows (``file: empty dataset (no rows)``).
    """
    source = str(path)
    fmt = file_format(source)
    p = Path(source)
    if not p.exists():
        raise DataError(f"{source}: file not found")
    if p.is_dir():
        raise DataError(f"{source}: is a directory, expected a data file")
    reader: dict[str, Callable[[Path, str], list[Row]]] = {
        ".jsonl": _read_jsonl,
        ".ndjson": _read_jsonl,
        ".jsonl.gz": _read_jsonl,
        ".json": _read_json,
        ".parquet": _read_parquet,
    }
    rows = reader[fmt](p, source)
    if not rows:
        raise DataError(f"{source}: empty dataset (no rows)")
    return rows


def _object(value: Any, line: int, source: str) -> Row:
    if not isinstance(value, dict):
        raise DataError(f"{source}:{line}: expected a JSON object, got {_json_type(value)}")
    return Row(data=value, line=line, source=source)


def _json_type(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _lines(p: Path, source: str) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw line) pairs; a line over :data:`MAX_LINE_BYTES` is a DataError."""
    opener = gzip.open if source.lower().endswith(".gz") else open
    try:
        with opener(p, "rb") as fh:
            line_no = 0
            while raw := fh.readline(MAX_LINE_BYTES + 1):
                line_no += 1
                if len(raw) > MAX_LINE_BYTES:
                    raise DataError(
                        f"{source}:{line_no}: line longer than {MAX_LINE_BYTES:,} bytes; shorten or split"
                        " that row (a row this long cannot be valid)"
                    )
                yield line_no, raw
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{source}: cannot read the file ({err})") from err


def _read_jsonl(p: Path, source: str) -> list[Row]:
    rows: list[Row] = []
    for line_no, raw in _lines(p, source):
        if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # UTF-8 byte-order mark
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{source}:{line_no}: not valid UTF-8 (byte {err.start + 1})") from err
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{source}:{line_no}: not valid JSON ({err.msg} at column {err.colno})") from err
        rows.append(_object(value, line_no, source))
    return rows


def _read_json(p: Path, source: str) -> list[Row]:
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{source}: not valid UTF-8 (byte {err.start + 1})") from err
    if not text.strip():
        raise DataError(f"{source}: empty dataset (no rows)")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{source}:{err.lineno}: not valid JSON ({err.msg} at column {err.colno})") from err
    if not isinstance(value, list):
        raise DataError(
            f"{source}: a .json file must hold a list of objects, got {_json_type(value)}"
            " (for one object per line, name the file .jsonl)"
        )
    return [_object(v, i, source) for i, v in enumerate(value, start=1)]


def _read_parquet(p: Path, source: str) -> list[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{source}: not a readable Parquet file ({_first_line(err)})") from err
    return [Row(data=d, line=i, source=source) for i, d in enumerate(table.to_pylist(), start=1)]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def write_rows(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` to ``path`` atomically, in the format given by its extension; returns the path.

    The parent directory is created if needed. Raises DataError (one line) when the rows do not fit the
    format (for Parquet: a column whose values mix types), and :class:`~rlhfops.data.files.OutputError`
    (one line, with the errno name) when the system refuses the write (read-only, disk full); the
    target is then left untouched (see :func:`~rlhfops.data.files.atomic_output`).
    """
    fmt = file_format(path)
    target = Path(path)
    with atomic_output(target) as tmp:
        if fmt == ".parquet":
            _write_parquet(tmp, rows, str(path))
        elif fmt == ".json":
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(rows, fh, ensure_ascii=False, indent=1)
                fh.write("\n")
        else:
            opener = gzip.open if fmt.endswith(".gz") else open
            with opener(tmp, "wt", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return target


def _write_parquet(tmp: Path, rows: list[dict[str, Any]], shown: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowException, TypeError, ValueError) as err:
        raise DataError(
            f"{shown}: cannot write Parquet ({_first_line(err)}); every row must give each field the"
            " same type (e.g. all prompts strings or all message lists), or write .jsonl"
        ) from err
    pq.write_table(table, tmp)
