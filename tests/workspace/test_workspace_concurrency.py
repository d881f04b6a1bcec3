"""Two OS processes writing to one workspace at once lose nothing (SQLite WAL and PostgreSQL)."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

from ws_helpers import concurrent_writer

N = 20


def test_two_processes_writing_at_once_lose_nothing(ws, tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    url = os.environ.get("RLHFOPS_DATABASE_URL")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(
            target=concurrent_writer, args=(str(ws.root), url, tag, N, str(tmp_path / "scratch"), barrier)
        )
        for tag in ("p1", "p2")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    datasets = ws.artifacts("dataset")
    # N distinct files per process + one file both processes registered (stored once)
    assert len(datasets) == 2 * N + 1
    assert sorted(a.meta.get("i") for a in datasets if a.meta) == sorted(list(range(N)) * 2)
    for a in datasets:
        assert a.path.is_file() and a.path.parent.name == a.id
    raters = [n for n, r in ws.people() if r == "rater"]
    assert sorted(raters) == sorted(f"{t}-person-{i}" for t in ("p1", "p2") for i in range(N))
    leftovers = [p.name for p in (ws.root / "artifacts").iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []
    assert {v["source"] for v in ws.baseline().values()} <= {"p1", "p2"}
