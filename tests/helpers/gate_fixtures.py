"""Fixtures for the gate tests (gate/, web/gate/, report/): a workspace with Play 1 done and a gate owner."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def gws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from gate_helpers import PEOPLE
    from shared_helpers import make_workspace

    monkeypatch.delenv("RLHFOPS_DATABASE_URL", raising=False)
    monkeypatch.delenv("RLHFOPS_WORKSPACE", raising=False)
    monkeypatch.setenv("RLHFOPS_USER", "gina")
    w = make_workspace(tmp_path / "ws", PEOPLE, play1=True)
    yield w
    w.close()
