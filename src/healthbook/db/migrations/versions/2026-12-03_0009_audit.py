"""Audit trail: hash-chained access events per health book, append-only on both databases.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from healthbook.db.dialect import append_only_ddl, drop_append_only_ddl

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create audit_event (append-only) and audit_head."""
    op.create_table(
        "audit_event",
        sa.Column("patient_key", sa.String(100), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("recorded", sa.BigInteger, nullable=False),
        sa.Column("interaction", sa.String(40), nullable=False),
        sa.Column("res_type", sa.String(64), nullable=True),
        sa.Column("res_id", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(2), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=True),
        sa.Column("agent_role", sa.String(32), nullable=True),
        sa.Column("agent_subject", sa.String(255), nullable=False),
        sa.Column("agent_issuer", sa.String(255), nullable=True),
        sa.Column("agent_user", sa.String(200), nullable=True),
        sa.Column("agent_facility", sa.String(16), nullable=True),
        sa.Column("agent_client", sa.String(200), nullable=True),
        sa.Column("query", sa.String(1000), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("patient_key", "seq", name="pk_audit_event"),
    )
    op.create_index("ix_audit_event_id", "audit_event", ["event_id"])
    op.create_index("ix_audit_event_recorded", "audit_event", ["recorded"])
    op.create_index("ix_audit_event_book", "audit_event", ["patient_key", "recorded"])
    op.create_table(
        "audit_head",
        sa.Column("patient_key", sa.String(100), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("patient_key", name="pk_audit_head"),
    )
    for statement in append_only_ddl(op.get_bind(), "audit_event"):
        op.execute(statement)


def downgrade() -> None:
    """Drop the audit tables."""
    for statement in drop_append_only_ddl(op.get_bind(), "audit_event"):
        op.execute(statement)
    op.drop_table("audit_head")
    op.drop_table("audit_event")
