"""A rater's second thoughts: undo the last label within :data:`UNDO_SECONDS`, and change any of their
recent labels. The ``labels`` row always holds the final label (agreement and export read it); every
earlier value is kept in ``label_changes`` with who, when and what replaced it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from rlhfops.annotate.queue import to_canonical
from rlhfops.annotate.rater_view import as_shown
from rlhfops.annotate.tx import transaction
from rlhfops.errors import UserError
from rlhfops.workspace import annotation_tables as m
from rlhfops.workspace import db

UNDO_SECONDS = 60.0  # how long after a label its "Undo" stays on offer
RECENT = 20  # labels on the "my recent labels" page


@dataclass(frozen=True)
class RecentLabel:
    label_id: int
    item_id: int
    prompt: str
    choice: str  # as the rater saw it
    rationale: str
    created_at: str
    changes: int
    undoable: bool


def _age(created: Any) -> float:
    return (db.utcnow() - db.as_utc(created)).total_seconds()


def recent_labels(ws: Any, rater: str, limit: int = RECENT) -> list[RecentLabel]:
    """The rater's newest labels, newest first, as they saw them; the first may be undoable."""
    with transaction(ws) as s:
        rows = s.execute(
            sa.select(m.Label, m.Item.prompt)
            .join(m.Item, m.Item.id == m.Label.item_id)
            .where(m.Label.rater == rater)
            .order_by(m.Label.id.desc())
            .limit(limit)
        ).all()
        ids = [r[0].id for r in rows]
        counts = dict(
            s.execute(
                sa.select(m.LabelChange.label_id, sa.func.count())
                .where(m.LabelChange.label_id.in_(ids))
                .group_by(m.LabelChange.label_id)
            ).all()
        )
        return [
            RecentLabel(
                lab.id,
                lab.item_id,
                prompt,
                as_shown(lab.choice, lab.swapped),
                lab.rationale or "",
                db.as_utc(lab.created_at).isoformat(timespec="seconds"),
                int(counts.get(lab.id, 0)),
                i == 0 and _age(lab.created_at) <= UNDO_SECONDS,
            )
            for i, (lab, prompt) in enumerate(rows)
        ]


def undo_last(ws: Any, rater: str, label_id: int) -> int:
    """Remove ``rater``'s newest label ``label_id`` if it is under :data:`UNDO_SECONDS` old, and give the
    pair back to them (the assignment reopens); the removed label is kept in ``label_changes``. Returns the
    item id."""
    with transaction(ws) as s:
        lab = s.scalars(
            sa.select(m.Label).where(m.Label.rater == rater).order_by(m.Label.id.desc()).limit(1)
        ).first()
        if lab is None or lab.id != label_id:
            raise UserError(
                f"undo: label {label_id} is not your latest label; change it under My recent labels"
            )
        if _age(lab.created_at) > UNDO_SECONDS:
            raise UserError(
                f"undo: more than {UNDO_SECONDS:.0f} s have passed; change it under My recent labels"
            )
        s.add(_change(lab, "undo", None, None, None))
        s.execute(
            sa.update(m.Assignment)
            .where(m.Assignment.item_id == lab.item_id, m.Assignment.rater == rater)
            .values(done_at=None)
        )
        item_id = lab.item_id
        s.delete(lab)
        return item_id


def change_label(
    ws: Any,
    rater: str,
    item_id: int,
    choice: str,
    rationale: str | None = None,
    allowed: tuple[str, ...] = ("left", "right", "tie", "both_bad", "skip"),
) -> None:
    """Change ``rater``'s label on ``item_id`` to ``choice`` (left/right as they saw it); the old value is
    recorded in ``label_changes``. The per-criterion choices stay as they were."""
    if choice not in allowed:
        raise UserError(
            f"choice {choice!r} is not allowed by the spec's policies; use one of {', '.join(allowed)}"
        )
    with transaction(ws) as s:
        lab = s.scalars(sa.select(m.Label).where(m.Label.item_id == item_id, m.Label.rater == rater)).first()
        if lab is None:
            raise UserError(f"change: you have no label on item {item_id}")
        new_choice = to_canonical(choice, lab.swapped)
        new_rationale = lab.rationale if rationale is None else rationale[:10_000]
        if new_choice == lab.choice and new_rationale == lab.rationale:
            return
        s.add(_change(lab, "change", new_choice, dict(lab.criteria or {}), new_rationale))
        lab.choice, lab.rationale = new_choice, new_rationale


def _change(lab: Any, kind: str, choice: str | None, criteria: dict | None, rationale: str | None) -> Any:
    return m.LabelChange(
        label_id=lab.id,
        item_id=lab.item_id,
        rater=lab.rater,
        kind=kind,
        old_choice=lab.choice,
        old_criteria=dict(lab.criteria or {}),
        old_rationale=lab.rationale or "",
        new_choice=choice,
        new_criteria=criteria,
        new_rationale=rationale,
        at=db.utcnow(),
    )
