"""Fixtures for the monitor tests (monitor/, web/monitor/): a support-replies workspace (people, signed spec).

SQLite by default; a module that sets ``pytestmark = BOTH_BACKENDS`` also runs on PostgreSQL (a fresh
schema per test, dropped afterwards; skipped when no server answers).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from shared_helpers import fresh_postgres_schema


@pytest.fixture
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """ "sqlite" unless parametrized with "postgres" (then RLHFOPS_DATABASE_URL points at a fresh schema)."""
    name = getattr(request, "param", "sqlite")
    monkeypatch.delenv("RLHFOPS_DATABASE_URL", raising=False)
    if name == "sqlite":
        yield name
        return
    with fresh_postgres_schema(request, monkeypatch, "m"):
        yield name


@pytest.fixture
def ws(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A support-replies workspace with the play owners; cwd is its root."""
    from rlhfops.workspace import init_workspace

    monkeypatch.delenv("RLHFOPS_WORKSPACE", raising=False)
    monkeypatch.setenv("RLHFOPS_USER", "alice")
    w = init_workspace(tmp_path / "ws", "support-replies")
    for name, role in [
        ("alice", "task-spec-owner"),
        ("bob", "business-owner"),
        ("carol", "technical-lead"),
        ("erin", "annotation-lead"),
        ("frank", "ml-engineer"),
    ]:
        w.add_person(name, role, "alice")
    monkeypatch.chdir(w.root)
    yield w
    w.close()
