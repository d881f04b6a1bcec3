"""rlhfops.data.io: readers per format, one-line errors with file:line, atomic writes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from rlhfops.data.io import Row, read_rows, write_rows
from rlhfops.errors import DataError


def _err(path: Path) -> str:
    with pytest.raises(DataError) as info:
        read_rows(path)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_jsonl_line_numbers_skip_blank_lines(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text('\ufeff{"a": 1}\n\n   \n{"a": 2}\n{"a": 3}', encoding="utf-8")  # BOM, blanks, no final \n
    rows = read_rows(p)
    assert rows == [Row({"a": 1}, 1, str(p)), Row({"a": 2}, 4, str(p)), Row({"a": 3}, 5, str(p))]


def test_invalid_json_line_gives_file_line_and_column(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text('{"a": 1}\n\n{"prompt": "hi" "completion": "x"}\n', encoding="utf-8")
    assert _err(p) == f"{p}:3: not valid JSON (Expecting ',' delimiter at column 17)"


def test_record_that_is_not_an_object(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    assert _err(p) == f"{p}:2: expected a JSON object, got a list"


def test_invalid_utf8(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": "\xff"}\n')
    assert _err(p) == f"{p}:2: not valid UTF-8 (byte 8)"


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_dataset(tmp_path: Path, content: str) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text(content, encoding="utf-8")
    assert _err(p) == f"{p}: empty dataset (no rows)"


def test_missing_file_directory_and_unknown_extension(tmp_path: Path) -> None:
    assert _err(tmp_path / "nope.jsonl") == f"{tmp_path / 'nope.jsonl'}: file not found"
    d = tmp_path / "dir.jsonl"
    d.mkdir()
    assert _err(d) == f"{d}: is a directory, expected a data file"
    csv = tmp_path / "d.csv"
    csv.write_text("a,b\n")
    assert _err(csv) == f"{csv}: unknown extension '.csv'; use .jsonl, .jsonl.gz, .json or .parquet"


def test_json_list_rows_are_numbered(tmp_path: Path) -> None:
    p = tmp_path / "d.json"
    p.write_text(json.dumps([{"a": 1}, {"a": 2}], indent=2), encoding="utf-8")
    assert [(r.data["a"], r.line) for r in read_rows(p)] == [(1, 1), (2, 2)]


def test_json_errors(tmp_path: Path) -> None:
    p = tmp_path / "d.json"
    p.write_text('[\n  {"a": 1},\n  {"a": 2,}\n]', encoding="utf-8")
    assert (
        _err(p) == f"{p}:3: not valid JSON (Expecting property name enclosed in double quotes at column 11)"
    )
    p.write_text("[]", encoding="utf-8")
    assert _err(p) == f"{p}: empty dataset (no rows)"
    p.write_text('[{"a": 1}, "x"]', encoding="utf-8")
    assert _err(p) == f"{p}:2: expected a JSON object, got a string"


def test_json_top_level_object_message(tmp_path: Path) -> None:
    p = tmp_path / "d.json"
    p.write_text('{"a": 1}', encoding="utf-8")
    assert _err(p) == (
        f"{p}: a .json file must hold a list of objects, got an object"
        " (for one object per line, name the file .jsonl)"
    )


ROWS = [
    {"prompt": [{"role": "user", "content": "héllo"}], "chosen": "a", "rejected": "b", "margin": 1.5},
    {
        "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
        "chosen": "c",
        "rejected": "d",
        "margin": None,
    },
]


@pytest.mark.parametrize("name", ["r.jsonl", "r.jsonl.gz", "r.json", "r.parquet"])
def test_round_trip_every_format(tmp_path: Path, name: str) -> None:
    p = write_rows(tmp_path / "sub" / name, ROWS)
    assert p == tmp_path / "sub" / name
    rows = read_rows(p)
    assert [r.data for r in rows] == ROWS
    assert [r.line for r in rows] == [1, 2]
    assert all(r.source == str(p) for r in rows)
    assert [f.name for f in p.parent.iterdir()] == [name]  # no temp file left


def test_gz_is_really_gzip_and_corrupt_gz_is_one_line(tmp_path: Path) -> None:
    p = write_rows(tmp_path / "r.jsonl.gz", ROWS)
    assert json.loads(gzip.decompress(p.read_bytes()).decode().splitlines()[0]) == ROWS[0]
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(b"not gzip at all")
    assert _err(bad).startswith(f"{bad}: cannot read the file (")


def test_corrupt_parquet(tmp_path: Path) -> None:
    p = tmp_path / "bad.parquet"
    p.write_bytes(b"PAR1 garbage")
    assert _err(p).startswith(f"{p}: not a readable Parquet file (")


def test_failed_write_leaves_nothing_and_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    mixed = [{"prompt": "a string"}, {"prompt": [{"role": "user", "content": "a list"}]}]
    with pytest.raises(DataError) as info:
        write_rows(target, mixed)
    assert str(info.value).startswith(f"{target}: cannot write Parquet (")
    assert list(tmp_path.iterdir()) == []
    write_rows(target, ROWS)
    before = target.read_bytes()
    with pytest.raises(DataError):
        write_rows(target, mixed)
    assert target.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["out.parquet"]


def test_write_unknown_extension_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown extension '.txt'"):
        write_rows(tmp_path / "out.txt", ROWS)
    assert list(tmp_path.iterdir()) == []
