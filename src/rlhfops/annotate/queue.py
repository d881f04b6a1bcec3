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

On PostgreSQL a submit and a production assignment are each one atomic statement
(:mod:`rlhfops.annotate.pg_statements`), run in autocommit: a production fetch is two round trips and a
submit one, instead of eleven for both through separate statements and transactions.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rlhfops.annotate import pg_statements as pg
from rlhfops.annotate.tx import core_transaction, read_transaction, statement_connection, transaction
from rlhfops.errors import UserError
from rlhfops.workspace import annotation_tables as m
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
    if added:
        db.refresh_planner_stats(ws.engine, "items")
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
# it on SQLite; a reused statement also keeps its compiled-cache key). They are Core statements on the
# tables, run on a Core connection (:func:`core_transaction`): no ORM entity loading, no unit of work.
_ITEMS, _ASG, _LABELS = m.Item.__table__, m.Assignment.__table__, m.Label.__table__
_ITEM_COLS = m.ITEM_VIEW_COLUMNS
_RATER = sa.bindparam("rater")
_UNSEEN = sa.select(_ASG.c.item_id).where(_ASG.c.rater == _RATER)
_OPEN = (
    sa.select(*_ITEM_COLS, _ASG.c.swapped)
    .join(_ASG, _ASG.c.item_id == _ITEMS.c.id)
    .where(_ASG.c.rater == _RATER, _ASG.c.done_at.is_(None))
    .order_by(_ASG.c.id)
    .limit(1)
)
_LATEST_ROUND = sa.select(sa.func.max(m.CalibrationRound.__table__.c.id))
_CALIBRATION_ITEM = (
    sa.select(*_ITEM_COLS)
    .where(_ITEMS.c.calibration_round == sa.bindparam("round"), _ITEMS.c.id.not_in(_UNSEEN))
    .order_by(_ITEMS.c.id)
    .limit(1)
)
_GOLD_IDS = sa.select(_ITEMS.c.id).where(_ITEMS.c.is_gold.is_(True), _ITEMS.c.id.not_in(_UNSEEN)).limit(50)
_ITEM_BY_ID = sa.select(*_ITEM_COLS).where(_ITEMS.c.id == sa.bindparam("item"))
_CANDIDATE = m.unseen_open_item(_RATER)
_INSERT_ASSIGNMENT = _ASG.insert()
_COUNT_UP = _ITEMS.update().where(_ITEMS.c.id == sa.bindparam("item")).values(m.ONE_MORE_ASSIGNED)
_LABELLED = sa.select(sa.func.count(_LABELS.c.id)).where(_LABELS.c.rater == _RATER).scalar_subquery()
_N_OPEN = (
    sa.select(sa.func.count(_ASG.c.id))
    .where(_ASG.c.rater == _RATER, _ASG.c.done_at.is_(None))
    .scalar_subquery()
)
_PROGRESS = sa.select(_LABELLED, _N_OPEN)
# Everything a fetch needs to know before it assigns, in one statement: the rater's progress, the latest
# calibration round, and their unfinished assignment if any (a one-row state outer-joined to it).
# Gold mixing needs the rater's counts only when a gold item they have not seen exists (NULL otherwise).
_GOLD_UNSEEN = sa.exists(_GOLD_IDS)
_GOLD_JOIN = _ASG.join(_ITEMS, _ITEMS.c.id == _ASG.c.item_id)


def _outside_calibration_count(counted: Any) -> Any:
    """count(counted) over the rater's assignments outside calibration rounds; NULL (not computed) when no
    unseen gold item exists."""
    count = (
        sa.select(sa.func.count(counted))
        .select_from(_GOLD_JOIN)
        .where(_ASG.c.rater == _RATER, _ITEMS.c.calibration_round.is_(None))
        .scalar_subquery()
    )
    return sa.case((_GOLD_UNSEEN, count), else_=sa.null())


