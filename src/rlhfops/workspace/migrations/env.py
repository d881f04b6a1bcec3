"""Alembic environment: run with a connection handed over by rlhfops.workspace.migrate (no alembic.ini)."""

from __future__ import annotations

from alembic import context

from rlhfops.workspace.db import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:  # pragma: no cover - only reached when someone runs alembic by hand
        raise RuntimeError("run migrations with `rlhfops db upgrade`, which passes the connection")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():  # pragma: no cover
    raise RuntimeError("offline (SQL script) migrations are not supported; use `rlhfops db upgrade`")
run_migrations_online()
