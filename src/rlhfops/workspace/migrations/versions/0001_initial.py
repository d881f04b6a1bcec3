"""Initial workspace schema: people, artifacts + lineage, signatures, baselines, overrides, triggers.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.Column("added_at", TZ, nullable=False),
        sa.UniqueConstraint("name", "role", name="uq_people_name_role"),
    )
    op.create_index("ix_people_role", "people", ["role"])
    op.create_table(
        "artifacts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("creator", sa.String(200), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
    )
    op.create_index("ix_artifacts_kind", "artifacts", ["kind"])
    op.create_index("ix_artifacts_created_at", "artifacts", ["created_at"])
    op.create_table(
        "artifact_parents",
        sa.Column("child_id", sa.String(64), sa.ForeignKey("artifacts.id"), primary_key=True),
        sa.Column("parent_id", sa.String(64), sa.ForeignKey("artifacts.id"), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
    )
    op.create_index("ix_artifact_parents_parent_id", "artifact_parents", ["parent_id"])
    op.create_table(
        "signatures",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("person", sa.String(200), nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("signed_at", TZ, nullable=False),
    )
    op.create_index("ix_signatures_spec_hash", "signatures", ["spec_hash"])
    op.create_table(
        "baselines",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("metric", sa.String(60), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
    )
    op.create_index("ix_baselines_metric", "baselines", ["metric"])
    op.create_table(
        "overrides",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("play", sa.Integer(), nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("blocker", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("person", sa.String(200), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_overrides_stage", "overrides", ["stage"])
    op.create_table(
        "triggers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("play", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(100), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("opened_at", TZ, nullable=False),
        sa.Column("closed_at", TZ, nullable=True),
        sa.Column("closed_by", sa.String(200), nullable=True),
    )


def downgrade() -> None:
    for table in (
        "triggers",
        "overrides",
        "baselines",
        "signatures",
        "artifact_parents",
        "artifacts",
        "people",
    ):
        op.drop_table(table)
