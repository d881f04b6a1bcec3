"""Fixtures for the annotation service and web app: SQLite and PostgreSQL (a fresh schema per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from shared_helpers import fresh_postgres_schema

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, name: str) -> Iterator[str]:
    monkeypatch.delenv("RLHFOPS_DATABASE_URL", raising=False)
    monkeypatch.delenv("RLHFOPS_WORKSPACE", raising=False)
    monkeypatch.setenv("RLHFOPS_USER", "alice")
    if name == "sqlite":
        yield "sqlite"
        return
    with fresh_postgres_schema(request, monkeypatch, "w"):
        yield "postgres"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Both backends: RLHFOPS_DATABASE_URL points at a fresh PostgreSQL schema for 'postgres'."""
    yield from _backend(request, monkeypatch, request.param)


@pytest.fixture
def sqlite_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield from _backend(request, monkeypatch, "sqlite")


def _make_ws(tmp_path: Path):
    from shared_helpers import make_workspace
    from web_helpers import PASSWORD, PEOPLE

    return make_workspace(tmp_path / "ws", PEOPLE, account_password=PASSWORD)


@pytest.fixture
def ws(backend: str, tmp_path: Path):
    w = _make_ws(tmp_path)
    yield w
    w.close()


@pytest.fixture
def postgres_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """PostgreSQL only (mark the test ``postgres`` so that it skips without a server)."""
    yield from _backend(request, monkeypatch, "postgres")


@pytest.fixture
def postgres_ws(postgres_backend: str, tmp_path: Path):
    w = _make_ws(tmp_path)
    yield w
    w.close()


@pytest.fixture
def sqlite_ws(sqlite_backend: str, tmp_path: Path):
    w = _make_ws(tmp_path)
    yield w
    w.close()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium for the browser tests of a module (tests/helpers/web_helpers.py: chromium)."""
    pytest.importorskip("playwright.sync_api")
    from web_helpers import chromium

    with chromium() as b:
        yield b
