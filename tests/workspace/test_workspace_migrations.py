"""Migrations from an empty database, model/migration agreement, revision checks; both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from rlhfops.cli.main import main
from rlhfops.workspace import Workspace, WorkspaceError, init_workspace, migrate
from rlhfops.workspace.db import Base

TABLES = {"people", "artifacts", "artifact_parents", "signatures", "baselines", "overrides", "triggers"}
# annotation service (migration 0002)
TABLES |= {"accounts", "api_tokens", "items", "assignments", "labels", "demonstrations", "calibration_rounds"}
TABLES |= {"web_sessions", "login_failures"}  # web sessions and the sign-in throttle (migration 0003c)
TABLES |= {"label_changes"}  # a rater's undo and changes of their own labels (migration 0020a)
TABLES |= {"person_keys", "decision_log_heads"}  # signed decisions (migration 0003b)
HEAD = migrate.head_revision()


def _tables(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_from_empty_creates_the_schema_the_models_describe(backend: str, tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "w")
    try:
        assert ws.db_revision() == migrate.head_revision()
        assert _tables(ws.engine) == TABLES
        with ws.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        ws.close()


def test_downgrade_to_empty_and_up_again(backend: str, tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "w")
    try:
        ws.add_person("alice", "task-spec-owner", "alice")
        assert migrate.downgrade(ws.engine, "base") is None
        assert _tables(ws.engine) == set()
        with pytest.raises(
            WorkspaceError, match=rf"revision \(empty\), this rlhfops needs {HEAD}: run `rlhfops db upgrade`"
        ):
            Workspace.open(ws.root)
        assert migrate.upgrade(ws.engine) == migrate.head_revision()
        assert ws.people() == []
    finally:
        ws.close()


def test_cli_db_upgrade_and_current(backend: str, tmp_path: Path, capsys, monkeypatch) -> None:
    ws = init_workspace(tmp_path / "w")
    migrate.downgrade(ws.engine, "base")
    ws.close()
    monkeypatch.chdir(tmp_path / "w")
    with pytest.raises(SystemExit) as ex:
        main(["status"])
    assert ex.value.code == 2 and "run `rlhfops db upgrade`" in capsys.readouterr().err
    main(["db", "upgrade"])
    assert capsys.readouterr().out == f"database: (empty) -> {HEAD}\n"
    main(["db", "current"])
    assert capsys.readouterr().out == f"database revision {HEAD}; this rlhfops needs {HEAD}\n"


def test_init_refuses_an_existing_workspace_and_leaves_nothing_on_failure(
    backend: str, tmp_path: Path, monkeypatch
) -> None:
    init_workspace(tmp_path / "w").close()
    with pytest.raises(WorkspaceError, match="already a workspace"):
        init_workspace(tmp_path / "w")
    monkeypatch.setenv(
        "RLHFOPS_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    )
    with pytest.raises(WorkspaceError, match="cannot open database postgresql"):
        init_workspace(tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_sqlite_uses_wal_and_busy_timeout(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("RLHFOPS_DATABASE_URL", raising=False)
    ws = init_workspace(tmp_path / "w")
    try:
        with ws.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        ws.close()


def test_cli_init_with_template(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("RLHFOPS_DATABASE_URL", raising=False)
    main(["init", str(tmp_path / "w"), "--template", "support-replies"])
    out = capsys.readouterr().out
    assert out.startswith(f"workspace {tmp_path / 'w'} (database at revision {HEAD})")
    for name in ("rlhfops.yaml", "spec.yaml", "edge_cases.md", "rlhfops.db", "artifacts"):
        assert (tmp_path / "w" / name).exists(), name
    monkeypatch.chdir(tmp_path / "w")
    main(["spec", "check"])
    assert "OK" in capsys.readouterr().out
    with pytest.raises(SystemExit) as ex:
        main(["init", str(tmp_path / "x"), "--template", "nope"])
    assert ex.value.code == 2 and "valid: blank, support-replies" in capsys.readouterr().err
