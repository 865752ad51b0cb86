"""Patient/{id}/$break-glass: a health worker's emergency access to one book, for a limited time."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from healthbook.access.service import AccessService
from healthbook.errors import BadRequest
from healthbook.fhir import jsonio
from healthbook.fhir.http import fhir_response, negotiate, read_body
from healthbook.fhir.timeutil import to_instant
from healthbook.routing import RouteTable

router = RouteTable()


@router.post("/Patient/{pid}/$break-glass")
async def break_glass(request: Request, pid: str) -> Response:
    """Declare an emergency: body Parameters with `reason` (valueString); answers when the access ends."""
    negotiate(request)
    body = await read_body(request, request.app.state.services.settings.max_body_bytes)
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("The body must be a Parameters resource", expression="Parameters")
    reason: Any = next(
        (
            p.get("valueString")
            for p in body.get("parameter") or []
            if isinstance(p, dict) and p.get("name") == "reason"
        ),
        None,
    )
    service: AccessService = request.app.state.services.access
    done = await run_in_threadpool(service.break_glass, request.state.caller, pid, reason)
    answer = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "valueReference": {"reference": f"Patient/{done.patient_id}"}},
            {"name": "expires", "valueInstant": to_instant(done.expires)},
            {"name": "notice", "valueReference": {"reference": f"Communication/{done.notice_id}"}},
        ],
    }
    return fhir_response(jsonio.dumps(answer), 201)
