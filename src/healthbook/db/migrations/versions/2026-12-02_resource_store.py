"""Resource, version and locator tables of the generic FHIR store.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the store; every primary key includes patient_key (Citus rule 1)."""
    op.create_table(
        "resource",
        sa.Column("patient_key", sa.String(100), nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.BigInteger, nullable=False),
        sa.Column("last_updated", sa.BigInteger, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("content", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("patient_key", "res_type", "res_id", name="pk_resource"),
    )
    op.create_index("ix_resource_type_updated", "resource", ["res_type", "last_updated"])
    op.create_table(
        "resource_version",
        sa.Column("patient_key", sa.String(100), nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.BigInteger, nullable=False),
        sa.Column("last_updated", sa.BigInteger, nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("content", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint(
            "patient_key", "res_type", "res_id", "version_id", name="pk_resource_version"
        ),
    )
    op.create_index("ix_resource_version_updated", "resource_version", ["last_updated"])
    op.create_index("ix_resource_version_type_updated", "resource_version", ["res_type", "last_updated"])
    op.create_table(
        "resource_locator",
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("patient_key", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("res_type", "res_id", name="pk_resource_locator"),
    )


def downgrade() -> None:
    """Drop the store."""
    op.drop_table("resource_locator")
    op.drop_table("resource_version")
    op.drop_table("resource")
