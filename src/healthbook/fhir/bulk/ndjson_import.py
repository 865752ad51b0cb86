"""Bulk NDJSON import: validated, fully indexed, committed in chunks, idempotent on re-run.

Resources keep their ids (update-as-create), so loading the same files again changes nothing;
a line without an id gets one derived from its content, which is just as stable. Invalid lines
go to an error stream of OperationOutcomes naming file and line, and the import goes on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from healthbook.auth.subject import Caller
from healthbook.db.dialect import keys_in
from healthbook.errors import HealthbookError
from healthbook.fhir.bulk.prepare import Line, Prepared, Preparer
from healthbook.fhir.outcomes import Issue, operation_outcome
from healthbook.fhir.service import FhirService
from healthbook.fhir.store.batch import batching
from healthbook.fhir.store.schema import resource_locator

__all__ = ["CHUNK", "ImportStats", "Line", "import_lines", "lines_of"]

CHUNK = 1000


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


ErrorSink = Callable[[dict[str, Any]], None]


def lines_of(source: str, stream: Iterable[bytes]) -> Iterator[Line]:
    """Number the non-blank lines of a byte stream."""
    for number, raw in enumerate(stream, start=1):
        data = raw.strip()
        if data:
            yield Line(source, number, data)


def _error(source: str, number: int, issues: list[Issue], sink: ErrorSink) -> None:
    located = [Issue(i.severity, i.code, f"{source}:{number}: {i.diagnostics}", i.expression) for i in issues]
    sink(operation_outcome(located))


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
    chunk: list[Prepared],
    stats: ImportStats,
    sink: ErrorSink,
) -> None:
    """One transaction: new resources are queued (COPY on PostgreSQL), known ones updated."""
    with fhir.db.write() as conn, batching(conn, copy=True) as queue:
        known = _existing(
            conn, sorted({(d["resourceType"], d["id"]) for p in chunk if (d := p.doc) is not None})
        )
        for item in chunk:
            stats.lines += 1
            doc, rows = item.doc, item.rows
            if doc is None or rows is None:
                _error(item.source, item.number, item.issues, sink)
                stats.errors += 1
                continue
            key = (doc["resourceType"], doc["id"])
            queue.ready_rows[key] = (item.key, rows)
            try:
                # Pre-write rules (one health book per personal ID number) refuse a line before any
                # of it is written, so the rest of the chunk goes on.
                if key in known:
                    result = fhir._put(conn, caller, doc, key[1], None, "PUT")
                    if not result.changed:
                        stats.unchanged += 1
                    elif result.status == 201:
                        stats.created += 1
                    else:
                        stats.updated += 1
                else:
                    fhir._store(conn, caller, doc, key[1], None, "PUT")
                    known.add(key)
                    stats.created += 1
            except HealthbookError as exc:
                _error(item.source, item.number, exc.issues, sink)
                stats.errors += 1
                continue
            finally:
                queue.ready_rows.pop(key, None)  # unused when the write was refused or changed nothing
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
    workers: int = 0,
) -> ImportStats:
    """Import NDJSON lines in committed chunks, prepared ahead by `workers` processes (-1: one per CPU)."""
    fhir.policy.check(caller, "import", None)
    stats = ImportStats()
    preparer = Preparer(fhir.body_checks, workers)
    waiting: deque[Future[list[Prepared]]] = deque()

    def write(chunk: list[Prepared]) -> None:
        for attempt in range(2):
            snapshot = ImportStats(**{**stats.__dict__, "by_type": dict(stats.by_type)})
            found: list[dict[str, Any]] = []  # reported once the chunk is committed, not per attempt
            try:
                _write_chunk(fhir, caller, chunk, stats, found.append)
                break
            except IntegrityError:
                # A concurrent writer created one of these ids; the retry takes it as an update.
                stats.__dict__.update(snapshot.__dict__)
                if attempt == 1:
                    raise
        for outcome in found:
            errors(outcome)
        if on_progress is not None:
            on_progress(stats)

    def write_ready(keep: int) -> bool:
        """Write prepared chunks until `keep` remain in preparation; False once cancelled."""
        while len(waiting) > keep:
            write(waiting.popleft().result())
            if cancelled is not None and cancelled():
                return False
        return True

    try:
        pending: list[Line] = []
        for line in lines:
            pending.append(line)
            if len(pending) >= chunk_size:
                waiting.append(preparer.submit(pending))
                pending = []
                if not write_ready(preparer.ahead):
                    return stats
        if pending:
            waiting.append(preparer.submit(pending))
        write_ready(0)
    finally:
        preparer.close()
    return stats
