"""The workspace database: SQLAlchemy 2 models and engine set-up for SQLite (WAL) and PostgreSQL.

Schema changes go through the Alembic migrations in ``rlhfops/workspace/migrations`` (applied by
``rlhfops db upgrade`` or :func:`rlhfops.workspace.migrate.upgrade`); these models mirror the latest
migration and a test checks they agree.

Nothing here is edited in place: artifacts, signatures, baselines and overrides are append-only rows.
The only update is closing a trigger (``closed_at``).

SQLite: WAL journal, ``busy_timeout`` 30 s and ``BEGIN IMMEDIATE`` for every transaction, so two
processes writing at once queue on the write lock instead of failing with "database is locked".
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SQLITE_BUSY_TIMEOUT_MS = 30_000
# A pooled server connection idle this long is pinged before use (see _ping_after_idle).
PING_AFTER_IDLE_S = 5.0
_IDLE_SINCE = "rlhfops_idle_since"
# Execution option of a connection that only reads (SQLite: a deferred BEGIN instead of BEGIN IMMEDIATE).
READ_ONLY = "rlhfops_read_only"


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; every stored time is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: sa.JSON, datetime: sa.DateTime(timezone=True)}


class Person(Base):
    """A person holding one role in the workspace (a person with two roles has two rows)."""

    __tablename__ = "people"
    __table_args__ = (sa.UniqueConstraint("name", "role", name="uq_people_name_role"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(40), index=True)
    added_by: Mapped[str] = mapped_column(sa.String(200))
    added_at: Mapped[datetime]


class Artifact(Base):
    """An immutable artifact stored once under its content hash (SHA-256 hex)."""

    __tablename__ = "artifacts"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(40), index=True)
    name: Mapped[str] = mapped_column(sa.String(500))
    path: Mapped[str] = mapped_column(sa.String(1000))
    creator: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(index=True)
    meta: Mapped[dict[str, Any]]


class ArtifactParent(Base):
    """Lineage edge: ``child_id`` was made from ``parent_id`` (``position`` keeps the given order)."""

    __tablename__ = "artifact_parents"

    child_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("artifacts.id"), primary_key=True)
    parent_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("artifacts.id"), primary_key=True, index=True
    )
    position: Mapped[int]


class Signature(Base):
    """A sign-off of one spec version (``spec_hash``) by a person in a role."""

    __tablename__ = "signatures"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    role: Mapped[str] = mapped_column(sa.String(40))
    person: Mapped[str] = mapped_column(sa.String(200))
    spec_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    signed_at: Mapped[datetime]
    public_key: Mapped[str | None] = mapped_column(sa.String(64))  # Ed25519, hex (migration 0003b)
    signature: Mapped[str | None] = mapped_column(sa.String(128))  # over signing.spec_signature_payload


class BaselineValue(Base):
    """One business-baseline measurement (the latest per metric is the baseline)."""

    __tablename__ = "baselines"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    metric: Mapped[str] = mapped_column(sa.String(60), index=True)
    value: Mapped[float] = mapped_column(sa.Float)
    n: Mapped[int | None]
    source: Mapped[str] = mapped_column(sa.String(1000))
    recorded_by: Mapped[str] = mapped_column(sa.String(200))
    recorded_at: Mapped[datetime]
    note: Mapped[str] = mapped_column(sa.Text, default="")


class Override(Base):
    """A play-order override: the owner of the blocked play lets ``stage`` start on ``spec_hash``."""

    __tablename__ = "overrides"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    stage: Mapped[str] = mapped_column(sa.String(20), index=True)
    play: Mapped[int]
    spec_hash: Mapped[str] = mapped_column(sa.String(64))
    blocker: Mapped[str] = mapped_column(sa.Text)
    reason: Mapped[str] = mapped_column(sa.Text)
    person: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime]
    public_key: Mapped[str | None] = mapped_column(sa.String(64))  # Ed25519, hex (migration 0003b)
    signature: Mapped[str | None] = mapped_column(sa.String(128))  # over signing.override_payload


class PersonKey(Base):
    """A person's Ed25519 signing key for one credential (their password, or one API token).

    ``public_key`` is registered here in the clear; the private half is stored only encrypted
    (AES-256-GCM) under a key derived with scrypt from the credential itself, so it can be used only
    by someone who presents that credential (see docs/security.md, "Identity and signatures").
    """

    __tablename__ = "person_keys"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    person: Mapped[str] = mapped_column(sa.String(200), index=True)
    public_key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    credential: Mapped[str] = mapped_column(sa.String(100), unique=True)  # "password:<h>" / "token:<h>"
    salt: Mapped[str] = mapped_column(sa.String(64))
    nonce: Mapped[str] = mapped_column(sa.String(24))
    wrapped_key: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime]


class DecisionHead(Base):
    """The decision log's head after each append (a witness of the log's length and hash)."""

    __tablename__ = "decision_log_heads"

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(sa.String(64))
    recorded_at: Mapped[datetime]


class Trigger(Base):
    """An open (or closed) trigger: evidence that a play must be re-entered."""

    __tablename__ = "triggers"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    play: Mapped[int]
    rule: Mapped[str] = mapped_column(sa.String(100))
    evidence: Mapped[str] = mapped_column(sa.Text)
    source: Mapped[str] = mapped_column(sa.String(200))
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(sa.String(200))


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # take the write lock up front: a deferred transaction that later writes can fail at once
        # with SQLITE_BUSY in WAL mode instead of waiting for busy_timeout. A connection marked
        # read-only (:data:`READ_ONLY`) begins deferred: in WAL mode it reads a snapshot while a
        # writer works, and never waits for the write lock.
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, busy_timeout and immediate transactions."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _sqlite_setup(engine)
        return engine
    # 20 connections kept (opened on demand; 10 more for bursts): the web app runs 16 database threads.
    # The pool must hold every thread's connection: an overflow connection is closed when it comes back,
    # and a new PostgreSQL connection (a forked backend, authentication) costs more than a label does
    # (pool_size 10 under the load benchmark's 16 threads: ~48 new connections a second).
    engine = sa.create_engine(url, pool_size=20, max_overflow=10)
    _ping_after_idle(engine)
    return engine


def refresh_planner_stats(engine: Engine, *tables: str) -> None:
    """``ANALYZE`` the given tables on PostgreSQL after a bulk load (no-op on SQLite).

    PostgreSQL plans from sampled statistics that autovacuum refreshes only after a while (a minute or
    more). Until then a freshly loaded table has none, and the planner guesses: the annotation fetch's
    "is there a gold item this rater has not seen" became a sequential scan of every item on every
    fetch (8.5 ms of PostgreSQL CPU per label instead of 1.2-1.8 ms on 20,000 queued pairs). PostgreSQL's
    manual advises the same ("Populating a Database": run ANALYZE after loading)."""
    if engine.dialect.name != "postgresql":
        return  # SQLite's planner does not need statistics for these index lookups
    with engine.begin() as conn:
        for table in tables:
            conn.exec_driver_sql(f'ANALYZE "{table}"')


def _ping_after_idle(engine: Engine) -> None:
    """Pessimistic disconnect handling, but only for a connection that sat in the pool for
    :data:`PING_AFTER_IDLE_S` or more (SQLAlchemy's ``pool_pre_ping`` pings on every checkout: one extra
    round trip per transaction, 2 of the 14 of an annotation fetch + submit on PostgreSQL). A stale
    connection (the server restarted, an idle timeout dropped it) is replaced before use, as with
    ``pool_pre_ping``; a connection back in the pool a moment ago is used as it is."""

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return  # just connected, or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as err:
            raise DisconnectionError(f"stale pooled connection: {err}") from err  # the pool reconnects


# The annotation tables (migration 0002, used by rlhfops.annotate); importing them here puts them on
# ``Base.metadata`` so the models always mirror every migration.
from rlhfops.workspace import annotation_tables as _annotation_tables  # noqa: E402,F401
