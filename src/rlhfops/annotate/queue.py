"""Queueing comparison items, assigning them to raters, and storing labels (exactly once).

Assignment is pull-based: :func:`fetch_next` gives a rater their open item, else assigns one.
Order of preference: an unfinished assignment; the current calibration round's items; a gold item when
the rater's share of gold items is under ``gold_rate``; a production item that has fewer than ``k``
raters and that this rater has not seen. Gold items look like any other item (blind).

Concurrency: a production assignment takes a ``slot`` (0..k-1) that is unique per item, and
(item, rater) is unique, so two assigners racing for the last slot cannot both win: the loser's insert
fails on the constraint, its transaction rolls back and it tries again. A label is unique per
(item, rater): a double submit stores one row and the second call returns it (``created=False``).
This holds on SQLite (WAL, ``BEGIN IMMEDIATE``) and on PostgreSQL (READ COMMITTED + constraints).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from rlhfops.annotate import models as m
from rlhfops.annotate.tx import transaction
from rlhfops.errors import UserError
from rlhfops.workspace import db

DISPLAY_CHOICES = ("left", "right", "tie", "both_bad", "skip")
_RETRIES = 20


class NotAssignedError(UserError):
    """The item is not assigned to this rater (the web app answers 403)."""


class ProductionBlockedError(UserError):
    """Production labelling is blocked by a calibration round that has not passed."""


@dataclass(frozen=True)
class PairIn:
    prompt: str
    response_a: str
    response_b: str
    gold_answer: str | None = None  # "A", "B", "tie", "both_bad" for a gold item
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueuedItem:
    """An item as a rater sees it: left/right already placed; nothing says whether it is gold."""

    item_id: int
    kind: str
    prompt: str
    left: str
    right: str
    calibration: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "kind": self.kind,
            "prompt": self.prompt,
            "left": self.left,
            "right": self.right,
            "calibration": self.calibration,
        }


@dataclass(frozen=True)
class LabelResult:
    label_id: int
    item_id: int
    choice: str  # canonical: A, B, tie, both_bad, skip
    created: bool  # False: the label was already there (a double submit)


@dataclass(frozen=True)
class Progress:
    labelled: int
    open: int


def item_key(kind: str, prompt: str, a: str | None, b: str | None, extra: str = "") -> str:
    return hashlib.sha256(json.dumps([kind, prompt, a, b, extra]).encode()).hexdigest()


def queue_pairs(ws: Any, pairs: list[PairIn], batch: str, k: int) -> tuple[int, int]:
    """Queue comparison items; a pair already queued (same prompt, responses, gold-ness) is skipped.

    Returns (added, skipped)."""
    added = skipped = 0
    for p in pairs:
        if p.gold_answer is not None and p.gold_answer not in m.CHOICES:
            raise UserError(f"gold answer {p.gold_answer!r}: use one of {', '.join(m.CHOICES)}")
        gold = p.gold_answer is not None
        key = item_key("pair", p.prompt, p.response_a, p.response_b, "gold" if gold else "")
        try:
            with transaction(ws) as s:
                if s.scalar(sa.select(m.Item.id).where(m.Item.key == key)) is not None:
                    skipped += 1
                    continue
                s.add(
                    _new_item(
                        "pair", key, p.prompt, p.response_a, p.response_b, batch, k, p.meta, p.gold_answer
                    )
                )
            added += 1
        except IntegrityError:  # queued by someone else at the same moment
            skipped += 1
    return added, skipped


def _new_item(
    kind, key, prompt, a, b, batch, k, meta, gold=None, calibration_round=None, source=None
) -> m.Item:
    return m.Item(
        key=key,
        kind=kind,
        prompt=prompt,
        response_a=a,
        response_b=b,
        batch=batch,
        k=k,
        n_assigned=0,
        is_open=kind == "pair" and gold is None and calibration_round is None,
        is_gold=gold is not None,
        gold_answer=gold,
        calibration_round=calibration_round,
        source_item_id=source,
        meta=dict(meta or {}),
        created_at=db.utcnow(),
    )


# Hot-path statements, built once with bind parameters (building a statement costs more than running
# it on SQLite; a reused statement also keeps its compiled-cache key).
_RATER = sa.bindparam("rater")
_UNSEEN = sa.select(m.Assignment.item_id).where(m.Assignment.rater == _RATER)
_OPEN = (
    sa.select(m.Item, m.Assignment.swapped)
    .join(m.Assignment, m.Assignment.item_id == m.Item.id)
    .where(m.Assignment.rater == _RATER, m.Assignment.done_at.is_(None))
    .order_by(m.Assignment.id)
    .limit(1)
)
_GOLD_IDS = sa.select(m.Item.id).where(m.Item.is_gold.is_(True), m.Item.id.not_in(_UNSEEN)).limit(50)
_GOLD_COUNTS = (
    sa.select(sa.func.count(m.Assignment.id), sa.func.count(m.Item.gold_answer))
    .join(m.Item, m.Item.id == m.Assignment.item_id)
    .where(m.Assignment.rater == _RATER, m.Item.calibration_round.is_(None))
)
_CANDIDATE = (
    sa.select(m.Item)
    .where(m.Item.is_open.is_(True), m.Item.id.not_in(_UNSEEN))
    .order_by(m.Item.id)
    .limit(1)
    .with_for_update(skip_locked=True)
)
_INSERT_ASSIGNMENT = sa.insert(m.Assignment)
_COUNT_UP = (
    sa.update(m.Item)
    .where(m.Item.id == sa.bindparam("item"))
    .values(
        n_assigned=m.Item.n_assigned + 1,
        is_open=sa.case((m.Item.n_assigned + 1 < m.Item.k, sa.true()), else_=sa.false()),
    )
    .execution_options(synchronize_session=False)
)
_PROGRESS = sa.select(
    sa.select(sa.func.count(m.Label.id)).where(m.Label.rater == _RATER).scalar_subquery(),
    sa.select(sa.func.count(m.Assignment.id))
    .where(m.Assignment.rater == _RATER, m.Assignment.done_at.is_(None))
    .scalar_subquery(),
)
_ASSIGNMENT_AND_LABEL = (
    sa.select(m.Assignment.id, m.Assignment.swapped, m.Label.id, m.Label.choice)
    .outerjoin(m.Label, sa.and_(m.Label.item_id == m.Assignment.item_id, m.Label.rater == m.Assignment.rater))
    .where(m.Assignment.item_id == sa.bindparam("item"), m.Assignment.rater == _RATER)
)
_INSERT_LABEL = sa.insert(m.Label).returning(m.Label.id)
_DONE = (
    sa.update(m.Assignment).where(m.Assignment.id == sa.bindparam("asg")).values(done_at=sa.bindparam("at"))
)


def _view(item: m.Item, swapped: bool) -> QueuedItem:
    a, b = item.response_a or "", item.response_b or ""
    left, right = (b, a) if swapped else (a, b)
    return QueuedItem(item.id, item.kind, item.prompt, left, right, item.calibration_round is not None)


def _open_assignment(s, rater: str) -> QueuedItem | None:
    row = s.execute(_OPEN, {"rater": rater}).first()
    return _view(row[0], row[1]) if row is not None else None


def _unseen(rater: str):
    return sa.select(m.Assignment.item_id).where(m.Assignment.rater == rater)


def _assign(s, item: m.Item, rater: str, slot: int | None) -> QueuedItem:
    swapped = random.random() < 0.5
    s.execute(
        _INSERT_ASSIGNMENT,
        {"item_id": item.id, "rater": rater, "slot": slot, "swapped": swapped, "assigned_at": db.utcnow()},
    )
    return _view(item, swapped)


def _calibration_item(s, rater: str, round_id: int) -> m.Item | None:
    return s.scalar(
        sa.select(m.Item)
        .where(m.Item.calibration_round == round_id, m.Item.id.not_in(_unseen(rater)))
        .order_by(m.Item.id)
        .limit(1)
    )


def _gold_item(s, rater: str, gold_rate: float) -> m.Item | None:
    if gold_rate <= 0:
        return None
    ids = s.scalars(_GOLD_IDS, {"rater": rater}).all()
    if not ids:
        return None
    counts = s.execute(_GOLD_COUNTS, {"rater": rater}).one()
    total, gold = int(counts[0]), int(counts[1])
    if gold >= gold_rate * (total + 1):
        return None
    return s.get(m.Item, random.choice(ids))


def _production_candidate(s, rater: str) -> m.Item | None:
    """The oldest production pair with a free slot that ``rater`` has not seen (an index range scan).

    On PostgreSQL the row is locked and rows locked by other assigners are skipped (``FOR UPDATE SKIP
    LOCKED``), so concurrent raters spread over items instead of colliding on one slot; SQLite runs
    one writer at a time anyway."""
    return s.scalar(_CANDIDATE, {"rater": rater})


def fetch_next(ws: Any, rater: str, gold_rate: float = 0.1) -> QueuedItem | None:
    """The rater's next item (assigning one if needed); None when nothing is left for them.

    Raises :class:`ProductionBlockedError` when the latest calibration round has not passed and the
    rater has done all its items."""
    item, blocked, _p = fetch_next_with_progress(ws, rater, gold_rate)
    if blocked is not None:
        raise ProductionBlockedError(blocked)
    return item


def fetch_next_with_progress(
    ws: Any, rater: str, gold_rate: float = 0.1
) -> tuple[QueuedItem | None, str | None, Progress]:
    """(next item or None, why production is blocked or None, the rater's progress) in one transaction."""
    for _attempt in range(_RETRIES):
        try:
            with transaction(ws) as s:
                try:
                    item, blocked = _next_in(s, rater, gold_rate), None
                except ProductionBlockedError as err:
                    item, blocked = None, str(err)
                return item, blocked, _progress_in(s, rater)
        except (IntegrityError, _Retry):
            continue  # another rater took that slot (or this item) first: look again
    raise UserError(f"fetch next for {rater}: too much contention, try again")


def _next_in(s, rater: str, gold_rate: float) -> QueuedItem | None:
    from rlhfops.annotate.calibration import blocking_reason, latest_round_id

    current = _open_assignment(s, rater)
    if current is not None:
        return current
    round_id = latest_round_id(s)
    if round_id is not None:
        item = _calibration_item(s, rater, round_id)
        if item is not None:
            return _assign(s, item, rater, None)
        reason = blocking_reason(s, round_id)
        if reason is not None:
            raise ProductionBlockedError(reason)
    item = _gold_item(s, rater, gold_rate)
    if item is not None:
        return _assign(s, item, rater, None)
    item = _production_candidate(s, rater)
    if item is None:
        return None
    if item.n_assigned >= item.k:  # pragma: no cover - is_open is kept in step with n_assigned
        raise _Retry()
    # the slot is the item's count so far; the unique (item, slot) constraint rejects a racing twin
    view = _assign(s, item, rater, item.n_assigned)
    s.execute(_COUNT_UP, {"item": item.id})
    return view


class _Retry(Exception):
    pass


def to_canonical(display: str, swapped: bool) -> str:
    """left/right as shown -> A/B of the item; tie, both_bad and skip unchanged."""
    if display == "left":
        return "B" if swapped else "A"
    if display == "right":
        return "A" if swapped else "B"
    if display in ("tie", "both_bad", "skip"):
        return display
    raise UserError(f"choice {display!r}: use one of {', '.join(DISPLAY_CHOICES)}")


def submit_label(
    ws: Any,
    rater: str,
    item_id: int,
    choice: str,
    *,
    criteria: dict[str, str] | None = None,
    rationale: str = "",
    seconds: float | None = None,
    allowed: tuple[str, ...] = DISPLAY_CHOICES,
) -> LabelResult:
    """Store the rater's label for an item assigned to them; a second submit returns the first label."""
    if choice not in allowed:
        raise UserError(
            f"choice {choice!r} is not allowed by the spec's policies; use one of {', '.join(allowed)}"
        )
    crit_in = dict(criteria or {})
    for name, value in crit_in.items():
        if value not in ("left", "right", "tie"):
            raise UserError(f"criterion {name!r}: choice {value!r}; use left, right or tie")
    if seconds is not None and not (0 <= seconds < 1e7):
        raise UserError(f"seconds {seconds!r}: must be between 0 and 1e7")
    try:
        with transaction(ws) as s:
            row = s.execute(_ASSIGNMENT_AND_LABEL, {"item": item_id, "rater": rater}).first()
            if row is None:
                raise NotAssignedError(f"item {item_id} is not assigned to {rater}")
            asg_id, swapped, existing_id, existing_choice = row
            if existing_id is not None:
                return LabelResult(int(existing_id), item_id, existing_choice, False)
            canonical = to_canonical(choice, swapped)
            now = db.utcnow()
            values = {
                "item_id": item_id,
                "rater": rater,
                "choice": canonical,
                "criteria": {k: to_canonical(v, swapped) for k, v in crit_in.items()},
                "rationale": rationale[:10_000],
                "swapped": swapped,
                "seconds": seconds,
                "created_at": now,
            }
            label_id = s.execute(_INSERT_LABEL, values).scalar_one()
            s.execute(_DONE, {"asg": asg_id, "at": now})
            return LabelResult(int(label_id), item_id, canonical, True)
    except IntegrityError:  # the same label was stored by a concurrent submit
        with transaction(ws) as s:
            existing = _existing_label(s, item_id, rater)
            if existing is None:
                raise
            return existing


def _existing_label(s, item_id: int, rater: str) -> LabelResult | None:
    row = s.execute(
        sa.select(m.Label.id, m.Label.choice).where(m.Label.item_id == item_id, m.Label.rater == rater)
    ).first()
    return LabelResult(int(row[0]), item_id, row[1], False) if row is not None else None


def progress(ws: Any, rater: str) -> Progress:
    with transaction(ws) as s:
        return _progress_in(s, rater)


def _progress_in(s, rater: str) -> Progress:
    row = s.execute(_PROGRESS, {"rater": rater}).one()
    return Progress(int(row[0] or 0), int(row[1] or 0))


def assigned_item(ws: Any, rater: str, item_id: int) -> QueuedItem:
    """The item as ``rater`` sees it; :class:`NotAssignedError` if it is not theirs."""
    with transaction(ws) as s:
        row = s.execute(
            sa.select(m.Item, m.Assignment.swapped)
            .join(m.Assignment, m.Assignment.item_id == m.Item.id)
            .where(m.Item.id == item_id, m.Assignment.rater == rater)
        ).first()
        if row is None:
            raise NotAssignedError(f"item {item_id} is not assigned to {rater}")
        return _view(row[0], row[1])


def rater_labels(ws: Any, rater: str) -> list[dict[str, Any]]:
    """The rater's own labels, newest first, as they saw them (left/right)."""
    with transaction(ws) as s:
        rows = s.scalars(sa.select(m.Label).where(m.Label.rater == rater).order_by(m.Label.id.desc())).all()
        out = []
        for r in rows:
            shown = r.choice
            if r.choice in ("A", "B"):
                shown = "left" if (r.choice == "A") != r.swapped else "right"
            out.append(
                {
                    "item_id": r.item_id,
                    "choice": shown,
                    "rationale": r.rationale,
                    "created_at": db.as_utc(r.created_at).isoformat(),
                }
            )
        return out


def assigned_items(ws: Any, rater: str, limit: int = 500) -> list[QueuedItem]:
    """Items assigned to ``rater`` (newest first), as they see them."""
    with transaction(ws) as s:
        rows = s.execute(
            sa.select(m.Item, m.Assignment.swapped)
            .join(m.Assignment, m.Assignment.item_id == m.Item.id)
            .where(m.Assignment.rater == rater)
            .order_by(m.Assignment.id.desc())
            .limit(limit)
        ).all()
        return [_view(r[0], r[1]) for r in rows]
