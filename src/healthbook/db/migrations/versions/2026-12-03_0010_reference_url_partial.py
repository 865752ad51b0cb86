"""Index absolute reference targets only: most reference rows are local (target_url NULL).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ABSOLUTE = sa.text("target_url IS NOT NULL")


def upgrade() -> None:
    """Rebuild ix_idx_reference_url as a partial index (searches compare target_url with a value)."""
    op.drop_index("ix_idx_reference_url", table_name="idx_reference")
    op.create_index(
        "ix_idx_reference_url",
        "idx_reference",
        ["target_url"],
        postgresql_where=_ABSOLUTE,
        sqlite_where=_ABSOLUTE,
    )


def downgrade() -> None:
    """Back to the index over every row."""
    op.drop_index("ix_idx_reference_url", table_name="idx_reference")
    op.create_index("ix_idx_reference_url", "idx_reference", ["target_url"])
