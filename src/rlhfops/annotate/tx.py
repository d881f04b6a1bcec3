"""One transaction on the workspace database, with an in-process writer lock for SQLite.

Every workspace transaction on SQLite is ``BEGIN IMMEDIATE`` (it takes the write lock). When many
threads of one server contend for it, SQLite's busy handler makes the losers sleep and poll, which
wrecks latency; a process-wide lock per engine queues them instead and wakes the next at once.
Other processes still meet SQLite's ``busy_timeout``. PostgreSQL needs no lock (row locks and the
unique constraints do the work).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

_LOCKS: dict[int, threading.Lock] = {}
_GUARD = threading.Lock()


def _lock_for(engine: Any) -> threading.Lock:
    with _GUARD:
        return _LOCKS.setdefault(id(engine), threading.Lock())


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
