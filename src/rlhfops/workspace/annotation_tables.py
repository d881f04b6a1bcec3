"""Annotation tables (migration ``0002_annotation``), on the workspace's declarative ``Base``.

Storage for :mod:`rlhfops.annotate` (assignment, labels, calibration), kept with the other tables so
the workspace database never imports the annotation service.

* ``accounts`` -- a login for a workspace person (``name`` = the people table's name): scrypt password
  hash with its own salt; ``is_admin`` for the account pages.
* ``api_tokens`` -- bearer tokens for scripts, stored as SHA-256 hashes only.
* ``items`` -- a comparison pair (``kind="pair"``: prompt, response_a, response_b) or a demonstration
  prompt (``kind="demo"``). ``is_gold`` + ``gold_answer`` ("A", "B", "tie", "both_bad") for gold items;
  ``calibration_round`` for the copies made for a calibration round. ``key`` is a content hash that keeps
  an import idempotent. ``n_assigned`` / ``is_open`` (production pairs with a free slot) make finding
  the next item an index range scan; the slot constraint below is what guarantees at most k.
* ``assignments`` -- (item, rater) once; ``swapped`` records the left/right position shown (True: the
  left response is B). Production items take a ``slot`` in ``0..k-1``, unique per item, so concurrent
  assigners cannot give an item to more than k raters; gold and calibration items have no slot.
* ``labels`` -- one per (item, rater): ``choice`` in canonical terms ("A" is ``response_a``), per-criterion
  choices, rationale, seconds taken.
* ``demonstrations`` -- one per (item, author): the ideal reply, ``draft`` / ``accepted`` / ``rejected``.
* ``calibration_rounds`` -- a round: its number, size, threshold, who started it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from rlhfops.workspace.db import Base

CHOICES = ("A", "B", "tie", "both_bad")
DEMO_STATUSES = ("draft", "accepted", "rejected")


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(300))
    is_admin: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_at: Mapped[datetime]


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    label: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime]


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        sa.UniqueConstraint("key", name="uq_items_key"),
        sa.Index("ix_items_queue", "is_open", "id"),
        sa.Index("ix_items_gold", "is_gold", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(sa.String(64))
    kind: Mapped[str] = mapped_column(sa.String(10), index=True)
    prompt: Mapped[str] = mapped_column(sa.Text)
    response_a: Mapped[str | None] = mapped_column(sa.Text)
    response_b: Mapped[str | None] = mapped_column(sa.Text)
    batch: Mapped[str] = mapped_column(sa.String(200), index=True)
    k: Mapped[int]
    n_assigned: Mapped[int] = mapped_column(default=0)
    is_open: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    is_gold: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    gold_answer: Mapped[str | None] = mapped_column(sa.String(10))
    calibration_round: Mapped[int | None] = mapped_column(index=True)
    source_item_id: Mapped[int | None]
    meta: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (
        sa.UniqueConstraint("item_id", "rater", name="uq_assignments_item_rater"),
        sa.UniqueConstraint("item_id", "slot", name="uq_assignments_item_slot"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(sa.ForeignKey("items.id"), index=True)
    rater: Mapped[str] = mapped_column(sa.String(200), index=True)
    slot: Mapped[int | None]
    swapped: Mapped[bool] = mapped_column(sa.Boolean)
    assigned_at: Mapped[datetime]
    done_at: Mapped[datetime | None]


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (sa.UniqueConstraint("item_id", "rater", name="uq_labels_item_rater"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(sa.ForeignKey("items.id"), index=True)
    rater: Mapped[str] = mapped_column(sa.String(200), index=True)
    choice: Mapped[str] = mapped_column(sa.String(10))
    criteria: Mapped[dict[str, Any]]
    rationale: Mapped[str] = mapped_column(sa.Text)
    swapped: Mapped[bool] = mapped_column(sa.Boolean)
    seconds: Mapped[float | None] = mapped_column(sa.Float)
    created_at: Mapped[datetime] = mapped_column(index=True)


class Demonstration(Base):
    __tablename__ = "demonstrations"
    __table_args__ = (sa.UniqueConstraint("item_id", "author", name="uq_demonstrations_item_author"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(sa.ForeignKey("items.id"), index=True)
    author: Mapped[str] = mapped_column(sa.String(200))
    text: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(10), index=True)
    reviewed_by: Mapped[str | None] = mapped_column(sa.String(200))
    reviewed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CalibrationRound(Base):
    __tablename__ = "calibration_rounds"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    n_items: Mapped[int]
    threshold: Mapped[float] = mapped_column(sa.Float)
    started_by: Mapped[str] = mapped_column(sa.String(200))
    started_at: Mapped[datetime]


class WebSession(Base):
    """A signed-in browser (migration ``0003c``): the cookie holds a random token, only its SHA-256 is
    stored. ``password_stamp`` is a digest of the account's password hash when the session began: a
    password change (any path) makes every older session invalid at once. Times are Unix seconds."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"), index=True)
    password_stamp: Mapped[str] = mapped_column(sa.String(64))
    created: Mapped[float] = mapped_column(sa.Float)
    expires: Mapped[float] = mapped_column(sa.Float, index=True)


