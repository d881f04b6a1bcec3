"""Reads for the rater's page, off the hot path: what is left in the current batch, and a label as the
rater saw it (left/right) for the stale-tab notice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from rlhfops.annotate.tx import read_transaction
from rlhfops.workspace import annotation_tables as m

_ITEMS, _ASG, _LABELS = m.Item.__table__, m.Assignment.__table__, m.Label.__table__


@dataclass(frozen=True)
class ShownLabel:
    item_id: int
    choice: str  # as the rater saw it: left, right, tie, both_bad, skip
    criteria: dict[str, str]
    rationale: str


def as_shown(choice: str, swapped: bool) -> str:
    """A/B of the item -> left/right as the rater saw it; tie, both_bad and skip unchanged."""
    if choice in ("A", "B"):
        return "left" if (choice == "A") != bool(swapped) else "right"
    return choice


def left_in_batch(ws: Any, rater: str, item_id: int) -> int:
    """Items of ``item_id``'s batch still before ``rater``: their unfinished assignments there plus the
    open production items there they have not been given (the current item counts)."""
    batch = sa.select(_ITEMS.c.batch).where(_ITEMS.c.id == item_id).scalar_subquery()
    mine = sa.select(_ASG.c.item_id).where(_ASG.c.rater == rater)
    unfinished = (
        sa.select(sa.func.count())
        .select_from(_ASG.join(_ITEMS, _ITEMS.c.id == _ASG.c.item_id))
        .where(_ASG.c.rater == rater, _ASG.c.done_at.is_(None), _ITEMS.c.batch == batch)
        .scalar_subquery()
    )
    unassigned = (
        sa.select(sa.func.count())
        .select_from(_ITEMS)
        .where(_ITEMS.c.batch == batch, _ITEMS.c.is_open.is_(True), _ITEMS.c.id.not_in(mine))
        .scalar_subquery()
    )
    with read_transaction(ws) as c:
        row = c.execute(sa.select(unfinished, unassigned)).one()
    return int(row[0] or 0) + int(row[1] or 0)


def shown_label(ws: Any, rater: str, item_id: int) -> ShownLabel | None:
    """``rater``'s stored label on ``item_id`` as they saw it, or None."""
    with read_transaction(ws) as c:
        row = c.execute(
            sa.select(_LABELS.c.choice, _LABELS.c.criteria, _LABELS.c.rationale, _LABELS.c.swapped).where(
                _LABELS.c.item_id == item_id, _LABELS.c.rater == rater
            )
        ).first()
    if row is None:
        return None
    crit = {k: as_shown(v, row.swapped) for k, v in (row.criteria or {}).items()}
    return ShownLabel(item_id, as_shown(row.choice, row.swapped), crit, row.rationale or "")
