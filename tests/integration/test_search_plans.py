"""Every form of token search seeks a hash in an index on PostgreSQL, never reads a whole index table.

Each scan of idx_token or idx_composite in the plan must carry an index condition on a hash column: a
plan without one means a search form lost its index (as `system|code` would have, had migration 0011
dropped the (system, code) index without making it seek the code's hash). The tables get 60,000 rows of
2,000 hashes and fresh statistics, so that the planner chooses as it would on data; in a database of
their own (ANALYZE's row counts outlive a rollback, and would mislead other tests' plans).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql as pgsql
from sqlalchemy import create_engine
from sqlalchemy.dialects import postgresql

from healthbook.db.dialect import normalise_url
from healthbook.fhir.search import sql
from healthbook.fhir.search.query import parse
from healthbook.testing.postgres import TempPostgres

from ..conftest import migrated_database

pytestmark = pytest.mark.postgres

FORMS = [
    ("Observation", "code", "http://loinc.org|8480-6"),
    ("Observation", "code", "8480-6"),
    ("Observation", "code", "|8480-6"),
    ("Observation", "code", "http://loinc.org|"),
    ("Observation", "code", "http://loinc.org|8480-6,http://snomed.info/sct|271649006"),
    ("Patient", "identifier", "urn:oid:2.16.840.1.113883.4.1|444222222"),
    ("Patient", "identifier:of-type", "http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345"),
    ("Observation", "code-value-quantity", "http://loinc.org|8480-6$gt130"),
    ("Observation", "code-value-quantity", "8480-6$gt130"),
]


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _seeks_a_hash(node: dict[str, Any], leading: dict[str, str]) -> bool:
    """An equality on the index's first column, which is a hash: a seek, not a read of the whole index."""
    if node["Node Type"] in ("Bitmap Heap Scan", "BitmapOr", "BitmapAnd"):
        return all(_seeks_a_hash(child, leading) for child in node["Plans"])
    first = leading.get(node.get("Index Name", ""), "")
    return "hash" in first and re.search(rf"(?<!\w){first} = ", node.get("Index Cond", "")) is not None


_LEADING = (
    "SELECT c.relname, a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
    " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
)


_VOLUME = [
    "INSERT INTO idx_token (patient_key, res_type, res_id, param, system, code, hash_code, hash_sys_code,"
    " hash_sys) SELECT 'p' || (i %% 5000), (ARRAY['Observation', 'Patient'])[i %% 2 + 1], 'r' || i,"
    " (ARRAY['code', 'identifier', 'identifier:of-type'])[i %% 3 + 1], 's', 'c', (i %% 2000) * 7919,"
    " (i %% 2000) * 104729 + 3, (i %% 50) * 31 FROM generate_series(1, 60000) AS i",
    "INSERT INTO idx_composite (patient_key, res_type, res_id, param, c1_hash_code, c1_hash_sys_code, c2_low,"
    " c2_high) SELECT 'p' || (i %% 5000), 'Observation', 'r' || i, 'code-value-quantity', (i %% 2000) * 7919,"
    " (i %% 2000) * 104729 + 3, i %% 200, i %% 200 FROM generate_series(1, 60000) AS i",
    "ANALYZE idx_token",
    "ANALYZE idx_composite",
]


@pytest.fixture(scope="module")
def plans_url(pg_server: TempPostgres) -> Iterator[str]:
    url = migrated_database(pg_server, "hb_plans")
    engine = create_engine(normalise_url(url))
    with engine.begin() as conn:
        for statement in _VOLUME:
            conn.exec_driver_sql(statement)
    engine.dispose()
    yield url
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP DATABASE {}").format(pgsql.Identifier(url.rsplit("/", 1)[1])))


@pytest.mark.parametrize(("rtype", "name", "value"), FORMS)
def test_token_forms_use_an_index(plans_url: str, rtype: str, name: str, value: str) -> None:
    query = parse((rtype,), [(name, value)], strict=False)
    engine = create_engine(normalise_url(plans_url))
    try:
        with engine.connect() as conn:
            leading = {str(index): str(column) for index, column in conn.exec_driver_sql(_LEADING)}
            for stmt in (sql.count_query(query), sql.page_query(query, offset=0, limit=51)):
                text = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
                raw = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + text.replace("%", "%%")).scalar_one()
                plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
                scans = [n for n in _nodes(plan) if n.get("Relation Name") in ("idx_token", "idx_composite")]
                assert scans, json.dumps(plan)
                for scan in scans:
                    assert _seeks_a_hash(scan, leading), json.dumps(scan, indent=1)
    finally:
        engine.dispose()
