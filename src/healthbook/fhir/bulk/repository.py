"""SQL of the bulk job table."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from healthbook.fhir.store.schema import bulk_job


@dataclass(frozen=True, slots=True)
class Job:
    """One asynchronous bulk job as stored."""

    id: str
    kind: str
    status: str
    owner: str
    created: int
    updated: int
    request: str
    progress: str | None
    result: str | None


def insert_job(conn: Connection, job: Job) -> None:
    """Record a new job."""
    conn.execute(insert(bulk_job).values(**_fields(job)))


def _fields(job: Job) -> dict[str, object]:
    return {name: getattr(job, name) for name in Job.__slots__}


def get_job(conn: Connection, job_id: str) -> Job | None:
    """One job by id."""
    row = conn.execute(select(bulk_job).where(bulk_job.c.id == job_id)).first()
    return Job(*row) if row is not None else None


def update_job(conn: Connection, job_id: str, **values: object) -> None:
    """Change status, progress or result."""
    conn.execute(update(bulk_job).where(bulk_job.c.id == job_id).values(**values))


def update_unless_cancelled(conn: Connection, job_id: str, **values: object) -> bool:
    """Change a job that was not cancelled meanwhile; False if it was (or is gone)."""
    stmt = update(bulk_job).where(bulk_job.c.id == job_id, bulk_job.c.status != "cancelled").values(**values)
    return conn.execute(stmt).rowcount > 0
