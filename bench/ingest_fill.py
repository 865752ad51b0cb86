"""Fast fill of the scaling database: SQL copies of rows the bulk import wrote, with fresh uuids.

Every uuid of a Synthea clone starts with the clone's prefix, so one imported batch is copied
inside PostgreSQL by replacing that prefix in ids, patient keys, references, token codes and the
stored JSON (token hashes of uuid-valued identifiers are varied per copy). The copies have the
shape, sizes and key distribution of imported resources; they exist to give the tables volume.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import psycopg
from sqlalchemy import Table

from healthbook.fhir.store.schema import INDEX_TABLES, resource, resource_locator, resource_version

FIRST_CLONE = 0x20000000
CLONES_PER_TRANSACTION = 5
_PREFIX = "lpad(to_hex(k), 8, '0')"


def _expr(table: str, col: str, src: str) -> str:
    """The SELECT expression of one column of a copy (every uuid of the source starts with `src`)."""
    swap = "replace(s.{col}, '" + src + "-', " + _PREFIX + " || '-')"
    if col in ("res_id", "patient_key", "content") or (table, col) in _SWAPPED:
        return swap.format(col=col)
    if table == "idx_token" and col in ("hash_code", "hash_sys_code"):
        return (
            f"CASE WHEN strpos(s.code, '{src}-') > 0 THEN s.{col} # (k::bigint * 2654435761) ELSE s.{col} END"
        )
    return f"s.{col}"


_SWAPPED = {("idx_reference", "target_id"), ("idx_reference", "target_url"), ("idx_token", "code")}


def _tables() -> list[Table]:
    return [resource_locator, resource_version, resource, *INDEX_TABLES.values()]


def sql_clone(
    url: str, source_prefix: str, target: int, *, first_clone: int, on_progress: Callable[[str], None]
) -> int:
    """Copy the resources whose ids start with source_prefix until `target` are stored; returns the copies made.

    Copy n gets the uuid prefix of first_clone + n: a later call must start after the copies of earlier ones.
    """
    with psycopg.connect(url) as conn:
        have = _count(conn, "resource")
        for table in _tables():
            conn.execute(
                f"CREATE TEMP TABLE src_{table.name} AS SELECT * FROM {table.name} WHERE res_id LIKE %s",
                (source_prefix + "%",),
            )
        per_copy = _count(conn, "src_resource")
        conn.commit()
        if per_copy == 0:
            raise RuntimeError(f"no resources with ids starting {source_prefix} to copy")
        copies = math.ceil(max(0, target - have) / per_copy)
        done = 0
        t0 = time.perf_counter()
        while done < copies:
            n = min(CLONES_PER_TRANSACTION, copies - done)
            first = first_clone + done
            for table in _tables():
                cols = [c.name for c in table.columns]
                select = ", ".join(_expr(table.name, c, source_prefix) for c in cols)
                conn.execute(
                    f"INSERT INTO {table.name} ({', '.join(cols)}) SELECT {select} "
                    f"FROM src_{table.name} s CROSS JOIN generate_series(%s::int, %s::int) AS k",
                    (first, first + n - 1),
                )
            conn.commit()
            done += n
            stored = have + done * per_copy
            rate = done * per_copy / (time.perf_counter() - t0)
            on_progress(f"  fill: {stored:,} resources stored ({rate:,.0f}/s)")
        for table in _tables():
            conn.execute(f"DROP TABLE src_{table.name}")
        conn.commit()
    return copies


def _count(conn: psycopg.Connection[tuple[object, ...]], table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(str(row[0])) if row else 0


def analyze(url: str) -> None:
    """Fresh planner statistics after a fill."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
