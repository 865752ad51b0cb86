"""Tables of the identity service: the national-number register, the matching index, duplicates, merges."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, String, Table, Text

from healthbook.fhir.store.schema import metadata

# Every personal identification number ever seen → the health book it belongs to. A number is never
# given to anyone else, so cancelled and merged numbers stay. Keyed by the number itself (on Citus a
# table distributed by `value` in its own colocation group, like resource_locator), which is how the
# database enforces one book per number.
identity_number = Table(
    "identity_number",
    metadata,
    Column("system", String(200), primary_key=True),
    Column("value", String(64), primary_key=True),
    Column("patient_key", String(100), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # current | cancelled | merged
    Column("since", BigInteger, nullable=False),  # microseconds since the epoch
    Column("until", BigInteger, nullable=True),
    Column("reason", String(200), nullable=True),
)
Index("ix_identity_number_patient", identity_number.c.patient_key, identity_number.c.res_id)

# One row per Patient: the normalised fields the matcher compares, with blocking keys that the
# candidate queries seek on. Per patient (sharded by patient_key).
identity_person = Table(
    "identity_person",
    metadata,
    Column("patient_key", String(100), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("name_key", String(200), nullable=False),  # "nguyen thi anh"
    Column("family_key", String(64), nullable=False),
    Column("given_key", String(64), nullable=False),  # the last given name: "anh"
    Column("birth_date", String(10), nullable=False),  # as recorded, "" when unknown
    Column("birth_year", String(4), nullable=False),
    Column("gender", String(16), nullable=False),
    Column("cccd", String(16), nullable=False),
    Column("ssn", String(16), nullable=False),  # the 10-digit social-insurance number of the BHYT card
    Column("province", String(4), nullable=False),  # 2025 province code ("" unknown)
    Column("commune", String(8), nullable=False),
    Column("active", String(1), nullable=False),  # "1" | "0" (replaced or inactive)
)
Index("ix_identity_person_birth_given", identity_person.c.birth_date, identity_person.c.given_key)
Index("ix_identity_person_birth_family", identity_person.c.birth_date, identity_person.c.family_key)
Index("ix_identity_person_name_year", identity_person.c.name_key, identity_person.c.birth_year)
Index("ix_identity_person_ssn", identity_person.c.ssn)

# Likely duplicates found by the matcher, kept until someone merges them or rules them out.
identity_duplicate = Table(
    "identity_duplicate",
    metadata,
    Column("patient_key", String(100), primary_key=True),  # the newer record
    Column("res_id", String(64), primary_key=True),
    Column("other_key", String(100), primary_key=True),
    Column("other_id", String(64), primary_key=True),
    Column("score", Float(precision=53), nullable=False),
    Column("status", String(16), nullable=False),  # open | merged | distinct
    Column("found", BigInteger, nullable=False),
)

# Every $merge, with what it moved, so that it can be undone.
identity_merge = Table(
    "identity_merge",
    metadata,
    Column("patient_key", String(100), primary_key=True),  # the surviving record
    Column("merge_id", String(64), primary_key=True),
    Column("source_id", String(64), nullable=False),
    Column("record", Text, nullable=False),  # JSON: moved resources, numbers, both Patients before
    Column("created", BigInteger, nullable=False),
    Column("undone", BigInteger, nullable=True),
)
