"""POST /fhir/$import-xml130: a GIAMDINHHS document in, an OperationOutcome summary with per-episode issues out."""

from __future__ import annotations

import re
import tempfile

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from healthbook.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from healthbook.fhir import jsonio
from healthbook.fhir.http import fhir_response, negotiate
from healthbook.fhir.router import Services
from healthbook.imports.xml130.issues import operation_outcome
from healthbook.imports.xml130.service import Xml130Importer
from healthbook.routing import RouteTable

router = RouteTable()
XML_TYPES = {"application/xml", "text/xml", "application/octet-stream", ""}
_FILENAME = re.compile(r'filename="?([^";]{1,200})"?')
SPOOL = 8 * 1024 * 1024  # bodies up to this size stay in memory


@router.post("/$import-xml130")
async def import_xml130(request: Request) -> Response:
    """Import one submission synchronously; 200 when episodes were stored, 422 when none could be, 4xx if refused."""
    negotiate(request)
    services: Services = request.app.state.services
    settings = services.settings
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in XML_TYPES:
        raise UnsupportedMediaType(
            f"$import-xml130 takes the GIAMDINHHS XML document as the body (Content-Type application/xml), "
            f"not '{ctype[:60]}'"
        )
    limit = settings.xml130_max_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The XML130 file of {declared} bytes is over the limit of {limit} bytes")
    match = _FILENAME.search(request.headers.get("content-disposition", ""))
    name = match.group(1) if match else "request body"
    with tempfile.SpooledTemporaryFile(max_size=SPOOL) as body:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The XML130 file is over the limit of {limit} bytes")
            body.write(chunk)
        if size == 0:
            raise BadRequest("The request body is empty: send a GIAMDINHHS document")
        importer = Xml130Importer(services.fhir, services.search, settings)
        report = await run_in_threadpool(importer.import_source, request.state.caller, body, name)
    status = 200
    if report.refused:
        status = 413 if any(p.code == "too-costly" for p in report.problems) else 400
    elif report.episodes and report.imported == 0:
        status = 422
    return fhir_response(jsonio.dumps(operation_outcome([report])), status)


__all__ = ["router"]
