"""Fixtures for the annotation service and web app: SQLite and PostgreSQL (a fresh schema per test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def _backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, name: str) -> Iterator[str]:
    monkeypatch.delenv("RLHFOPS_DATABASE_URL", raising=False)
    monkeypatch.delenv("RLHFOPS_WORKSPACE", raising=False)
    monkeypatch.setenv("RLHFOPS_USER", "alice")
    if name == "sqlite":
        yield "sqlite"
        return
    import sqlalchemy as sa

    base = request.getfixturevalue("postgres_url")
    schema = f"w_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    monkeypatch.setenv("RLHFOPS_DATABASE_URL", _schema_url(base, schema))
    try:
        yield "postgres"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Both backends: RLHFOPS_DATABASE_URL points at a fresh PostgreSQL schema for 'postgres'."""
    yield from _backend(request, monkeypatch, request.param)


@pytest.fixture
def sqlite_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield from _backend(request, monkeypatch, "sqlite")


def _make_ws(tmp_path: Path):
    from web_helpers import make_workspace

    return make_workspace(tmp_path / "ws")


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