_GOLD_TOTAL = _outside_calibration_count(_ASG.c.id)  # assignments
_GOLD_SEEN = _outside_calibration_count(_ITEMS.c.gold_answer)  # of which gold (gold_answer not NULL)
_STATE = sa.select(
    _LABELLED.label("labelled"),
    _N_OPEN.label("n_open"),
    _LATEST_ROUND.scalar_subquery().label("round_id"),
    _GOLD_TOTAL.label("gold_total"),
    _GOLD_SEEN.label("gold_seen"),
).subquery()
_OPEN_SUB = _OPEN.subquery()
_FETCH_STATE = sa.select(_STATE, _OPEN_SUB).select_from(_STATE.outerjoin(_OPEN_SUB, sa.true()))
_ASSIGNMENT_AND_LABEL = (
    sa.select(_ASG.c.id, _ASG.c.swapped, _LABELS.c.id, _LABELS.c.choice)
    .outerjoin(_LABELS, sa.and_(_LABELS.c.item_id == _ASG.c.item_id, _LABELS.c.rater == _ASG.c.rater))
    .where(_ASG.c.item_id == sa.bindparam("item"), _ASG.c.rater == _RATER)
)
_INSERT_LABEL = _LABELS.insert().returning(_LABELS.c.id)
_DONE = _ASG.update().where(_ASG.c.id == sa.bindparam("asg")).values(done_at=sa.bindparam("at"))


def _view(item: Any, swapped: bool) -> QueuedItem:
    """A rater's view of an item (an ORM ``Item`` or a row with the :data:`_ITEM_COLS` columns)."""
    a, b = item.response_a or "", item.response_b or ""
    left, right = (b, a) if swapped else (a, b)
    return QueuedItem(item.id, item.kind, item.prompt, left, right, item.calibration_round is not None)


def _assign(c, item: Any, rater: str, slot: int | None) -> QueuedItem:
    swapped = random.random() < 0.5
    c.execute(
        _INSERT_ASSIGNMENT,
        {"item_id": item.id, "rater": rater, "slot": slot, "swapped": swapped, "assigned_at": db.utcnow()},
    )
    return _view(item, swapped)


def _calibration_item(c, rater: str, round_id: int) -> Any | None:
    return c.execute(_CALIBRATION_ITEM, {"round": round_id, "rater": rater}).first()


def _gold_item(c, rater: str, gold_rate: float, state: Any) -> Any | None:
    """A gold item the rater has not seen, when their share of gold is under ``gold_rate`` (``state``:
    the fetch's first row; its gold counts are NULL when no unseen gold item exists)."""
    if gold_rate <= 0 or state.gold_total is None:
        return None
    total, gold = int(state.gold_total), int(state.gold_seen)
    if gold >= gold_rate * (total + 1):
        return None
    ids = c.execute(_GOLD_IDS, {"rater": rater}).scalars().all()
    if not ids:  # pragma: no cover - the state said one exists (this transaction's snapshot)
        return None
    return c.execute(_ITEM_BY_ID, {"item": random.choice(ids)}).one()


def _production_candidate(c, rater: str) -> Any | None:
    """:func:`models.unseen_open_item` on the portable path (SQLite); PostgreSQL assigns with
    :data:`rlhfops.annotate.pg_statements.ASSIGN` (the same candidate, assigned in one statement)."""
    return c.execute(_CANDIDATE, {"rater": rater}).first()


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
    """(next item or None, why production is blocked or None, the rater's progress), in one transaction
    on SQLite and statement by statement on PostgreSQL (each write there is a single statement)."""
    for _attempt in range(_RETRIES):
        try:
            # one transaction on SQLite; on PostgreSQL each statement is its own (every write of a fetch
            # is one atomic statement, and READ COMMITTED gives each statement its own snapshot anyway)
            with statement_connection(ws) as c:
                state = c.execute(_FETCH_STATE, {"rater": rater}).one()
                labelled, n_open = int(state.labelled or 0), int(state.n_open or 0)
                if state.id is not None:  # an unfinished assignment: the same item again
                    return _view(state, state.swapped), None, Progress(labelled, n_open)
                try:
                    item, blocked = _next_in(c, rater, gold_rate, state), None
                except ProductionBlockedError as err:
                    item, blocked = None, str(err)
                # progress as of the start of this transaction, plus the assignment it made
                return item, blocked, Progress(labelled, n_open + (item is not None))
        except (IntegrityError, _Retry):
            continue  # another rater took that slot (or this item) first: look again
    raise UserError(f"fetch next for {rater}: too much contention, try again")


