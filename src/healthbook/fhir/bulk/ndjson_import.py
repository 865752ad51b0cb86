"""Bulk NDJSON import: validated, fully indexed, committed in chunks, idempotent on re-run.

Resources keep their ids (update-as-create), so loading the same files again changes nothing;
a line without an id gets one derived from its content, which is just as stable. Invalid lines
go to an error stream of OperationOutcomes naming file and line, and the import goes on.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from healthbook.auth.subject import Caller
from healthbook.db.dialect import keys_in
from healthbook.errors import HealthbookError
from healthbook.fhir import jsonio
from healthbook.fhir.outcomes import Issue, operation_outcome
from healthbook.fhir.service import FhirService, check_id, check_type
from healthbook.fhir.store.batch import batching
from healthbook.fhir.store.schema import resource_locator

CHUNK = 1000
MAX_LINE_BYTES = 64 * 1024 * 1024
_NS = uuid.UUID("6f1c7a52-9d0e-4d8e-9a53-0d8c1f1f6b1e")


@dataclass
class ImportStats:
    """Counts of one import run."""

    lines: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """For manifests and the CLI summary."""
        return {
            "lines": self.lines,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": self.errors,
            "byType": dict(sorted(self.by_type.items())),
        }


@dataclass(frozen=True, slots=True)
class Line:
    """One NDJSON line and where it came from."""

    source: str
    number: int
    data: bytes


ErrorSink = Callable[[dict[str, Any]], None]


def lines_of(source: str, stream: Iterable[bytes]) -> Iterator[Line]:
    """Number the non-blank lines of a byte stream."""
    for number, raw in enumerate(stream, start=1):
        data = raw.strip()
        if data:
            yield Line(source, number, data)


def _error(line: Line, issues: list[Issue], sink: ErrorSink) -> None:
    located = [
        Issue(i.severity, i.code, f"{line.source}:{line.number}: {i.diagnostics}", i.expression)
        for i in issues
    ]
    sink(operation_outcome(located))


def _parse(line: Line) -> dict[str, Any]:
    if len(line.data) > MAX_LINE_BYTES:
        raise HealthbookError(f"line is longer than {MAX_LINE_BYTES} bytes")
    doc = jsonio.loads(line.data)
    if not isinstance(doc, dict):
        raise HealthbookError("line is not a JSON object")
    rtype = doc.get("resourceType")
    if not isinstance(rtype, str):
        raise HealthbookError("line has no resourceType", expression="resourceType")
    check_type(rtype)
    rid = doc.get("id")
    if rid is None:
        digest = hashlib.sha256(line.data).hexdigest()
        doc["id"] = str(uuid.uuid5(_NS, digest))
    elif not isinstance(rid, str):
        raise HealthbookError("id must be a string", expression=f"{rtype}.id")
    else:
        check_id(rid)
    return doc


def _existing(conn: Connection, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    loc = resource_locator.c
    found: set[tuple[str, str]] = set()
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        stmt = select(loc.res_type, loc.res_id).where(keys_in(conn, [loc.res_type, loc.res_id], chunk))
        found.update((r[0], r[1]) for r in conn.execute(stmt))
    return found


def _write_chunk(
    fhir: FhirService,
    caller: Caller,
    docs: list[tuple[Line, dict[str, Any]]],
    stats: ImportStats,
    sink: ErrorSink,
) -> None:
    """One transaction: new resources are queued (COPY on PostgreSQL), known ones updated."""
    with fhir.db.write() as conn, batching(conn, copy=True):
        known = _existing(conn, sorted({(d["resourceType"], d["id"]) for _, d in docs}))
        for line, doc in docs:
            key = (doc["resourceType"], doc["id"])
            try:
                body, _ = fhir._checked_body(key[0], doc, key[1])
            except HealthbookError as exc:
                _error(line, exc.issues, sink)
                stats.errors += 1
                continue
            try:
                # Pre-write rules (one health book per personal ID number) refuse a line before any
                # of it is written, so the rest of the chunk goes on.
                if key in known:
                    result = fhir._put(conn, caller, body, key[1], None, "PUT")
                    if not result.changed:
                        stats.unchanged += 1
                    elif result.status == 201:
                        stats.created += 1
                    else:
                        stats.updated += 1
                else:
                    fhir._store(conn, caller, body, key[1], None, "PUT")
                    known.add(key)
                    stats.created += 1
            except HealthbookError as exc:
                _error(line, exc.issues, sink)
                stats.errors += 1
                continue
            stats.by_type[key[0]] = stats.by_type.get(key[0], 0) + 1


def import_lines(
    fhir: FhirService,
    caller: Caller,
    lines: Iterable[Line],
    *,
    errors: ErrorSink,
    on_progress: Callable[[ImportStats], None] | None = None,
    chunk_size: int = CHUNK,
    cancelled: Callable[[], bool] | None = None,
) -> ImportStats:
    """Import NDJSON lines in committed chunks; returns the counts."""
    fhir.policy.check(caller, "import", None)
    stats = ImportStats()
    pending: list[tuple[Line, dict[str, Any]]] = []

    def flush() -> None:
        if not pending:
            return
        for attempt in range(2):
            snapshot = ImportStats(**{**stats.__dict__, "by_type": dict(stats.by_type)})
            try:
                _write_chunk(fhir, caller, pending, stats, errors)
                break
            except IntegrityError:
                # A concurrent writer created one of these ids; the retry takes it as an update.
                stats.__dict__.update(snapshot.__dict__)
                if attempt == 1:
                    raise
        pending.clear()
        if on_progress is not None:
            on_progress(stats)

    for line in lines:
        stats.lines += 1
        try:
            pending.append((line, _parse(line)))
        except HealthbookError as exc:
            _error(line, exc.issues, errors)
            stats.errors += 1
        if len(pending) >= chunk_size:
            flush()
            if cancelled is not None and cancelled():
                break
    flush()
    return stats
