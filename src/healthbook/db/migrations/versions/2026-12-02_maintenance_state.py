"""Key/value state for resumable maintenance jobs such as reindexing.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create maintenance_state."""
    op.create_table(
        "maintenance_state",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_maintenance_state"),
    )


def downgrade() -> None:
    """Drop maintenance_state."""
    op.drop_table("maintenance_state")
