"""Asynchronous bulk jobs ($export, $import): kick-off, status, cancel, files (Bulk Data IG v2)."""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from healthbook.auth.subject import Caller
from healthbook.config import Settings
from healthbook.errors import Forbidden, NotFound
from healthbook.fhir.bulk import repository as jobs
from healthbook.fhir.bulk.export import ExportRequest, export_ndjson, group_members
from healthbook.fhir.bulk.ndjson_import import import_lines, lines_of
from healthbook.fhir.bulk.repository import Job
from healthbook.fhir.outcomes import Issue, operation_outcome
from healthbook.fhir.service import FhirService
from healthbook.fhir.timeutil import now_us, to_instant

log = logging.getLogger(__name__)
FINAL = ("completed", "failed", "cancelled")


def _write_line(handle: BinaryIO, doc: dict[str, Any]) -> None:
    handle.write(orjson.dumps(doc) + b"\n")


class BulkService:
    """Runs bulk jobs on background threads and keeps their state in the database."""

    def __init__(self, fhir: FhirService, settings: Settings):
        self.fhir = fhir
        self.settings = settings
        self.root = Path(settings.bulk_dir)

    def job_dir(self, job_id: str) -> Path:
        """Where a job's files live."""
        return self.root / job_id

    def _new(self, caller: Caller, kind: str, request: str) -> Job:
        now = now_us()
        job = Job(str(uuid.uuid4()), kind, "accepted", caller.subject, now, now, request, None, None)
        with self.fhir.db.write() as conn:
            jobs.insert_job(conn, job)
        return job

    def _set(self, job_id: str, **values: Any) -> None:
        with self.fhir.db.write() as conn:
            jobs.update_job(conn, job_id, updated=now_us(), **values)

    def _cancelled(self, job_id: str) -> bool:
        with self.fhir.db.read() as conn:
            job = jobs.get_job(conn, job_id)
        return job is None or job.status == "cancelled"

    def _set_unless_cancelled(self, job_id: str, **values: Any) -> bool:
        """A status change that a cancellation, even a concurrent one, always wins over."""
        with self.fhir.db.write() as conn:
            return jobs.update_unless_cancelled(conn, job_id, updated=now_us(), **values)

    def _run(self, job: Job, work: Callable[[], dict[str, Any]]) -> None:
        def target() -> None:
            if not self._set_unless_cancelled(job.id, status="running"):
                return  # cancelled before it started
            try:
                manifest = work()
                self._set_unless_cancelled(job.id, status="completed", result=orjson.dumps(manifest).decode())
            except Exception as exc:  # a failed job reports, the server goes on
                if self._cancelled(job.id):
                    return  # its files were deleted under it
                log.error("bulk job %s failed: %s", job.id, type(exc).__name__, exc_info=exc)
                outcome = operation_outcome(
                    [Issue("error", "exception", f"The {job.kind} failed: {type(exc).__name__}")]
                )
                self._set_unless_cancelled(job.id, status="failed", result=orjson.dumps(outcome).decode())

        threading.Thread(target=target, name=f"bulk-{job.id}", daemon=True).start()

    # ---- kick-off ----------------------------------------------------------------------------

    def start_export(self, caller: Caller, req: ExportRequest, request_url: str, file_base: str) -> Job:
        """Kick off an export; its files are served under file_base/{job}/{name}."""
        for rtype in req.types:
            self.fhir.policy.check(caller, "export", rtype)
        if req.level == "group" and req.group_id is not None:
            group_members(self.fhir, req.group_id)  # an unknown Group is a 404 of the kick-off
        job = self._new(caller, "export", request_url)
        out = self.job_dir(job.id)
        transaction_time = to_instant(now_us())

        def work() -> dict[str, Any]:
            files = export_ndjson(
                self.fhir,
                caller,
                req,
                out,
                on_progress=lambda t, n: self._set(job.id, progress=f"{t}: {n} resources"),
                cancelled=lambda: self._cancelled(job.id),
            )
            return {
                "transactionTime": transaction_time,
                "request": request_url,
                "requiresAccessToken": False,
                "output": [
                    {"type": f.type, "url": f"{file_base}/{job.id}/{f.path.name}", "count": f.count}
                    for f in files
                    if f.count
                ],
                "error": [],
            }

        self._run(job, work)
        return job

    def start_import(self, caller: Caller, ndjson: Path, request_url: str, file_base: str) -> Job:
        """Kick off an import of an NDJSON file already received (moved into the job's folder)."""
        self.fhir.policy.check(caller, "import", None)
        job = self._new(caller, "import", request_url)
        folder = self.job_dir(job.id)
        folder.mkdir(parents=True, exist_ok=True)
        source = folder / "input.ndjson"
        shutil.move(str(ndjson), source)

        def work() -> dict[str, Any]:
            errors_path = folder / "errors.ndjson"
            with source.open("rb") as handle, errors_path.open("wb") as errors:
                stats = import_lines(
                    self.fhir,
                    caller,
                    lines_of("input.ndjson", handle),
                    errors=lambda outcome: _write_line(errors, outcome),
                    on_progress=lambda s: self._set(job.id, progress=f"{s.lines} lines imported"),
                    cancelled=lambda: self._cancelled(job.id),
                    workers=self.settings.import_workers,
                )
            source.unlink(missing_ok=True)
            error_files = (
                [
                    {
                        "type": "OperationOutcome",
                        "url": f"{file_base}/{job.id}/errors.ndjson",
                        "count": stats.errors,
                    }
                ]
                if stats.errors
                else []
            )
            return {
                "transactionTime": to_instant(now_us()),
                "request": request_url,
                "requiresAccessToken": False,
                "output": [{"type": t, "count": n} for t, n in sorted(stats.by_type.items())],
                "error": error_files,
                "extension": {"summary": stats.as_dict()},
            }

        self._run(job, work)
        return job

    # ---- status, cancel, files ---------------------------------------------------------------

    def status(self, caller: Caller, job_id: str) -> Job:
        """The job, if the caller owns it."""
        with self.fhir.db.read() as conn:
            job = jobs.get_job(conn, job_id)
        if job is None:
            raise NotFound(f"No bulk job {job_id[:64]}")
        if job.owner != caller.subject and "system" not in caller.roles:
            raise Forbidden("This bulk job belongs to another client")
        return job

    def cancel(self, caller: Caller, job_id: str) -> None:
        """Cancel (or forget a finished job) and delete its files."""
        job = self.status(caller, job_id)
        if job.status == "cancelled":
            raise NotFound(f"Bulk job {job_id[:64]} was already cancelled")
        self._set(job.id, status="cancelled")
        shutil.rmtree(self.job_dir(job.id), ignore_errors=True)

    def file(self, caller: Caller, job_id: str, name: str) -> Path:
        """The path of one output file of a completed job."""
        job = self.status(caller, job_id)
        path = self.job_dir(job.id) / name
        if job.status != "completed" or "/" in name or name.startswith(".") or not path.is_file():
            raise NotFound(f"No file {name[:64]} in bulk job {job_id[:64]}")
        return path
