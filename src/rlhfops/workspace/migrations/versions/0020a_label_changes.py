"""Annotation: a rater's changes to their own labels (undo, "my recent labels"), kept beside the final label.

Revision ID: 0020a
Revises: 0003c
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020a"
down_revision = "0003c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "label_changes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("label_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), sa.ForeignKey("items.id"), nullable=False),
        sa.Column("rater", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("old_choice", sa.String(10), nullable=False),
        sa.Column("old_criteria", sa.JSON(), nullable=False),
        sa.Column("old_rationale", sa.Text(), nullable=False),
        sa.Column("new_choice", sa.String(10), nullable=True),
        sa.Column("new_criteria", sa.JSON(), nullable=True),
        sa.Column("new_rationale", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_label_changes_label_id", "label_changes", ["label_id"])
    op.create_index("ix_label_changes_item_id", "label_changes", ["item_id"])
    op.create_index("ix_label_changes_rater", "label_changes", ["rater"])


def downgrade() -> None:
    op.drop_table("label_changes")
