"""Tables of access control: who may see which health book, and what the citizen has hidden."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, String, Table

from healthbook.fhir.store.schema import metadata

# One row per (patient, grantee, grant, resource type): "grantee may read this patient's resources of
# res_type ('*' = all) while valid". Rows are derived at write time from the records themselves (the
# citizen's own Patient, a guardian's RelatedPerson, Encounters at a facility, Consents) or made by a
# break-glass declaration. Sharded by patient_key like the data it guards; looked up by grantee too.
access_grant = Table(
    "access_grant",
    metadata,
    Column("patient_key", String(100), primary_key=True),
    Column("grantee", String(200), primary_key=True),  # cccd:<12 digits> | facility:<code> | subject:<hash>
    Column(
        "grant_id", String(200), primary_key=True
    ),  # self | guardian:<id> | encounter | consent:<id> | ...
    Column("res_type", String(64), primary_key=True),  # '*' or one resource type
    Column(
        "sees_hidden", Boolean, nullable=False
    ),  # also what the citizen hid (own book, guardian, emergency)
    Column("valid_from", BigInteger, nullable=True),  # microseconds since the epoch; NULL = always
    Column("valid_to", BigInteger, nullable=True),
    Column("data_from", BigInteger, nullable=True),  # only data dated in this range (consent dataPeriod)
    Column("data_to", BigInteger, nullable=True),
    Column("purpose", String(64), nullable=True),  # v3 ActReason code of a consent or break-glass
)
Index("ix_access_grant_grantee", access_grant.c.grantee, access_grant.c.patient_key)

# Resources the citizen hid (a Consent deny provision naming them, and whatever belongs to a hidden
# Encounter). Several consents may hide the same resource; the row of each is kept separately.
access_hidden = Table(
    "access_hidden",
    metadata,
    Column("patient_key", String(100), primary_key=True),
    Column("res_type", String(64), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("consent_id", String(64), primary_key=True),
)
Index("ix_access_hidden_consent", access_hidden.c.patient_key, access_hidden.c.consent_id)