def _next_in(c, rater: str, gold_rate: float, state: Any) -> QueuedItem | None:
    """A new assignment for a rater without an unfinished one (``state``: the fetch's first row, with the
    latest calibration round and the rater's gold counts)."""
    round_id = state.round_id
    if round_id is not None:
        item = _calibration_item(c, rater, round_id)
        if item is not None:
            return _assign(c, item, rater, None)
        reason = _blocking_reason(c, round_id)
        if reason is not None:
            raise ProductionBlockedError(reason)
    item = _gold_item(c, rater, gold_rate, state)
    if item is not None:
        return _assign(c, item, rater, None)
    if c.dialect.name == "postgresql":  # lock, assign and count in one statement
        swapped = random.random() < 0.5
        row = c.execute(pg.ASSIGN, {"v_rater": rater, "v_swapped": swapped, "v_at": db.utcnow()}).first()
        return _view(row, swapped) if row is not None else None
    item = _production_candidate(c, rater)
    if item is None:
        return None
    if item.n_assigned >= item.k:  # pragma: no cover - is_open is kept in step with n_assigned
        raise _Retry()
    # the slot is the item's count so far; the unique (item, slot) constraint rejects a racing twin
    view = _assign(c, item, rater, item.n_assigned)
    c.execute(_COUNT_UP, {"item": item.id})
    return view


def _blocking_reason(c, round_id: int) -> str | None:
    """:func:`rlhfops.annotate.calibration.blocking_reason` in the connection's transaction."""
    from rlhfops.annotate.calibration import blocking_reason  # cycle: calibration imports queue

    with Session(bind=c) as s:  # joins the connection's transaction; reads only
        return blocking_reason(s, round_id)


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
    if ws.engine.dialect.name == "postgresql":
        return _submit_one_statement(ws, rater, item_id, choice, crit_in, rationale, seconds)
    try:
        with core_transaction(ws) as c:
            row = c.execute(_ASSIGNMENT_AND_LABEL, {"item": item_id, "rater": rater}).first()
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
            label_id = c.execute(_INSERT_LABEL, values).scalar_one()
            c.execute(_DONE, {"asg": asg_id, "at": now})
            return LabelResult(int(label_id), item_id, canonical, True)
    except IntegrityError:  # the same label was stored by a concurrent submit
        with transaction(ws) as s:
            existing = _existing_label(s, item_id, rater)
            if existing is None:
                raise
            return existing


def _submit_one_statement(
    ws: Any, rater: str, item_id: int, choice: str, crit_in: dict[str, str], rationale: str, seconds
) -> LabelResult:
    """:func:`submit_label` on PostgreSQL: :data:`pg_statements.SUBMIT`, one round trip."""
    params = {"v_item": item_id, "v_rater": rater, "v_rationale": rationale[:10_000], "v_seconds": seconds}
    for swapped, suffix in ((False, "plain"), (True, "swapped")):
        params[f"v_choice_{suffix}"] = to_canonical(choice, swapped)
        params[f"v_criteria_{suffix}"] = {k: to_canonical(v, swapped) for k, v in crit_in.items()}
    params["v_at"] = db.utcnow()
    with statement_connection(ws) as c:
        row = c.execute(pg.SUBMIT, params).first()
    if row is None:
        raise NotAssignedError(f"item {item_id} is not assigned to {rater}")
    _asg_id, label_id, stored_choice = row
    if label_id is not None:
        return LabelResult(int(label_id), item_id, stored_choice, True)
    with read_transaction(ws) as c:  # a double submit: the label that is there
        existing = _existing_label(c, item_id, rater)
    if existing is None:  # pragma: no cover - the conflict that skipped the insert was a stored label
        raise UserError(f"label for item {item_id} by {rater}: conflict without a stored label, try again")
    return existing


def _existing_label(s, item_id: int, rater: str) -> LabelResult | None:
    row = s.execute(
        sa.select(m.Label.id, m.Label.choice).where(m.Label.item_id == item_id, m.Label.rater == rater)
    ).first()
    return LabelResult(int(row[0]), item_id, row[1], False) if row is not None else None


def progress(ws: Any, rater: str) -> Progress:
    with read_transaction(ws) as c:
        return _progress_in(c, rater)


def _progress_in(c, rater: str) -> Progress:
    row = c.execute(_PROGRESS, {"rater": rater}).one()
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
