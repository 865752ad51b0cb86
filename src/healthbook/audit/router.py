"""AuditEvent over REST: the server's own trail for search and read; submitted AuditEvents read as records.

Facilities may also submit AuditEvents of their own systems (create, or PUT to a new id): those are stored
as records of the patient's book, immutable (update, patch and delete answer 405, fhir/service.py), and
read by id here when the trail has no event of that id.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from healthbook.audit.service import AuditTrail
from healthbook.errors import NotFound
from healthbook.fhir import jsonio
from healthbook.fhir.http import base_url, fhir_response, negotiate, parse_prefer, version_headers
from healthbook.fhir.router import Services, history_type, search_pairs
from healthbook.routing import RouteTable

router = RouteTable()


def _trail(request: Request) -> tuple[Services, AuditTrail]:
    services: Services = request.app.state.services
    if services.audit is None:
        raise NotFound("This server keeps no audit trail")
    return services, services.audit


@router.get("/AuditEvent")
@router.post("/AuditEvent/_search")
async def search(request: Request) -> Response:
    """Who accessed which book: patient, date, action, outcome, subtype; newest first."""
    return await _search(request, [])


@router.get("/Patient/{pid}/AuditEvent")
async def search_book(request: Request, pid: str) -> Response:
    """The access log of one health book (compartment form of AuditEvent?patient=)."""
    return await _search(request, [("patient", pid)])


async def _search(request: Request, fixed: list[tuple[str, str]]) -> Response:
    negotiate(request)
    services, trail = _trail(request)
    pairs = [*fixed, *await search_pairs(request, services.settings.max_body_bytes)]
    base = base_url(request, services.settings.public_base_url)
    strict = parse_prefer(request).handling == "strict"
    body = await run_in_threadpool(trail.search, request.state.caller, pairs, base=base, strict=strict)
    return fhir_response(body)


@router.get("/AuditEvent/_history")
async def type_history(request: Request) -> Response:
    """History of submitted AuditEvents (the trail's events have no history: they never change)."""
    return await history_type(request, "AuditEvent")


@router.get("/AuditEvent/{event_id}")
async def read(request: Request, event_id: str) -> Response:
    """One AuditEvent."""
    negotiate(request)
    services, trail = _trail(request)
    caller = request.state.caller
    services.fhir.policy.check(caller, "read", "AuditEvent")  # the same answer for trail ids and others
    event = await run_in_threadpool(trail.read, caller, event_id)
    if event is None:
        cur = await run_in_threadpool(services.fhir.read, caller, "AuditEvent", event_id)
        return fhir_response(cur.content or b"", 200, version_headers(cur))
    return fhir_response(jsonio.dumps(event), 200, {"ETag": 'W/"1"'})


@router.get("/AuditEvent/{event_id}/_history/{vid}")
async def vread(request: Request, event_id: str, vid: str) -> Response:
    """A version of an AuditEvent (the trail's events have one only)."""
    negotiate(request)
    services, trail = _trail(request)
    caller = request.state.caller
    services.fhir.policy.check(caller, "vread", "AuditEvent")
    event = await run_in_threadpool(trail.read, caller, event_id)
    if event is None:
        ver = await run_in_threadpool(services.fhir.vread, caller, "AuditEvent", event_id, vid)
        return fhir_response(ver.content or b"", 200, version_headers(ver))
    if vid != "1":
        raise NotFound(f"AuditEvent/{event_id}/_history/{vid[:20]} is not known")
    return fhir_response(jsonio.dumps(event), 200, {"ETag": 'W/"1"'})
