"""Identity operations on Patient: $match, $merge, $unmerge, $duplicates and $not-duplicate."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from healthbook.errors import BadRequest
from healthbook.fhir import jsonio
from healthbook.fhir.http import fhir_response, negotiate, read_body
from healthbook.identity import systems
from healthbook.identity.service import IdentityService
from healthbook.routing import RouteTable

router = RouteTable()


def _identity(request: Request) -> IdentityService:
    service: IdentityService = request.app.state.services.identity
    return service


async def _params(request: Request) -> dict[str, Any]:
    negotiate(request)
    body = await read_body(request, request.app.state.services.settings.max_body_bytes)
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("The body must be a Parameters resource", expression="Parameters")
    return body


def _reference(params: dict[str, Any], name: str, service: IdentityService) -> str:
    """A Patient id from `name` (a Reference) or `name-identifier` (an Identifier, e.g. the CCCD)."""
    for p in params.get("parameter") or []:
        if not isinstance(p, dict):
            continue
        if p.get("name") == name:
            ref = (p.get("valueReference") or {}).get("reference")
            if isinstance(ref, str) and ref.startswith("Patient/") and len(ref) > len("Patient/"):
                return ref.removeprefix("Patient/").split("/")[0]
            raise BadRequest(f"{name} must be a Reference to a Patient", expression=f"Parameters.{name}")
        if p.get("name") == f"{name}-identifier":
            ident = p.get("valueIdentifier") or {}
            if ident.get("system") == systems.CCCD and isinstance(ident.get("value"), str):
                found = service.match_number(ident["value"])
                if found is not None:
                    return found
            raise BadRequest(
                f"{name}-identifier names no known Patient (a CCCD identifier is expected)",
                expression=f"Parameters.{name}-identifier",
            )
    raise BadRequest(f"Parameter {name} (or {name}-identifier) is required", expression=f"Parameters.{name}")


@router.post("/Patient/$match")
async def patient_match(request: Request) -> Response:
    """Patient/$match (R4): the candidates for a Patient, graded."""
    params = await _params(request)
    service = _identity(request)
    bundle = await run_in_threadpool(service.match, request.state.caller, params)
    return fhir_response(jsonio.dumps(bundle))


@router.post("/Patient/$merge")
async def patient_merge(request: Request) -> Response:
    """Patient/$merge (the R5 operation's parameters): source into target; `preview` changes nothing."""
    params = await _params(request)
    service = _identity(request)
    source = _reference(params, "source-patient", service)
    target = _reference(params, "target-patient", service)
    preview = any(
        isinstance(p, dict) and p.get("name") == "preview" and p.get("valueBoolean") is True
        for p in params.get("parameter") or []
    )
    result = await run_in_threadpool(service.merge, request.state.caller, source, target, preview=preview)
    return fhir_response(jsonio.dumps(result))


@router.post("/Patient/$unmerge")
async def patient_unmerge(request: Request) -> Response:
    """Undo a $merge by the merge-id it returned."""
    params = await _params(request)
    merge_id = next(
        (
            p.get("valueString")
            for p in params.get("parameter") or []
            if isinstance(p, dict) and p.get("name") == "merge-id"
        ),
        None,
    )
    if not isinstance(merge_id, str) or not merge_id:
        raise BadRequest("Parameter merge-id (valueString) is required", expression="Parameters.merge-id")
    result = await run_in_threadpool(_identity(request).unmerge, request.state.caller, merge_id)
    return fhir_response(jsonio.dumps(result))


@router.get("/Patient/$duplicates")
async def patient_duplicates(request: Request) -> Response:
    """Open likely-duplicate flags, as Parameters (one `pair` per flag)."""
    negotiate(request)
    return await _duplicates(request, request.query_params.get("patient"))


@router.get("/Patient/{pid}/$duplicates")
async def one_patient_duplicates(request: Request, pid: str) -> Response:
    """Open likely-duplicate flags of one Patient."""
    negotiate(request)
    return await _duplicates(request, pid)


async def _duplicates(request: Request, pid: str | None) -> Response:
    rows = await run_in_threadpool(_identity(request).duplicates, request.state.caller, pid)
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "pair",
                "part": [
                    {"name": "patient", "valueReference": {"reference": f"Patient/{r.res_id}"}},
                    {"name": "other", "valueReference": {"reference": f"Patient/{r.other_id}"}},
                    {"name": "score", "valueDecimal": r.score},
                ],
            }
            for r in rows
        ],
    }
    return fhir_response(jsonio.dumps(parameters))


@router.post("/Patient/$not-duplicate")
async def patient_not_duplicate(request: Request) -> Response:
    """Rule out a flagged pair: `patient` and `other` are different citizens."""
    params = await _params(request)
    service = _identity(request)
    a = _reference(params, "patient", service)
    b = _reference(params, "other", service)
    await run_in_threadpool(service.not_duplicate, request.state.caller, a, b)
    return fhir_response(
        jsonio.dumps(
            {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "information",
                        "code": "informational",
                        "diagnostics": "Đã ghi nhận hai hồ sơ khác người / recorded as different citizens",
                    }
                ],
            }
        )
    )
