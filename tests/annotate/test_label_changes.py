"""Undo within the window (both sides of its edge), changes recorded beside the final label, and
agreement computed on the final label."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from web_helpers import pairs

from rlhfops.annotate.label_changes import UNDO_SECONDS, change_label, recent_labels, undo_last
from rlhfops.annotate.queue import fetch_next, queue_pairs, submit_label
from rlhfops.annotate.report import agreement_report
from rlhfops.errors import UserError
from rlhfops.workspace import annotation_tables as m
from rlhfops.workspace import db


def _age_label(ws, label_id: int, seconds: float) -> None:
    with ws.session() as s:
        s.execute(
            sa.update(m.Label)
            .where(m.Label.id == label_id)
            .values(created_at=db.utcnow() - timedelta(seconds=seconds))
        )
        s.commit()


@pytest.mark.parametrize("age, ok", [(UNDO_SECONDS - 5, True), (UNDO_SECONDS + 5, False)])
def test_undo_only_within_the_window(sqlite_ws, age, ok) -> None:
    queue_pairs(sqlite_ws, pairs(2), "b1", 1)
    item = fetch_next(sqlite_ws, "rita", gold_rate=0)
    res = submit_label(sqlite_ws, "rita", item.item_id, "left", rationale="first")
    _age_label(sqlite_ws, res.label_id, age)
    assert recent_labels(sqlite_ws, "rita")[0].undoable is ok
    if not ok:
        with pytest.raises(UserError, match="more than 60 s have passed"):
            undo_last(sqlite_ws, "rita", res.label_id)
        return
    assert undo_last(sqlite_ws, "rita", res.label_id) == item.item_id
    with sqlite_ws.session() as s:
        assert s.scalars(sa.select(m.Label)).all() == []
        change = s.scalars(sa.select(m.LabelChange)).one()
    assert (change.kind, change.old_choice, change.old_rationale, change.new_choice) == (
        "undo",
        res.choice,
        "first",
        None,
    )
    assert fetch_next(sqlite_ws, "rita", gold_rate=0).item_id == item.item_id  # the same pair comes back


def test_undo_refuses_an_older_label(sqlite_ws) -> None:
    queue_pairs(sqlite_ws, pairs(2), "b1", 1)
    first = submit_label(sqlite_ws, "rita", fetch_next(sqlite_ws, "rita", gold_rate=0).item_id, "left")
    submit_label(sqlite_ws, "rita", fetch_next(sqlite_ws, "rita", gold_rate=0).item_id, "left")
    with pytest.raises(UserError, match="not your latest label"):
        undo_last(sqlite_ws, "rita", first.label_id)


def test_change_is_recorded_and_agreement_uses_the_final_label(sqlite_ws) -> None:
    queue_pairs(sqlite_ws, pairs(1), "b1", 2)
    items = {}
    for rater in ("rita", "ravi"):
        item = fetch_next(sqlite_ws, rater, gold_rate=0)
        items[rater] = item
        # both prefer response A, whichever side it was shown on
        with sqlite_ws.session() as s:
            swapped = s.scalars(sa.select(m.Assignment.swapped).where(m.Assignment.rater == rater)).one()
        submit_label(sqlite_ws, rater, item.item_id, "right" if swapped else "left")
    assert agreement_report(sqlite_ws)["overall"]["percent_agreement"] == 1.0
    shown = recent_labels(sqlite_ws, "rita")[0].choice
    other = "left" if shown == "right" else "right"
    change_label(sqlite_ws, "rita", items["rita"].item_id, other, "changed my mind")
    assert agreement_report(sqlite_ws)["overall"]["percent_agreement"] == 0.0
    with sqlite_ws.session() as s:
        label = s.scalars(sa.select(m.Label).where(m.Label.rater == "rita")).one()
        change = s.scalars(sa.select(m.LabelChange)).one()
    assert (label.choice, label.rationale) == ("B", "changed my mind")
    assert (change.kind, change.old_choice, change.new_choice, change.new_rationale) == (
        "change",
        "A",
        "B",
        "changed my mind",
    )
    assert recent_labels(sqlite_ws, "rita")[0].changes == 1
    with pytest.raises(UserError, match="no label on item"):
        change_label(sqlite_ws, "rosa", items["rita"].item_id, "left")
