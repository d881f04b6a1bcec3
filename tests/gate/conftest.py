"""Fixtures for tests/gate: a workspace with Play 1 done and a gate owner (gina)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # gate_helpers (pytest runs with --import-mode=importlib)


@pytest.fixture
def gws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from gate_helpers import make_workspace

    monkeypatch.delenv("RLHFOPS_DATABASE_URL", raising=False)
    monkeypatch.delenv("RLHFOPS_WORKSPACE", raising=False)
    monkeypatch.setenv("RLHFOPS_USER", "gina")
    w = make_workspace(tmp_path / "ws")
    yield w
    w.close()
