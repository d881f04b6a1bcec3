"""100 raters fetching and submitting at once, each label submitted twice concurrently: every label is
stored exactly once and no item gets more than k raters. SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from web_helpers import pairs

from rlhfops.annotate.queue import fetch_next, queue_pairs, submit_label
from rlhfops.workspace import annotation_tables as m

N_RATERS, N_ITEMS, K, PER_RATER = 100, 60, 3, 4


@pytest.fixture
def crowd(backend: str, tmp_path: Path):
    from rlhfops.workspace import init_workspace

    ws = init_workspace(tmp_path / "crowd", "support-replies")
    raters = [f"r{i:03d}" for i in range(N_RATERS)]
    for r in raters:
        ws.add_person(r, "rater", "alice")
    assert queue_pairs(ws, pairs(N_ITEMS), "b1", K) == (N_ITEMS, 0)
    yield ws, raters
    ws.close()


def test_100_raters_double_submit_store_each_label_once(crowd) -> None:
    ws, raters = crowd
    barrier = threading.Barrier(N_RATERS)
    results: list[tuple[str, int, bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def submit(rater: str, item_id: int, choice: str) -> None:
        try:
            res = submit_label(ws, rater, item_id, choice, rationale="x")
            with lock:
                results.append((rater, item_id, res.created))
        except BaseException as err:  # collected and re-raised in the main thread
            errors.append(err)

    def work(rater: str) -> None:
        try:
            barrier.wait()
            for i in range(PER_RATER):
                item = fetch_next(ws, rater, gold_rate=0.0)
                if item is None:
                    return
                choice = "left" if i % 2 else "right"
                twin = threading.Thread(target=submit, args=(rater, item.item_id, choice))
                twin.start()
                submit(rater, item.item_id, choice)
                twin.join()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=work, args=(r,)) for r in raters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    with ws.session() as s:
        labels = s.execute(sa.select(m.Label.item_id, m.Label.rater)).all()
        assignments = s.execute(
            sa.select(m.Assignment.item_id, m.Assignment.rater, m.Assignment.done_at)
        ).all()
    # demand (100 x 4) exceeds supply (60 x 3): every slot is filled, none twice
    assert len(labels) == N_ITEMS * K
    assert len(set(labels)) == len(labels)
    per_item = Counter(i for i, _r, _d in assignments)
    assert max(per_item.values()) == K and len(per_item) == N_ITEMS
    assert all(d is not None for _i, _r, d in assignments)
    created = [x for x in results if x[2]]
    assert sorted((r, i) for r, i, _c in created) == sorted((r, i) for i, r in labels)
    assert len(results) == 2 * len(labels)  # every double submit answered, the second as a duplicate
