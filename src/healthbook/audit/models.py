"""Tables of the audit trail: one hash chain of access events per health book, and the head of each chain."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table

from healthbook.fhir.store.schema import metadata

# Append-only (triggers refuse UPDATE and DELETE on both databases, migration 0009). One row per access
# to one book; `seq` counts 1, 2, 3… per patient_key and `hash` = sha256(prev_hash + the row's fields),
# so that a changed, removed or inserted row breaks the chain (`healthbook audit verify`). Sharded by
# patient_key like the records it is about.
audit_event = Table(
    "audit_event",
    metadata,
    Column("patient_key", String(100), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("event_id", String(64), nullable=False),  # AuditEvent.id (a UUID: unique without a constraint)
    Column("recorded", BigInteger, nullable=False),  # microseconds since the epoch (UTC)
    Column("interaction", String(40), nullable=False),  # restful-interaction code or "$operation"
    Column("res_type", String(64), nullable=True),
    Column("res_id", String(64), nullable=True),
    Column("outcome", String(2), nullable=False),  # AuditEvent.outcome: 0 success, 4 refused/not found
    Column("purpose", String(64), nullable=True),  # v3 ActReason code
    Column("agent_role", String(32), nullable=True),  # citizen | guardian | health-worker | …
    Column("agent_subject", String(255), nullable=False),  # `sub` of the token
    Column("agent_issuer", String(255), nullable=True),  # `iss` of the token
    Column("agent_user", String(200), nullable=True),  # fhirUser (Practitioner/…, Patient/…)
    Column("agent_facility", String(16), nullable=True),  # facility code of staff and facility systems
    Column("agent_client", String(200), nullable=True),  # OAuth client id
    Column("query", String(1000), nullable=True),  # a search's type and parameter names, no values
    Column("request_id", String(64), nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
Index("ix_audit_event_id", audit_event.c.event_id)
Index("ix_audit_event_recorded", audit_event.c.recorded)
Index("ix_audit_event_book", audit_event.c.patient_key, audit_event.c.recorded)

# The last link of each chain: a removed tail shows as a head that no row matches.
audit_head = Table(
    "audit_head",
    metadata,
    Column("patient_key", String(100), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)
