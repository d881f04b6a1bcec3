"""Alembic migrations of the workspace database (run programmatically by rlhfops.workspace.migrate)."""
