"""Tables of the generic FHIR store; every per-patient table is keyed by patient_key (the Citus shard key)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    MetaData,
    String,
    Table,
    Text,
    func,
    literal_column,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    }
)

# Current state of every resource (deleted ones keep a tombstone so that a read answers 410).
resource = Table(
    "resource",
    metadata,
    Column("patient_key", String(100), primary_key=True),
    Column("res_type", String(64), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("version_id", BigInteger, nullable=False),
    Column("last_updated", BigInteger, nullable=False),  # microseconds since the Unix epoch, UTC
    Column("deleted", Boolean, nullable=False),
    Column("content", Text, nullable=True),  # canonical JSON, served as is; NULL when deleted
)
Index("ix_resource_type_updated", resource.c.res_type, resource.c.last_updated)
# Lookups by logical id without the patient (_id, _has targets), and the default order (type, id).
Index("ix_resource_type_id", resource.c.res_type, resource.c.res_id, resource.c.patient_key)

# Every version ever written, including the current one and deletions (content NULL).
resource_version = Table(
    "resource_version",
    metadata,
    Column("patient_key", String(100), primary_key=True),
    Column("res_type", String(64), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("version_id", BigInteger, primary_key=True),
    Column("last_updated", BigInteger, nullable=False),
    Column("method", String(8), nullable=False),  # POST | PUT | PATCH | DELETE
    Column("content", Text, nullable=True),
)
Index("ix_resource_version_updated", resource_version.c.last_updated)
Index("ix_resource_version_type_updated", resource_version.c.res_type, resource_version.c.last_updated)

# Logical id -> patient_key, for interactions that arrive by id only. On Citus this table is
# distributed by res_id in its own colocation group (it is never joined with per-patient tables).
resource_locator = Table(
    "resource_locator",
    metadata,
    Column("res_type", String(64), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("patient_key", String(100), nullable=False),
)


def _index_table(name: str, *columns: Column[object]) -> Table:
    """A search-index table: rows keyed by the owning resource, sharded with it by patient_key."""
    return Table(
        name,
        metadata,
        Column("patient_key", String(100), nullable=False),
        Column("res_type", String(64), nullable=False),
        Column("res_id", String(64), nullable=False),
        Column("param", String(64), nullable=False),
        *columns,
    )


# token: hashed (type, param, code) and (type, param, system, code) keys make equality lookups one index probe;
# the owner columns after the hash give the matches in the default order (patient_key, res_type, res_id)
# without reading the table, and one patient's matches in one seek (compartments, _has). One index serves
# `code` and `system|code`: the (system, code) hash rides at its end, compared in the index (migration 0011:
# a second index on it put 3-4 more random-position B-tree inserts into every resource's write).
idx_token = _index_table(
    "idx_token",
    Column("system", Text, nullable=True),
    Column("code", Text, nullable=True),
    Column("display", Text, nullable=True),
    Column("hash_code", BigInteger, nullable=False),
    Column("hash_sys_code", BigInteger, nullable=False),
    Column("hash_sys", BigInteger, nullable=False),
)
Index(
    "ix_idx_token_code",
    idx_token.c.hash_code,
    idx_token.c.patient_key,
    idx_token.c.res_type,
    idx_token.c.res_id,
    idx_token.c.hash_sys_code,
)
Index("ix_idx_token_sys", idx_token.c.hash_sys)
Index("ix_idx_token_owner", idx_token.c.patient_key, idx_token.c.res_type, idx_token.c.res_id)

# string: value_norm is lower-cased with diacritics removed ("Nguyễn" -> "nguyen"), for prefix search
# (text_pattern_ops on PostgreSQL: LIKE 'x%' uses the index whatever the database collation).
idx_string = _index_table(
    "idx_string",
    Column("value_norm", Text, nullable=False),
    Column("value_exact", Text, nullable=False),
)
Index(
    "ix_idx_string_value",
    idx_string.c.res_type,
    idx_string.c.param,
    idx_string.c.value_norm,
    idx_string.c.res_id,
    idx_string.c.patient_key,
    postgresql_ops={"value_norm": "text_pattern_ops"},
)
Index("ix_idx_string_owner", idx_string.c.patient_key, idx_string.c.res_type, idx_string.c.res_id)

# reference: local targets by type and id; absolute or canonical targets by url.
idx_reference = _index_table(
    "idx_reference",
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(64), nullable=True),
    Column("target_url", Text, nullable=True),
)
Index(
    "ix_idx_reference_target",
    idx_reference.c.target_id,
    idx_reference.c.res_type,
    idx_reference.c.param,
    idx_reference.c.target_type,
    idx_reference.c.patient_key,
    idx_reference.c.res_id,
)
# Most targets are local (target_url NULL): only absolute and canonical ones are indexed.
_ABSOLUTE = idx_reference.c.target_url.isnot(None)
Index("ix_idx_reference_url", idx_reference.c.target_url, postgresql_where=_ABSOLUTE, sqlite_where=_ABSOLUTE)
# References to a Patient held under another patient's key: the few that _has cannot find in the holder's
# own shard (see sql._has_cond).
_FOREIGN_PATIENT = (idx_reference.c.target_type == "Patient") & (
    idx_reference.c.patient_key != idx_reference.c.target_id
)
Index(
    "ix_idx_reference_foreign_patient",
    idx_reference.c.res_type,
    idx_reference.c.param,
    idx_reference.c.patient_key,
    idx_reference.c.res_id,
    idx_reference.c.target_id,
    postgresql_where=_FOREIGN_PATIENT,
    sqlite_where=_FOREIGN_PATIENT,
)
# The owner's targets from the index alone (_has, _include).
Index(
    "ix_idx_reference_owner",
    idx_reference.c.patient_key,
    idx_reference.c.res_type,
    idx_reference.c.res_id,
    idx_reference.c.param,
    idx_reference.c.target_type,
    idx_reference.c.target_id,
)

# date: every value is a range [low, high] in microseconds (a date 2020-01 covers the whole month).
# env_low/env_high, the same on all rows of a resource's parameter, span every end of all its values
# (the envelope): date ranges seek it (GiST on PostgreSQL), and date sorts read it in index order.
idx_date = _index_table(
    "idx_date",
    Column("low", BigInteger, nullable=False),
    Column("high", BigInteger, nullable=False),
    Column("env_low", BigInteger, nullable=False),
    Column("env_high", BigInteger, nullable=False),
)
Index(
    "ix_idx_date_env_low",
    idx_date.c.res_type,
    idx_date.c.param,
    idx_date.c.env_low,
    idx_date.c.patient_key,
    idx_date.c.res_id,
)
Index(
    "ix_idx_date_env_high",
    idx_date.c.res_type,
    idx_date.c.param,
    idx_date.c.env_high,
    idx_date.c.patient_key,
    idx_date.c.res_id,
)
Index(
    "ix_idx_date_env",
    idx_date.c.res_type,
    idx_date.c.param,
    func.int8range(idx_date.c.env_low, idx_date.c.env_high, literal_column("'[]'")),
    idx_date.c.patient_key,
    postgresql_using="gist",
).ddl_if(dialect="postgresql")  # btree_gist for the text columns; INCLUDE made the range key useless
Index("ix_idx_date_owner", idx_date.c.patient_key, idx_date.c.res_type, idx_date.c.res_id)

# number and quantity: [low, high] from the stated precision (1.5 covers 1.45 .. 1.55).
idx_number = _index_table(
    "idx_number",
    Column("low", Float(precision=53), nullable=False),
    Column("high", Float(precision=53), nullable=False),
)
Index("ix_idx_number_range", idx_number.c.res_type, idx_number.c.param, idx_number.c.low)
Index("ix_idx_number_owner", idx_number.c.patient_key, idx_number.c.res_type, idx_number.c.res_id)

idx_quantity = _index_table(
    "idx_quantity",
    Column("system", Text, nullable=True),
    Column("code", Text, nullable=True),
    Column("low", Float(precision=53), nullable=False),
    Column("high", Float(precision=53), nullable=False),
)
Index(
    "ix_idx_quantity_range",
    idx_quantity.c.res_type,
    idx_quantity.c.param,
    idx_quantity.c.code,
    idx_quantity.c.low,
)
Index("ix_idx_quantity_owner", idx_quantity.c.patient_key, idx_quantity.c.res_type, idx_quantity.c.res_id)

idx_uri = _index_table("idx_uri", Column("uri", Text, nullable=False))
Index("ix_idx_uri_value", idx_uri.c.res_type, idx_uri.c.param, idx_uri.c.uri)
Index("ix_idx_uri_owner", idx_uri.c.patient_key, idx_uri.c.res_type, idx_uri.c.res_id)

INDEX_TABLES: dict[str, Table] = {
    "token": idx_token,
    "string": idx_string,
    "reference": idx_reference,
    "date": idx_date,
    "number": idx_number,
    "quantity": idx_quantity,
    "uri": idx_uri,
}

# Small key/value state of maintenance jobs (reindex checkpoints); a reference table on Citus.
maintenance_state = Table(
    "maintenance_state",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

# Asynchronous bulk jobs ($export, $import); a reference table on Citus (few rows, no patient data).
bulk_job = Table(
    "bulk_job",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # export | import
    Column("status", String(16), nullable=False),  # accepted | running | completed | failed | cancelled
    Column("owner", String(200), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
    Column("request", Text, nullable=False),
    Column("progress", Text, nullable=True),
    Column("result", Text, nullable=True),  # manifest JSON when completed, OperationOutcome JSON when failed
)

# composite: hashed token of component 1 with the value of component 2, one row per element.
idx_composite = _index_table(
    "idx_composite",
    Column("c1_hash_code", BigInteger, nullable=False),
    Column("c1_hash_sys_code", BigInteger, nullable=False),
    Column("c2_hash_code", BigInteger, nullable=True),
    Column("c2_hash_sys_code", BigInteger, nullable=True),
    Column("c2_low", Float(precision=53), nullable=True),
    Column("c2_high", Float(precision=53), nullable=True),
    Column("c2_code", Text, nullable=True),
    Column("c2_system", Text, nullable=True),
    Column("c2_dlow", BigInteger, nullable=True),
    Column("c2_dhigh", BigInteger, nullable=True),
    Column("c2_text", Text, nullable=True),
)
Index("ix_idx_composite_c1", idx_composite.c.c1_hash_code, idx_composite.c.c1_hash_sys_code)
Index("ix_idx_composite_owner", idx_composite.c.patient_key, idx_composite.c.res_type, idx_composite.c.res_id)
INDEX_TABLES["composite"] = idx_composite
