"""Search at scale: covering indexes in (type, id) order, the date envelope, prefix and id lookups.

- resource (res_type, res_id, patient_key): _id and _has lookups without the patient;
- idx_token hash indexes and idx_reference target index end with (patient_key, res_type, res_id), so that
  a search reads its matches in the default order from the index alone and stops at the page size, and
  finds one patient's matches in one seek; the idx_reference owner index also holds (param,
  target_type, target_id), for _has and _include; a partial index holds the references to a Patient
  stored under another patient's key (the few that _has cannot look up in the holder's own shard);
- idx_string value index with text_pattern_ops on PostgreSQL (prefix LIKE whatever the collation);
- idx_date env_low/env_high: the envelope of all values of a resource's parameter (filled here from the
  existing rows), with B-tree indexes for date sorts and one-sided ranges and, on PostgreSQL, a GiST
  index on int8range(env_low, env_high) (btree_gist) for two-sided ranges; it replaces ix_idx_date_range.

Every new index includes patient_key (scale-out.md). On SQLite the envelope columns keep a server default
of 0 (SQLite cannot add a NOT NULL column without one); the application always writes them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ORDER = ["patient_key", "res_type", "res_id"]  # the default order of search results

# The envelope of each (resource, parameter): the smallest and largest end of all its rows.
_FILL_ENVELOPE = """
UPDATE idx_date SET env_low = e.lo, env_high = e.hi
FROM (
    SELECT patient_key, res_type, res_id, param,
           CASE WHEN min(low) < min(high) THEN min(low) ELSE min(high) END AS lo,
           CASE WHEN max(high) > max(low) THEN max(high) ELSE max(low) END AS hi
    FROM idx_date
    GROUP BY patient_key, res_type, res_id, param
) AS e
WHERE idx_date.patient_key = e.patient_key AND idx_date.res_type = e.res_type
  AND idx_date.res_id = e.res_id AND idx_date.param = e.param
"""


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    """Add the envelope, replace the lookup indexes with covering ones."""
    pg = _postgresql()
    default = None if pg else sa.text("0")
    op.add_column("idx_date", sa.Column("env_low", sa.BigInteger, nullable=pg, server_default=default))
    op.add_column("idx_date", sa.Column("env_high", sa.BigInteger, nullable=pg, server_default=default))
    op.drop_index("ix_idx_date_range", table_name="idx_date")
    op.execute(_FILL_ENVELOPE)
    if pg:
        op.alter_column("idx_date", "env_low", nullable=False)
        op.alter_column("idx_date", "env_high", nullable=False)

    op.create_index("ix_resource_type_id", "resource", ["res_type", "res_id", "patient_key"])
    op.drop_index("ix_idx_token_code", table_name="idx_token")
    op.create_index("ix_idx_token_code", "idx_token", ["hash_code", *_ORDER])
    op.drop_index("ix_idx_token_sys_code", table_name="idx_token")
    op.create_index("ix_idx_token_sys_code", "idx_token", ["hash_sys_code", *_ORDER])
    op.drop_index("ix_idx_reference_target", table_name="idx_reference")
    op.create_index(
        "ix_idx_reference_target",
        "idx_reference",
        ["target_id", "res_type", "param", "target_type", "patient_key", "res_id"],
    )
    foreign = sa.text("target_type = 'Patient' AND patient_key <> target_id")
    op.create_index(
        "ix_idx_reference_foreign_patient",
        "idx_reference",
        ["res_type", "param", "patient_key", "res_id", "target_id"],
        postgresql_where=foreign,
        sqlite_where=foreign,
    )
    op.drop_index("ix_idx_reference_owner", table_name="idx_reference")
    op.create_index(
        "ix_idx_reference_owner",
        "idx_reference",
        ["patient_key", "res_type", "res_id", "param", "target_type", "target_id"],
    )
    op.drop_index("ix_idx_string_value", table_name="idx_string")
    op.create_index(
        "ix_idx_string_value",
        "idx_string",
        ["res_type", "param", "value_norm", "res_id", "patient_key"],
        postgresql_ops={"value_norm": "text_pattern_ops"},
    )
    op.create_index(
        "ix_idx_date_env_low", "idx_date", ["res_type", "param", "env_low", "patient_key", "res_id"]
    )
    op.create_index(
        "ix_idx_date_env_high", "idx_date", ["res_type", "param", "env_high", "patient_key", "res_id"]
    )
    if pg:
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            "CREATE INDEX ix_idx_date_env ON idx_date USING gist "
            "(res_type, param, int8range(env_low, env_high, '[]'), patient_key)"
        )
        op.execute("ANALYZE idx_date")  # statistics of the indexed range expression, for the planner


def downgrade() -> None:
    """Back to the 0005 indexes; the envelope columns go."""
    pg = _postgresql()
    if pg:
        op.drop_index("ix_idx_date_env", table_name="idx_date")
    op.drop_index("ix_idx_date_env_high", table_name="idx_date")
    op.drop_index("ix_idx_date_env_low", table_name="idx_date")
    op.drop_index("ix_idx_string_value", table_name="idx_string")
    op.create_index("ix_idx_string_value", "idx_string", ["res_type", "param", "value_norm"])
    op.drop_index("ix_idx_reference_foreign_patient", table_name="idx_reference")
    op.drop_index("ix_idx_reference_target", table_name="idx_reference")
    op.create_index("ix_idx_reference_target", "idx_reference", ["target_id", "res_type", "param"])
    op.drop_index("ix_idx_reference_owner", table_name="idx_reference")
    op.create_index("ix_idx_reference_owner", "idx_reference", ["patient_key", "res_type", "res_id"])
    op.drop_index("ix_idx_token_sys_code", table_name="idx_token")
    op.create_index("ix_idx_token_sys_code", "idx_token", ["hash_sys_code"])
    op.drop_index("ix_idx_token_code", table_name="idx_token")
    op.create_index("ix_idx_token_code", "idx_token", ["hash_code"])
    op.drop_index("ix_resource_type_id", table_name="resource")
    op.create_index("ix_idx_date_range", "idx_date", ["res_type", "param", "low", "high"])
    with op.batch_alter_table("idx_date") as batch:
        batch.drop_column("env_high")
        batch.drop_column("env_low")
