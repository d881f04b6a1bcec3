"""Production log ingestion: every row checked before any write; batches; bounded memory."""

from __future__ import annotations

import json
import time
import tracemalloc
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest

from rlhfops.errors import DataError
from rlhfops.monitor.ingest import (
    JsonlSink,
    ParquetSink,
    ingest_production_file,
    iter_production_records,
    validate_production_file,
)

GOOD = {
    "prompt": "Where is my order?",
    "response": "It ships today.",
    "model_id": "m1",
    "time": "2025-03-01T14:05:00Z",
}


def _write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_jsonl_records_parsed_with_optional_fields(tmp_path):
    rows = [
        {**GOOD, "task_completed": True, "review_minutes": 2.5, "client_flag": False, "id": 17},
        {**GOOD, "time": "2025-03-01T15:00:00", "task_completed": None, "extra": "ignored"},
        {**GOOD, "time": "2025-03-01T16:00:00+02:00", "response": ""},
    ]
    recs = list(iter_production_records(_write_jsonl(tmp_path / "p.jsonl", rows)))
    assert len(recs) == 3
    assert recs[0].task_completed is True and recs[0].review_minutes == 2.5 and recs[0].id == "17"
    assert recs[1].time == datetime(2025, 3, 1, 15, 0, tzinfo=UTC)  # no offset -> UTC
    assert recs[1].task_completed is None and recs[1].line == 2
    assert recs[2].time.utcoffset().total_seconds() == 7200 and recs[2].response == ""


def test_csv_records(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text(
        "prompt,response,model_id,time,task_completed,review_minutes,client_flag\n"
        'Where is my order?,"Today, by noon",m1,2025-03-01T14:05:00Z,yes,3,0\n'
        "Refund?,No,m2,2025-03-02,,,\n"
    )
    recs = list(iter_production_records(p))
    assert [r.model_id for r in recs] == ["m1", "m2"]
    assert (
        recs[0].response == "Today, by noon"
        and recs[0].task_completed is True
        and recs[0].client_flag is False
    )
    assert recs[1].review_minutes is None and recs[1].line == 3


@pytest.mark.parametrize(
    "bad,where",
    [
        ({**GOOD, "time": "yesterday"}, ":3: time: 'yesterday' is not an ISO 8601"),
        ({**GOOD, "prompt": ""}, ":3: prompt: is empty"),
        ({k: v for k, v in GOOD.items() if k != "model_id"}, ":3: model_id: missing"),
        ({**GOOD, "review_minutes": -1}, ":3: review_minutes: expected a number >= 0"),
        ({**GOOD, "client_flag": "maybe"}, ":3: client_flag: expected true/false"),
        ({**GOOD, "prompt": 5}, ":3: prompt: expected a string"),
        ("{not json", ":3: not valid JSON"),
        ("[1, 2]", ":3: expected a JSON object"),
    ],
)
def test_malformed_rows_are_refused_with_line_and_field(tmp_path, bad, where):
    src = _write_jsonl(tmp_path / "p.jsonl", [GOOD, GOOD, bad, GOOD])
    target = tmp_path / "out.jsonl"
    calls = []
    with pytest.raises(DataError) as err:
        ingest_production_file(src, calls.append)
    msg = str(err.value)
    assert f"{src}{where}" in msg and "\n" not in msg
    assert calls == [] and not target.exists()


def test_all_bad_rows_are_counted_before_anything_is_written(tmp_path):
    rows = [GOOD] * 3 + [{**GOOD, "time": "x"}] + [GOOD] * 2 + [{**GOOD, "prompt": None}] * 7
    src = _write_jsonl(tmp_path / "p.jsonl", rows)
    calls = []
    with pytest.raises(
        DataError, match=r"p.jsonl:4: time: .*\(8 bad rows in all; also lines 7, 8, 9, 10, \.\.\.\)"
    ):
        ingest_production_file(src, calls.append, batch_size=1)
    assert calls == []


def test_csv_bad_row_and_empty_file(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text("prompt,response,model_id,time\na,b,m,2025-01-01\na,b,m,2025-01-01,surplus\n")
    with pytest.raises(DataError, match=r"p.csv:3: 1 more cell"):
        validate_production_file(p)
    header = tmp_path / "h.csv"
    header.write_text("\ufeffprompt,response,time\na,b,2025-01-01\n")
    with pytest.raises(
        DataError, match=r"h.csv:1: header lacks required column\(s\) model_id \(has: prompt, response"
    ):
        validate_production_file(header)
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataError, match="no rows"):
        validate_production_file(empty)
    with pytest.raises(DataError, match="unknown extension"):
        validate_production_file(tmp_path / "x.txt")


def test_sinks_write_atomically_and_roundtrip(tmp_path):
    rows = [{**GOOD, "prompt": f"q{i}", "review_minutes": i} for i in range(25)]
    src = _write_jsonl(tmp_path / "p.jsonl", rows)
    with JsonlSink(tmp_path / "o.jsonl") as js:
        ingest_production_file(src, js, batch_size=10)
    back = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [b["prompt"] for b in back] == [f"q{i}" for i in range(25)] and back[0][
        "time"
    ] == "2025-03-01T14:05:00+00:00"
    with ParquetSink(tmp_path / "o.parquet") as ps:
        summary = ingest_production_file(src, ps, batch_size=10)
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.num_rows == 25 == summary.rows and table.column("review_minutes").to_pylist()[-1] == 24.0
    # an error inside the block leaves no file behind
    with pytest.raises(RuntimeError), JsonlSink(tmp_path / "never.jsonl") as js:
        js([])
        raise RuntimeError("boom")
    assert not (tmp_path / "never.jsonl").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_100k_rows_ingest_with_bounded_memory(tmp_path):
    src = tmp_path / "big.jsonl"
    with open(src, "w") as fh:
        for i in range(100_000):
            rec = {
                "prompt": f"My order #{i} arrived damaged, what should I do about the broken lid?",
                "response": "I'm sorry about that. I have started a replacement; it ships within two days.",
                "model_id": f"m{i % 3}",
                "time": f"2025-03-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
                "task_completed": i % 4 != 0,
                "review_minutes": (i % 10) / 2,
                "client_flag": i % 50 == 0,
            }
            fh.write(json.dumps(rec) + "\n")
    file_mb = src.stat().st_size / 1e6
    seen = [0]

    def count(batch):
        seen[0] += len(batch)

    start = time.perf_counter()
    tracemalloc.start()
    try:
        with JsonlSink(tmp_path / "out.jsonl") as sink:

            def both(batch):
                count(batch)
                sink(batch)

            summary = ingest_production_file(src, both, batch_size=2000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - start
    assert summary.rows == seen[0] == 100_000
    assert summary.models == {"m0": 33_334, "m1": 33_333, "m2": 33_333}
    assert summary.with_client_flag == 100_000
    peak_mb = peak / 1e6
    # the rows held at once as records would take several times the file size (~25 MB on disk)
    assert peak_mb < 10, f"peak {peak_mb:.1f} MB for a {file_mb:.1f} MB file"
    assert elapsed < 60, f"{elapsed:.1f} s"  # ~15 s under tracemalloc on 2 busy cores; ~4 s without
