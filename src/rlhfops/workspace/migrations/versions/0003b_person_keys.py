"""Signed decisions: people's Ed25519 keys, signatures on spec sign-offs and overrides, log heads.

Revision ID: 0003b
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003b"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "person_keys",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("person", sa.String(200), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False, unique=True),
        sa.Column("credential", sa.String(100), nullable=False, unique=True),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(24), nullable=False),
        sa.Column("wrapped_key", sa.String(200), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_person_keys_person", "person_keys", ["person"])
    op.create_table(
        "decision_log_heads",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
    )
    for table in ("signatures", "overrides"):
        with op.batch_alter_table(table) as b:
            b.add_column(sa.Column("public_key", sa.String(64), nullable=True))
            b.add_column(sa.Column("signature", sa.String(128), nullable=True))


def downgrade() -> None:
    for table in ("overrides", "signatures"):
        with op.batch_alter_table(table) as b:
            b.drop_column("signature")
            b.drop_column("public_key")
    op.drop_table("decision_log_heads")
    op.drop_index("ix_person_keys_person", table_name="person_keys")
    op.drop_table("person_keys")
