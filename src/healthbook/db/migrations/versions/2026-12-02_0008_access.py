"""Access control: grants per health book and resources hidden by the citizen.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create access_grant and access_hidden."""
    op.create_table(
        "access_grant",
        sa.Column("patient_key", sa.String(100), nullable=False),
        sa.Column("grantee", sa.String(200), nullable=False),
        sa.Column("grant_id", sa.String(200), nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("sees_hidden", sa.Boolean, nullable=False),
        sa.Column("valid_from", sa.BigInteger, nullable=True),
        sa.Column("valid_to", sa.BigInteger, nullable=True),
        sa.Column("data_from", sa.BigInteger, nullable=True),
        sa.Column("data_to", sa.BigInteger, nullable=True),
        sa.Column("purpose", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("patient_key", "grantee", "grant_id", "res_type", name="pk_access_grant"),
    )
    op.create_index("ix_access_grant_grantee", "access_grant", ["grantee", "patient_key"])
    op.create_table(
        "access_hidden",
        sa.Column("patient_key", sa.String(100), nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("consent_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("patient_key", "res_type", "res_id", "consent_id", name="pk_access_hidden"),
    )
    op.create_index("ix_access_hidden_consent", "access_hidden", ["patient_key", "consent_id"])


def downgrade() -> None:
    """Drop the access tables."""
    op.drop_table("access_hidden")
    op.drop_table("access_grant")
