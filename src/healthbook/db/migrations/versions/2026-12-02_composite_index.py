"""Index table for composite search parameters.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create idx_composite with its lookup and owner indexes."""
    op.create_table(
        "idx_composite",
        sa.Column("patient_key", sa.String(100), nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        sa.Column("c1_hash_code", sa.BigInteger, nullable=False),
        sa.Column("c1_hash_sys_code", sa.BigInteger, nullable=False),
        sa.Column("c2_hash_code", sa.BigInteger, nullable=True),
        sa.Column("c2_hash_sys_code", sa.BigInteger, nullable=True),
        sa.Column("c2_low", sa.Float(precision=53), nullable=True),
        sa.Column("c2_high", sa.Float(precision=53), nullable=True),
        sa.Column("c2_code", sa.Text, nullable=True),
        sa.Column("c2_system", sa.Text, nullable=True),
        sa.Column("c2_dlow", sa.BigInteger, nullable=True),
        sa.Column("c2_dhigh", sa.BigInteger, nullable=True),
        sa.Column("c2_text", sa.Text, nullable=True),
    )
    op.create_index("ix_idx_composite_c1", "idx_composite", ["c1_hash_code"])
    op.create_index("ix_idx_composite_c1_sys", "idx_composite", ["c1_hash_sys_code"])
    op.create_index("ix_idx_composite_owner", "idx_composite", ["patient_key", "res_type", "res_id"])


def downgrade() -> None:
    """Drop idx_composite."""
    op.drop_table("idx_composite")
