"""Batched upserts for importers: resources with their own ids, validated first, written in one transaction.

An importer checks every resource of a unit of work (check), then opens one Upsert for many units: writes
are queued and sent in bulk (COPY on PostgreSQL) when the block ends, versions and search indexes
included, exactly as the REST interactions would store them. Nothing here knows any import format.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.engine import Connection

from healthbook.auth.subject import Caller
from healthbook.fhir import jsonio
from healthbook.fhir.outcomes import Issue
from healthbook.fhir.service import FhirService, check_id, check_type
from healthbook.fhir.store import sql_repository as store
from healthbook.fhir.store.batch import batching, pending
from healthbook.fhir.store.schema import resource_locator

Key = tuple[str, str]  # (resource type, id)


def check(fhir: FhirService, resource: dict[str, Any]) -> tuple[dict[str, Any], list[Issue]]:
    """The resource as it will be stored and its warnings; raises HealthbookError (with issues) if invalid."""
    res_type = resource.get("resourceType")
    res_id = resource.get("id")
    if not isinstance(res_type, str) or not isinstance(res_id, str):
        raise ValueError("an upserted resource needs resourceType and id")
    check_type(res_type)
    check_id(res_id)
    return fhir._checked_body(res_type, resource, res_id)


class Upsert:
    """Writes on one connection of an open batch; see upserting()."""

    def __init__(self, fhir: FhirService, conn: Connection, caller: Caller):
        self.fhir = fhir
        self.conn = conn
        self.caller = caller

    def existing(self, keys: Sequence[Key]) -> set[Key]:
        """Which of these logical ids were ever written (deleted ones included), queued writes counted."""
        queue = pending(self.conn)
        found: set[Key] = {k for k in keys if queue is not None and k in queue.keys}
        loc = resource_locator.c
        rest = sorted(set(keys) - found)
        for start in range(0, len(rest), 500):
            chunk = rest[start : start + 500]
            stmt = select(loc.res_type, loc.res_id).where(tuple_(loc.res_type, loc.res_id).in_(chunk))
            found.update((r[0], r[1]) for r in self.conn.execute(stmt))
        return found

    def live(self, keys: Sequence[Key]) -> set[Key]:
        """Which of these logical ids have a current, not deleted version (queued writes flushed first)."""
        queue = pending(self.conn)
        if queue is not None and any(k in queue.keys for k in keys):
            queue.flush(self.conn)
        return {(r[1], r[2]) for r in store.current_by_key(self.conn, list(keys)) if r[4]}

    def put(self, body: dict[str, Any], *, known: bool) -> str:
        """Store a checked body under its id: 'created', 'updated' or 'unchanged' (no new version).

        known says whether the id was ever written (from existing()): new ids skip the read of a current
        version and go straight to the queue.
        """
        res_id = body["id"]
        if not known:
            self.fhir._store(self.conn, self.caller, body, res_id, None, "PUT")
            return "created"
        result = self.fhir._put(self.conn, self.caller, body, res_id, None, "PUT")
        if not result.changed:
            return "unchanged"
        return "created" if result.status == 201 else "updated"

    def delete(self, res_type: str, res_id: str) -> bool:
        """Delete (a tombstone version); False when it did not exist or was deleted already."""
        return self.fhir._delete(self.conn, self.caller, res_type, res_id) is not None


def current(fhir: FhirService, keys: Sequence[Key]) -> dict[Key, dict[str, Any]]:
    """The live content of these resources as last committed, read outside any write transaction."""
    with fhir.db.read() as conn:
        return {(r[1], r[2]): jsonio.loads(r[4]) for r in store.current_by_key(conn, list(keys)) if r[4]}


@contextmanager
def upserting(fhir: FhirService, caller: Caller) -> Iterator[Upsert]:
    """One write transaction with queued (bulk) writes; everything in the block commits or nothing does."""
    fhir.policy.check(caller, "import", None)
    with fhir.db.write() as conn, batching(conn, copy=True):
        yield Upsert(fhir, conn, caller)
