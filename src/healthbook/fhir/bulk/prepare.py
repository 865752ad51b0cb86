"""The database-free part of a bulk load (parse, validate, extract index rows), ahead of the writer.

That part is about three quarters of a load's CPU. Once a load proves bigger than one chunk, it runs in
a pool of worker processes while the importing process writes the previous chunk, so the Python work,
the writing and PostgreSQL use the cores at the same time. Chunks come back in order, and everything
that reads the database (identity and access rules, the writes) stays in the one writing process: a
load stores exactly what it would store without workers.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import multiprocessing.connection
import os
import pickle
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from healthbook.errors import HealthbookError
from healthbook.fhir import compartment, jsonio
from healthbook.fhir.outcomes import Issue
from healthbook.fhir.search.extract import Row, extract, owned
from healthbook.fhir.service import BodyCheck, check_id, check_type, checked_body

MAX_LINE_BYTES = 64 * 1024 * 1024
MAX_WORKERS = 4
_NS = uuid.UUID("6f1c7a52-9d0e-4d8e-9a53-0d8c1f1f6b1e")


@dataclass(frozen=True, slots=True)
class Line:
    """One NDJSON line and where it came from."""

    source: str
    number: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Prepared:
    """A line made ready to write: the checked resource and its index rows, or why it is refused."""

    source: str
    number: int
    doc: dict[str, Any] | None
    key: str  # the patient key the write will give it
    rows: dict[str, list[Row]] | None  # its index rows by table, owner columns included
    issues: list[Issue]


def parse_line(line: Line) -> dict[str, Any]:
    """The resource of a line, with its id (one derived from the content when the line has none)."""
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


def prepare(line: Line, checks: Sequence[BodyCheck]) -> Prepared:
    """Parse, validate and index one line (no database: runs anywhere)."""
    try:
        doc = parse_line(line)
        body, _ = checked_body(doc["resourceType"], doc, doc["id"], checks)
    except HealthbookError as exc:
        return Prepared(line.source, line.number, None, "", None, exc.issues)
    # The stored version adds meta.versionId and meta.lastUpdated, which no extracted parameter reads
    # (_lastUpdated is a column of its own), so these rows are the ones the index hook would make.
    key = compartment.patient_key(body)
    rows = owned(extract(body), key, body["resourceType"], body["id"])
    return Prepared(line.source, line.number, body, key, rows, [])


_checks: Sequence[BodyCheck] = ()


def _start_worker(checks: Sequence[BodyCheck]) -> None:
    global _checks
    _checks = checks
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    """End this worker when the importing process ends, however it ends.

    A worker waits for work on a queue whose writing end it holds itself, so after a kill -9 of the
    importer it would wait for ever (with its memory); the parent's sentinel becomes ready when it dies.
    """
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _prepare_chunk(lines: list[Line]) -> list[Prepared]:
    return [prepare(line, _checks) for line in lines]


def default_workers() -> int:
    """One worker per CPU this process may use, up to MAX_WORKERS; none on a single core."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cpus < 2 else min(cpus, MAX_WORKERS)


# One pool per process at a time: concurrent $import jobs would otherwise start a pool each (up to
# MAX_WORKERS processes of ~100 MB apiece) on the same cores; a job that finds it taken works alone.
_POOL_SLOT = threading.Lock()


def _picklable(checks: Sequence[BodyCheck]) -> bool:
    try:
        pickle.dumps(tuple(checks))
    except (pickle.PicklingError, TypeError, AttributeError):
        return False
    return True


class Preparer:
    """Prepares chunks in submission order: here for the first chunk, then in worker processes.

    Worker processes are started with `spawn`: a script that imports with workers needs the usual
    `if __name__ == "__main__":` guard, or each worker runs its top level again.
    """

    def __init__(self, checks: Sequence[BodyCheck], workers: int):
        """`workers` processes (-1: default_workers(); 0: everything in this process)."""
        self.checks = tuple(checks)
        # Body checks that are not plain functions (a bound method holding a database) cannot travel.
        wanted = default_workers() if workers < 0 else min(workers, MAX_WORKERS)
        self.workers = wanted if wanted and _picklable(self.checks) else 0
        self._pool: ProcessPoolExecutor | None = None
        self._slot = False  # holds _POOL_SLOT
        self._submitted = 0

    @property
    def ahead(self) -> int:
        """How many chunks may be in preparation while one is written."""
        return self.workers

    def submit(self, lines: list[Line]) -> Future[list[Prepared]]:
        """Start preparing a chunk; its result keeps the order of the lines."""
        self._submitted += 1
        if self._pool is None and self.workers and self._submitted > 1:
            self._slot = _POOL_SLOT.acquire(blocking=False)
            if not self._slot:
                self.workers = 0  # another import of this process has the pool
            else:
                # spawn, not fork: the importing process may hold database connections and threads.
                self._pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker,
                    initargs=(self.checks,),
                )
        if self._pool is not None:
            return self._pool.submit(_prepare_chunk, lines)
        done: Future[list[Prepared]] = Future()
        done.set_result([prepare(line, self.checks) for line in lines])
        return done

    def close(self) -> None:
        """Stop the workers; chunks not yet prepared are dropped."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._slot:
            _POOL_SLOT.release()
            self._slot = False
