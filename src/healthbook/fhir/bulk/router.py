"""Bulk Data routes: $export kick-off at system, Patient and Group level, status, files, $import."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from healthbook.errors import BadRequest, HealthbookError, NotFound, PayloadTooLarge, UnsupportedMediaType
from healthbook.fhir.bulk.export import parse_request
from healthbook.fhir.bulk.repository import Job
from healthbook.fhir.bulk.service import BulkService
from healthbook.fhir.http import base_url, outcome_response
from healthbook.fhir.outcomes import Issue
from healthbook.routing import RouteTable

router = RouteTable()
NDJSON_FORMATS = {"application/fhir+ndjson", "application/ndjson", "ndjson", "application/x-ndjson"}


def _bulk(request: Request) -> BulkService:
    bulk: BulkService = request.app.state.services.bulk
    return bulk


def _base(request: Request) -> str:
    return base_url(request, request.app.state.services.settings.public_base_url)


async def _kick_off(request: Request, level: str, group_id: str | None) -> Response:
    params = request.query_params
    fmt = params.get("_outputFormat")
    if fmt is not None and fmt not in NDJSON_FORMATS:
        raise BadRequest(
            f"_outputFormat '{fmt[:60]}' is not supported: use application/fhir+ndjson",
            expression="_outputFormat",
        )
    for unsupported in ("_elements", "patient", "includeAssociatedData"):
        if unsupported in params:
            raise BadRequest(f"Export parameter {unsupported} is not supported", expression=unsupported)
    req = parse_request(
        level, group_id, params.get("_type"), params.get("_since"), params.getlist("_typeFilter")
    )
    base = _base(request)
    bulk = _bulk(request)
    job = await run_in_threadpool(
        bulk.start_export, request.state.caller, req, str(request.url), f"{base}/$export-file"
    )
    return Response(status_code=202, headers={"Content-Location": f"{base}/$export-status/{job.id}"})


@router.get("/$export")
async def export_system(request: Request) -> Response:
    """System-level export."""
    return await _kick_off(request, "system", None)


@router.get("/Patient/$export")
async def export_patients(request: Request) -> Response:
    """All patients' compartments."""
    return await _kick_off(request, "patient", None)


@router.get("/Group/{group_id}/$export")
async def export_group(request: Request, group_id: str) -> Response:
    """The compartments of a Group's member patients."""
    return await _kick_off(request, "group", group_id)


def _status_response(job: Job) -> Response:
    if job.status in ("accepted", "running"):
        headers = {"X-Progress": (job.progress or job.status)[:200], "Retry-After": "2"}
        return Response(status_code=202, headers=headers)
    if job.status == "completed":
        return Response(content=job.result or "{}", media_type="application/json", headers={"Expires": "0"})
    if job.status == "failed":
        return Response(content=job.result or "{}", status_code=500, media_type="application/fhir+json")
    raise NotFound(f"Bulk job {job.id} was cancelled")


@router.get("/$export-status/{job_id}")
@router.get("/$import-status/{job_id}")
async def job_status(request: Request, job_id: str) -> Response:
    """Poll a job: 202 with X-Progress while it runs, the manifest when done."""
    job = await run_in_threadpool(_bulk(request).status, request.state.caller, job_id)
    return _status_response(job)


@router.delete("/$export-status/{job_id}")
@router.delete("/$import-status/{job_id}")
async def job_cancel(request: Request, job_id: str) -> Response:
    """Cancel a job and delete its files."""
    await run_in_threadpool(_bulk(request).cancel, request.state.caller, job_id)
    return Response(status_code=202)


@router.get("/$export-file/{job_id}/{name}")
async def job_file(request: Request, job_id: str, name: str) -> Response:
    """One NDJSON file of a completed job."""
    path = await run_in_threadpool(_bulk(request).file, request.state.caller, job_id, name)
    return FileResponse(path, media_type="application/fhir+ndjson")


@router.post("/$import")
async def import_ndjson(request: Request) -> Response:
    """Asynchronous import of an NDJSON body (Content-Type application/fhir+ndjson)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in NDJSON_FORMATS:
        raise UnsupportedMediaType("$import takes an NDJSON body (Content-Type: application/fhir+ndjson)")
    bulk = _bulk(request)
    limit = request.app.state.services.settings.max_import_bytes
    bulk.root.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=bulk.root, prefix="upload-", suffix=".ndjson", delete=False)
    path = Path(handle.name)
    try:
        size = 0
        with handle:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"The NDJSON body is over the limit of {limit} bytes")
                handle.write(chunk)
        if size == 0:
            raise BadRequest("The NDJSON body is empty")
        base = _base(request)
        job = await run_in_threadpool(
            bulk.start_import, request.state.caller, path, str(request.url), f"{base}/$export-file"
        )
    except HealthbookError:
        path.unlink(missing_ok=True)
        raise
    return outcome_response(
        [Issue("information", "informational", f"Import job {job.id} accepted")],
        202,
        {"Content-Location": f"{base}/$import-status/{job.id}"},
    )


__all__ = ["router"]