class LoginFailure(Base):
    """A failed sign-in (migration ``0003c``), shared by every server process: the normalised account
    name, the client address, when (Unix seconds)."""

    __tablename__ = "login_failures"
    __table_args__ = (sa.Index("ix_login_failures_key", "name_key", "client", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name_key: Mapped[str] = mapped_column(sa.String(200))
    client: Mapped[str] = mapped_column(sa.String(100))
    at: Mapped[float] = mapped_column(sa.Float, index=True)


# Pieces of the assignment statements shared by the portable path (rlhfops.annotate.queue) and the
# PostgreSQL one (rlhfops.annotate.pg_statements).
_ITEMS, _ASSIGNMENTS = Item.__table__, Assignment.__table__
# the columns of an item that a rater's view and the assigner need (never meta, key or the gold answer)
ITEM_VIEW_COLUMNS = tuple(
    _ITEMS.c[name]
    for name in ("id", "kind", "prompt", "response_a", "response_b", "calibration_round", "n_assigned", "k")
)
# an item's count after one more assignment: closed to assigners once it has its k raters
ONE_MORE_ASSIGNED = {
    "n_assigned": _ITEMS.c.n_assigned + 1,
    "is_open": sa.case((_ITEMS.c.n_assigned + 1 < _ITEMS.c.k, sa.true()), else_=sa.false()),
}


def unseen_open_item(rater: sa.BindParameter) -> sa.Select:
    """The oldest open production item not yet assigned to ``rater`` (an index range scan), locked for
    the assigner: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent assigners spread over items
    instead of waiting on one (SQLite has one writer at a time and renders no lock)."""
    seen = sa.select(_ASSIGNMENTS.c.item_id).where(_ASSIGNMENTS.c.rater == rater)
    return (
        sa.select(*ITEM_VIEW_COLUMNS)
        .where(_ITEMS.c.is_open.is_(True), _ITEMS.c.id.not_in(seen))
        .order_by(_ITEMS.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


class LabelChange(Base):
    """A rater's change to their own label (migration ``0020a``): ``kind`` ``change`` (from "my recent
    labels") or ``undo`` (the label removed within the undo window; the pair comes back to them). The
    ``labels`` row holds the final label, which agreement and export read; this table keeps every earlier
    value (``old_*``) and what replaced it (``new_*``, empty for an undo), so nothing is lost."""

    __tablename__ = "label_changes"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    label_id: Mapped[int] = mapped_column(index=True)  # no foreign key: an undo deletes the label row
    item_id: Mapped[int] = mapped_column(sa.ForeignKey("items.id"), index=True)
    rater: Mapped[str] = mapped_column(sa.String(200), index=True)
    kind: Mapped[str] = mapped_column(sa.String(10))
    old_choice: Mapped[str] = mapped_column(sa.String(10))
    old_criteria: Mapped[dict[str, Any]]
    old_rationale: Mapped[str] = mapped_column(sa.Text)
    new_choice: Mapped[str | None] = mapped_column(sa.String(10))
    new_criteria: Mapped[dict[str, Any] | None]
    new_rationale: Mapped[str | None] = mapped_column(sa.Text)
    at: Mapped[datetime]
