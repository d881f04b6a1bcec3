"""One transaction on the workspace database, with an in-process writer lock for SQLite.

Every workspace transaction on SQLite is ``BEGIN IMMEDIATE`` (it takes the write lock). When many
threads of one server contend for it, SQLite's busy handler makes the losers sleep and poll, which
wrecks latency; a process-wide lock per engine queues them instead and wakes the next at once.
Other processes still meet SQLite's ``busy_timeout``. PostgreSQL needs no lock (row locks and the
unique constraints do the work).

:func:`transaction` yields an ORM session; :func:`core_transaction` a Core connection (the hot paths of
the annotation service: no session, no unit of work); :func:`read_transaction` a Core connection for
reads only, which on SQLite begins deferred and takes neither lock (WAL readers see a consistent
snapshot while a writer works); :func:`statement_connection` a connection whose every statement is its
own transaction on PostgreSQL (no BEGIN / COMMIT round trips), for code written as single atomic
statements, and :func:`core_transaction` on SQLite.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from rlhfops.workspace.db import READ_ONLY

_LOCKS: dict[int, threading.Lock] = {}
_GUARD = threading.Lock()


def _lock_for(engine: Any) -> threading.Lock:
    lock = _LOCKS.get(id(engine))
    if lock is None:
        with _GUARD:
            lock = _LOCKS.setdefault(id(engine), threading.Lock())
    return lock


@contextmanager
def transaction(ws: Any) -> Iterator[Session]:
    """``ws.session()``, serialised within this process when the database is SQLite."""
    engine = ws.engine
    if engine.dialect.name != "sqlite":
        with ws.session() as s:
            yield s
        return
    with _lock_for(engine), ws.session() as s:
        yield s


@contextmanager
def core_transaction(ws: Any) -> Iterator[Connection]:
    """A Core connection in one transaction (committed on success), serialised like :func:`transaction`."""
    engine = ws.engine
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    with _lock_for(engine), engine.begin() as conn:
        yield conn


@contextmanager
def read_transaction(ws: Any) -> Iterator[Connection]:
    """A Core connection for reads only (no lock taken on SQLite; do not write through it)."""
    with ws.engine.connect() as conn:
        conn.execution_options(**{READ_ONLY: True})
        with conn.begin():
            yield conn


@contextmanager
def statement_connection(ws: Any) -> Iterator[Connection]:
    """On PostgreSQL, a Core connection in autocommit: each statement commits on its own (for callers
    whose every write is one atomic statement, :mod:`rlhfops.annotate.pg_statements`); elsewhere
    :func:`core_transaction`."""
    engine = ws.engine
    if engine.dialect.name != "postgresql":
        with core_transaction(ws) as conn:
            yield conn
        return
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn
