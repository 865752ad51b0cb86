"""Report routes: each calls its report module and renders FHIR; no SQL here."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from healthbook.errors import BadRequest
from healthbook.fhir import jsonio
from healthbook.fhir.http import fhir_response, negotiate
from healthbook.reports.quality import as_parameters, quality_report
from healthbook.routing import RouteTable

router = RouteTable()


@router.get("/$quality-report")
async def quality_report_route(request: Request) -> Response:
    """Data-quality scores per province and facility (FHIR Parameters); `years` = inactivity threshold."""
    negotiate(request)
    raw = request.query_params.get("years", "3")
    if not raw.isdigit() or not 1 <= int(raw) <= 50:
        raise BadRequest("years must be an integer from 1 to 50", expression="years")
    services = request.app.state.services
    report = await run_in_threadpool(quality_report, services.fhir, request.state.caller, years=int(raw))
    return fhir_response(jsonio.dumps(as_parameters(report)))
