"""Fixtures for the monitor wiring tests: a support-replies workspace on SQLite (people, signed spec)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # monitor_* helper modules (--import-mode=importlib)


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A support-replies workspace (SQLite) with the play owners; cwd is its root."""
    from rlhfops.workspace import init_workspace

    monkeypatch.delenv("RLHFOPS_DATABASE_URL", raising=False)
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
