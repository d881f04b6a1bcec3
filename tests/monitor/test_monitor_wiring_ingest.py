"""Ingest into the workspace: 100k rows in bounded memory, read back intact; bad rows write nothing."""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest

from rlhfops.errors import DataError
from rlhfops.monitor.ingest import ParquetSink, ingest_production_file
from rlhfops.monitor.logs import ingest_to_workspace, log_artifacts, production_records, read_log


def test_100k_rows_into_the_workspace_in_bounded_memory(ws, tmp_path):
    import pyarrow as pa

    src = tmp_path / "big.jsonl"
    with open(src, "w") as fh:
        for i in range(100_000):
            rec = {
                "id": f"r{i}",
                "prompt": f"My order #{i} arrived damaged, what should I do about the broken lid?",
                "response": "I'm sorry about that. I have started a replacement; it ships within two days.",
                "model_id": f"m{i % 2}",
                "time": f"2025-03-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
                "task_completed": i % 4 != 0,
                "review_minutes": (i % 10) / 2,
            }
            fh.write(json.dumps(rec) + "\n")
    file_mb = src.stat().st_size / 1e6
    # warm-up on 10 rows: imports (pyarrow.parquet, pandas) are paid once and are not growth per row
    small = tmp_path / "small.jsonl"
    small.write_text("".join(open(src).readline() for _ in range(1)) * 10)
    with ParquetSink(tmp_path / "warm.parquet") as sink:
        ingest_production_file(small, sink)
    pool = pa.default_memory_pool()
    arrow_before = pool.max_memory()
    tracemalloc.start()
    try:
        res = ingest_to_workspace(ws, src, "alice", batch_size=2000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    arrow_peak_mb = (pool.max_memory() - arrow_before) / 1e6
    # 100k records held at once would take several times the ~29 MB file in Python objects; measured
    # ~2 MB (Python) and ~1 MB (Arrow) with batches of 2,000
    assert peak / 1e6 < 8, f"Python peak {peak / 1e6:.1f} MB for a {file_mb:.1f} MB file"
    assert arrow_peak_mb < 8, f"Arrow peak {arrow_peak_mb:.1f} MB"
    assert res.summary.rows == 100_000 and res.summary.models == {"m0": 50_000, "m1": 50_000}
    (art,) = log_artifacts(ws)
    assert art.id == res.artifact_id and art.meta["rows"] == 100_000
    back = list(read_log(art.path))
    assert len(back) == 100_000 and back[99_999].id == "r99999" and back[0].review_minutes == 0.0
    assert back[5].task_completed is True and back[4].task_completed is False and back[0].client_flag is None


def test_bad_row_anywhere_stores_nothing(ws, tmp_path):
    good = {"prompt": "p", "response": "r", "model_id": "m", "time": "2025-03-01T10:00:00Z"}
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps(good) + "\n" for _ in range(500)) + '{"prompt": "p"}\n')
    with pytest.raises(DataError, match=r"p.jsonl:501: response: missing"):
        ingest_to_workspace(ws, src, "alice", batch_size=100)
    assert ws.artifacts() == []
    assert not ws.store_dir.exists() or list(ws.store_dir.iterdir()) == []


def test_records_read_back_sorted_filtered_and_linked_to_the_model(ws, tmp_path):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "w").write_text("w")
    model = ws.register_artifact("ppo-model", model_dir, [], "frank", {})
    rows = [
        {"prompt": "late", "response": "", "model_id": model[:10], "time": "2025-03-02T00:00:00Z"},
        {"prompt": "early", "response": "", "model_id": model[:10], "time": "2025-03-01T00:00:00+02:00"},
        {"prompt": "other", "response": "", "model_id": "other", "time": "2025-03-01T12:00:00Z"},
    ]
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = ingest_to_workspace(ws, src, "alice")
    assert res.model_parents == [model] and ws.artifact(res.artifact_id).parents == (model,)
    recs, ids, total = production_records(ws)
    assert [r.prompt for r in recs] == ["early", "other", "late"] and ids == [res.artifact_id] and total == 3
    assert recs[0].time == datetime(2025, 2, 28, 22, 0, tzinfo=UTC)
    since, _, total = production_records(ws, since=datetime(2025, 3, 1, 6, tzinfo=UTC))
    assert [r.prompt for r in since] == ["other", "late"] and total == 2
    only, _, total = production_records(ws, model_id="other")
    assert [r.prompt for r in only] == ["other"] and total == 1
    last, _, total = production_records(ws, last_rows=2)
    assert [r.prompt for r in last] == ["other", "late"] and total == 3
    span, _, _ = production_records(ws, last_span=timedelta(hours=13))
    assert [r.prompt for r in span] == ["other", "late"]
    mine, _, _ = production_records(ws, model_id=model[:10], last_rows=1)
    assert [r.prompt for r in mine] == ["late"]
