"""Search-index tables, one per parameter type, each keyed by patient_key (Citus colocation).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_OWNER = ("patient_key", "res_type", "res_id")


def _table(name: str, *columns: sa.Column[object], indexes: dict[str, list[str]]) -> None:
    op.create_table(
        name,
        sa.Column("patient_key", sa.String(100), nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        *columns,
    )
    for index, cols in {**indexes, f"ix_{name}_owner": list(_OWNER)}.items():
        op.create_index(index, name, cols)


def upgrade() -> None:
    """Create the seven index tables with their lookup and owner indexes."""
    _table(
        "idx_token",
        sa.Column("system", sa.Text, nullable=True),
        sa.Column("code", sa.Text, nullable=True),
        sa.Column("display", sa.Text, nullable=True),
        sa.Column("hash_code", sa.BigInteger, nullable=False),
        sa.Column("hash_sys_code", sa.BigInteger, nullable=False),
        sa.Column("hash_sys", sa.BigInteger, nullable=False),
        indexes={
            "ix_idx_token_code": ["hash_code"],
            "ix_idx_token_sys_code": ["hash_sys_code"],
            "ix_idx_token_sys": ["hash_sys"],
        },
    )
    _table(
        "idx_string",
        sa.Column("value_norm", sa.Text, nullable=False),
        sa.Column("value_exact", sa.Text, nullable=False),
        indexes={"ix_idx_string_value": ["res_type", "param", "value_norm"]},
    )
    _table(
        "idx_reference",
        sa.Column("target_type", sa.String(64), nullable=True),
        sa.Column("target_id", sa.String(64), nullable=True),
        sa.Column("target_url", sa.Text, nullable=True),
        indexes={
            "ix_idx_reference_target": ["target_id", "res_type", "param"],
            "ix_idx_reference_url": ["target_url"],
        },
    )
    _table(
        "idx_date",
        sa.Column("low", sa.BigInteger, nullable=False),
        sa.Column("high", sa.BigInteger, nullable=False),
        indexes={"ix_idx_date_range": ["res_type", "param", "low", "high"]},
    )
    _table(
        "idx_number",
        sa.Column("low", sa.Float(precision=53), nullable=False),
        sa.Column("high", sa.Float(precision=53), nullable=False),
        indexes={"ix_idx_number_range": ["res_type", "param", "low"]},
    )
    _table(
        "idx_quantity",
        sa.Column("system", sa.Text, nullable=True),
        sa.Column("code", sa.Text, nullable=True),
        sa.Column("low", sa.Float(precision=53), nullable=False),
        sa.Column("high", sa.Float(precision=53), nullable=False),
        indexes={"ix_idx_quantity_range": ["res_type", "param", "code", "low"]},
    )
    _table(
        "idx_uri",
        sa.Column("uri", sa.Text, nullable=False),
        indexes={"ix_idx_uri_value": ["res_type", "param", "uri"]},
    )


def downgrade() -> None:
    """Drop the index tables."""
    for name in (
        "idx_uri",
        "idx_quantity",
        "idx_number",
        "idx_date",
        "idx_reference",
        "idx_string",
        "idx_token",
    ):
        op.drop_table(name)
