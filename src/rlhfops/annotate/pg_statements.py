"""The annotation hot path as single statements, for PostgreSQL.

On PostgreSQL every statement is a network round trip, and each round trip costs the server process
and a PostgreSQL backend more CPU than the statement's work. The portable path (:mod:`queue`) spends
BEGIN + 3 statements + COMMIT on a submit and BEGIN + 4 statements + COMMIT on a production fetch.
PostgreSQL runs a data-modifying ``WITH`` query as one atomic statement (PostgreSQL manual, 7.8.4
"Data-Modifying Statements in WITH"), so here:

- :data:`SUBMIT`: find the rater's assignment, insert the label (``ON CONFLICT DO NOTHING``: a double
  submit inserts nothing) and close the assignment only when the label went in. The canonical choice
  depends on the assignment's left/right swap, which lives in the database: both readings are bound
  and a ``CASE`` on the assignment's ``swapped`` picks one. One round trip (autocommit).
- :data:`ASSIGN`: lock the oldest open production item this rater has not seen (``FOR UPDATE SKIP
  LOCKED``: other assigners' rows are skipped, not waited for), insert the assignment with the item's
  next slot and count it on the item. Together with the fetch's state query, a production fetch is two
  round trips.

The guarantees are the constraints', as on the portable path: (item, rater) and (item, slot) are unique
on assignments and (item, rater) on labels; a statement that loses a race fails whole (nothing of it
is written) and the caller retries.

Parameters are named ``v_*``: SQLAlchemy reads an execute-time parameter named like a column of an
UPDATE's table as a value to SET (``rater`` would have rewritten the assignment's rater).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from rlhfops.workspace import annotation_tables as m

_ITEMS, _ASG, _LABELS = m.Item.__table__, m.Assignment.__table__, m.Label.__table__
_RATER = sa.bindparam("v_rater", type_=_ASG.c.rater.type)
_AT = sa.bindparam("v_at", type_=_ASG.c.assigned_at.type)

# ---- submit ---------------------------------------------------------------------------------------
_asg = (
    sa.select(_ASG.c.id, _ASG.c.swapped)
    .where(_ASG.c.item_id == sa.bindparam("v_item", type_=sa.Integer), _ASG.c.rater == _RATER)
    .cte("asg")
)


def _by_swap(name: str, type_: sa.types.TypeEngine) -> sa.ColumnElement:
    """``:v_<name>_swapped`` when the rater saw the pair swapped, else ``:v_<name>_plain``."""
    return sa.case(
        (_asg.c.swapped, sa.bindparam(f"v_{name}_swapped", type_=type_)),
        else_=sa.bindparam(f"v_{name}_plain", type_=type_),
    )


_new_label = (
    pg_insert(_LABELS)
    .from_select(
        ["item_id", "rater", "choice", "criteria", "rationale", "swapped", "seconds", "created_at"],
        sa.select(
            sa.bindparam("v_item", type_=sa.Integer),
            _RATER,
            _by_swap("choice", _LABELS.c.choice.type),
            _by_swap("criteria", _LABELS.c.criteria.type),
            sa.bindparam("v_rationale", type_=_LABELS.c.rationale.type),
            _asg.c.swapped,
            sa.bindparam("v_seconds", type_=_LABELS.c.seconds.type),
            _AT,
        ),
    )
    .on_conflict_do_nothing(index_elements=["item_id", "rater"])
    .returning(_LABELS.c.id, _LABELS.c.choice)
    .cte("new_label")
)
_close = (
    _ASG.update()
    .where(_ASG.c.id == sa.select(_asg.c.id).scalar_subquery(), sa.exists(sa.select(_new_label.c.id)))
    .values(done_at=_AT)
    .cte("close")
)
# one row (assignment id, new label id or NULL, its choice) when the item is assigned to the rater; no
# row when it is not. A NULL label id: the label was already there (a double submit).
SUBMIT = (
    sa.select(_asg.c.id, _new_label.c.id, _new_label.c.choice)
    .select_from(_asg.outerjoin(_new_label, sa.true()))
    .add_cte(_close)
)

# ---- production assignment ------------------------------------------------------------------------
_candidate = m.unseen_open_item(_RATER).cte("candidate")
_new_assignment = (
    _ASG.insert()
    .from_select(
        ["item_id", "rater", "slot", "swapped", "assigned_at"],
        sa.select(
            _candidate.c.id,
            _RATER,
            _candidate.c.n_assigned,  # the slot: unique per item, so a racing twin fails
            sa.bindparam("v_swapped", type_=_ASG.c.swapped.type),
            _AT,
        ),
    )
    .returning(_ASG.c.item_id)
    .cte("new_assignment")
)
_count_up = (
    _ITEMS.update()
    .where(_ITEMS.c.id == sa.select(_new_assignment.c.item_id).scalar_subquery())
    .values(m.ONE_MORE_ASSIGNED)
    .cte("count_up")
)
# the assigned item (its columns as before the count went up), or no row when none is left
ASSIGN = sa.select(_candidate).add_cte(_new_assignment, _count_up)
