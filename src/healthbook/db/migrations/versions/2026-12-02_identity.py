"""Identity: register of personal identification numbers, matching index, duplicates and merges.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create identity_number, identity_person, identity_duplicate and identity_merge."""
    op.create_table(
        "identity_number",
        sa.Column("system", sa.String(200), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("patient_key", sa.String(100), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("since", sa.BigInteger, nullable=False),
        sa.Column("until", sa.BigInteger, nullable=True),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("system", "value", name="pk_identity_number"),
    )
    op.create_index("ix_identity_number_patient", "identity_number", ["patient_key", "res_id"])
    op.create_table(
        "identity_person",
        sa.Column("patient_key", sa.String(100), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("name_key", sa.String(200), nullable=False),
        sa.Column("family_key", sa.String(64), nullable=False),
        sa.Column("given_key", sa.String(64), nullable=False),
        sa.Column("birth_date", sa.String(10), nullable=False),
        sa.Column("birth_year", sa.String(4), nullable=False),
        sa.Column("gender", sa.String(16), nullable=False),
        sa.Column("cccd", sa.String(16), nullable=False),
        sa.Column("ssn", sa.String(16), nullable=False),
        sa.Column("province", sa.String(4), nullable=False),
        sa.Column("commune", sa.String(8), nullable=False),
        sa.Column("active", sa.String(1), nullable=False),
        sa.PrimaryKeyConstraint("patient_key", "res_id", name="pk_identity_person"),
    )
    op.create_index("ix_identity_person_birth_given", "identity_person", ["birth_date", "given_key"])
    op.create_index("ix_identity_person_birth_family", "identity_person", ["birth_date", "family_key"])
    op.create_index("ix_identity_person_name_year", "identity_person", ["name_key", "birth_year"])
    op.create_index("ix_identity_person_ssn", "identity_person", ["ssn"])
    op.create_table(
        "identity_duplicate",
        sa.Column("patient_key", sa.String(100), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("other_key", sa.String(100), nullable=False),
        sa.Column("other_id", sa.String(64), nullable=False),
        sa.Column("score", sa.Float(precision=53), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("found", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(
            "patient_key", "res_id", "other_key", "other_id", name="pk_identity_duplicate"
        ),
    )
    op.create_table(
        "identity_merge",
        sa.Column("patient_key", sa.String(100), nullable=False),
        sa.Column("merge_id", sa.String(64), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("undone", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("patient_key", "merge_id", name="pk_identity_merge"),
    )


def downgrade() -> None:
    """Drop the identity tables."""
    for table in ("identity_merge", "identity_duplicate", "identity_person", "identity_number"):
        op.drop_table(table)
