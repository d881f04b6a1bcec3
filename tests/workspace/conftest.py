"""Fixtures for tests/workspace: the same tests on SQLite and on PostgreSQL (own schema per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from shared_helpers import fresh_postgres_schema

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Sets RLHFOPS_DATABASE_URL for PostgreSQL (a fresh schema, dropped afterwards); yields the name."""
    monkeypatch.delenv("RLHFOPS_DATABASE_URL", raising=False)
    monkeypatch.delenv("RLHFOPS_WORKSPACE", raising=False)
    monkeypatch.setenv("RLHFOPS_USER", "alice")
    if request.param == "sqlite":
        yield "sqlite"
        return
    with fresh_postgres_schema(request, monkeypatch, "t"):
        yield "postgres"


@pytest.fixture
def ws(backend: str, tmp_path: Path):
    """A support-replies workspace with a task-spec owner, both signers and a domain-expert lead."""
    from rlhfops.workspace import init_workspace

    w = init_workspace(tmp_path / "ws", "support-replies")
    for name, role in [
        ("alice", "task-spec-owner"),
        ("bob", "business-owner"),
        ("carol", "technical-lead"),
        ("dave", "domain-expert-lead"),
        ("erin", "annotation-lead"),
        ("frank", "ml-engineer"),
    ]:
        w.add_person(name, role, "alice")
    yield w
    w.close()
