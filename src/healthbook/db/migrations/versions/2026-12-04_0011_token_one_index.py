"""One hash index per token row instead of two: `system|code` seeks the code's hash.

The (system, code) hash moves to the end of ix_idx_token_code (and of ix_idx_composite_c1), where a
search compares it inside the index entry; ix_idx_token_sys_code and ix_idx_composite_c1_sys go. Each was
a B-tree keyed by a hash, so every token row cost one more insert at a random position, and the index was
40% of the token indexes' size (596 of 1,397 MiB at 1M resources).

The upgrade rebuilds ix_idx_token_code with idx_token locked (as 0006 did): minutes at millions of
resources, during which searches and writes wait. Run it in a maintenance window.

On PostgreSQL, dependency statistics tell the planner that the code's hash almost decides the (system,
code) hash: without them it multiplies the two selectivities and expects a few hundred rows where there
are tens of thousands, and picks the wrong clause to drive a search.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_ORDER = ["patient_key", "res_type", "res_id"]
_STATISTICS = {
    "st_idx_token_code_sys": ("idx_token", "hash_code, hash_sys_code"),
    "st_idx_composite_c1": ("idx_composite", "c1_hash_code, c1_hash_sys_code"),
}


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    """Widen the code indexes by the (system, code) hash, drop the indexes on it alone."""
    op.drop_index("ix_idx_token_code", table_name="idx_token")
    op.drop_index("ix_idx_token_sys_code", table_name="idx_token")
    op.create_index("ix_idx_token_code", "idx_token", ["hash_code", *_ORDER, "hash_sys_code"])
    op.drop_index("ix_idx_composite_c1", table_name="idx_composite")
    op.drop_index("ix_idx_composite_c1_sys", table_name="idx_composite")
    op.create_index("ix_idx_composite_c1", "idx_composite", ["c1_hash_code", "c1_hash_sys_code"])
    if _postgresql():
        for name, (table, columns) in _STATISTICS.items():
            op.execute(f"CREATE STATISTICS {name} (dependencies) ON {columns} FROM {table}")
            op.execute(f"ANALYZE {table}")


def downgrade() -> None:
    """Back to one index per hash."""
    if _postgresql():
        for name in _STATISTICS:
            op.execute(f"DROP STATISTICS IF EXISTS {name}")
    op.drop_index("ix_idx_token_code", table_name="idx_token")
    op.create_index("ix_idx_token_code", "idx_token", ["hash_code", *_ORDER])
    op.create_index("ix_idx_token_sys_code", "idx_token", ["hash_sys_code", *_ORDER])
    op.drop_index("ix_idx_composite_c1", table_name="idx_composite")
    op.create_index("ix_idx_composite_c1", "idx_composite", ["c1_hash_code"])
    op.create_index("ix_idx_composite_c1_sys", "idx_composite", ["c1_hash_sys_code"])
