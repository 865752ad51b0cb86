"""The FHIR REST interaction table: parse the request, call the service, render the answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from healthbook.auth.subject import Caller
from healthbook.config import Settings
from healthbook.errors import BadRequest, UnsupportedMediaType
from healthbook.fhir import bundles, jsonio
from healthbook.fhir.bulk.service import BulkService
from healthbook.fhir.capability import capability_statement
from healthbook.fhir.http import (
    base_url,
    fhir_response,
    negotiate,
    outcome_response,
    parse_prefer,
    read_body,
    read_patch,
    read_raw_body,
    reject_nul,
    version_headers,
    write_response,
)
from healthbook.fhir.operations.everything import EverythingQuery, everything_bundle
from healthbook.fhir.operations.everything import parse_query as parse_everything
from healthbook.fhir.operations.summary import (
    check_profile,
    parse_parameters,
    patient_by_identifier,
    summary_document,
)
from healthbook.fhir.outcomes import Issue
from healthbook.fhir.search.service import SearchService
from healthbook.fhir.service import FhirService, history
from healthbook.fhir.timeutil import now_us, parse_instant_us
from healthbook.fhir.transaction import BundleProcessor
from healthbook.routing import RouteTable

if TYPE_CHECKING:
    from healthbook.access.service import AccessService
    from healthbook.audit.service import AuditTrail
    from healthbook.identity.service import IdentityService


@dataclass(slots=True)
class Services:
    """What the FHIR routes need, built once by create_app()."""

    settings: Settings
    fhir: FhirService
    search: SearchService
    bulk: BulkService
    identity: IdentityService | None = None  # the domain package around the engine, wired by app.py
    access: AccessService | None = None
    audit: AuditTrail | None = None


router = RouteTable()


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _caller(request: Request) -> Caller:
    caller: Caller = request.state.caller
    return caller


def _int_param(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise BadRequest(f"{name} must be a non-negative integer, got '{raw[:40]}'", expression=name)
    return min(int(raw), maximum)


_METADATA: dict[str, bytes] = {}  # CapabilityStatement per base URL: it only changes with the code


@router.get("/metadata")
async def metadata(request: Request) -> Response:
    """CapabilityStatement (capabilities interaction)."""
    negotiate(request)
    svc = _services(request)
    base = base_url(request, svc.settings.public_base_url)
    auth = getattr(request.app.state, "auth", None)
    security = await auth.capability_security() if auth is not None else None
    key = base + (jsonio.dumps(security).decode() if security else "")
    body = _METADATA.get(key)
    if body is None:
        cs = capability_statement(
            base,
            svc.search.capability_params,
            system_search=True,
            notes=svc.search.capability_notes(),
            security=security,
        )
        body = _METADATA.setdefault(key, jsonio.dumps(cs)) if len(_METADATA) < 64 else jsonio.dumps(cs)
    return fhir_response(body)


async def _history(request: Request, res_type: str | None, res_id: str | None) -> Response:
    negotiate(request)
    svc = _services(request)
    settings = svc.settings
    count = _int_param(request, "_count", settings.default_page_size, settings.max_page_size)
    offset = _int_param(request, "_page_offset", 0, 10**12)
    since_raw = request.query_params.get("_since")
    until_raw = request.query_params.get("_page_until")
    try:
        since = parse_instant_us(since_raw) if since_raw else None
    except ValueError:
        raise BadRequest(
            f"_since '{since_raw[:40] if since_raw else ''}' is not a valid instant", expression="_since"
        ) from None
    until = int(until_raw) if until_raw and until_raw.isdigit() else None
    page = await run_in_threadpool(
        history,
        svc.fhir,
        _caller(request),
        res_type=res_type,
        res_id=res_id,
        since=since,
        until=until,
        offset=offset,
        count=count,
    )
    base = base_url(request, settings.public_base_url)
    path = "/" + "/".join(p for p in (res_type, res_id) if p) + ("/_history" if res_type else "_history")
    keep: dict[str, str] = {"_count": str(count), "_page_until": str(page.until)}
    if since_raw:
        keep["_since"] = since_raw
    links = [("self", bundles.page_url(base, path, {**keep, "_page_offset": str(offset)}))]
    links.append(("first", bundles.page_url(base, path, {**keep, "_page_offset": "0"})))
    if offset > 0 and count:
        links.append(
            ("previous", bundles.page_url(base, path, {**keep, "_page_offset": str(max(0, offset - count))}))
        )
    if count and offset + count < page.total:
        links.append(("next", bundles.page_url(base, path, {**keep, "_page_offset": str(offset + count)})))
    entries = [bundles.history_entry(base, v) for v in page.versions]
    return fhir_response(bundles.bundle("history", entries, links, total=page.total, timestamp_us=now_us()))


@router.post("/")
async def transaction(request: Request) -> Response:
    """transaction and batch (POST of a Bundle to the base URL)."""
    negotiate(request)
    svc = _services(request)
    body = await read_body(request, svc.settings.max_body_bytes)
    base = base_url(request, svc.settings.public_base_url)
    processor = BundleProcessor(svc.fhir, svc.search)
    out = await run_in_threadpool(
        processor.process, _caller(request), body, base=base, prefer=parse_prefer(request)
    )
    return fhir_response(out)


@router.get("/_history")
async def history_system(request: Request) -> Response:
    """history-system."""
    return await _history(request, None, None)


@router.get("/")
@router.post("/_search")
async def search_system(request: Request) -> Response:
    """search-system (with _type)."""
    return await _search(request, None)


@router.get("/{res_type}/_history")
async def history_type(request: Request, res_type: str) -> Response:
    """history-type."""
    return await _history(request, res_type, None)


@router.get("/{res_type}/{res_id}/_history")
async def history_instance(request: Request, res_type: str, res_id: str) -> Response:
    """history-instance."""
    return await _history(request, res_type, res_id)


@router.get("/{res_type}/{res_id}/_history/{vid}")
async def vread(request: Request, res_type: str, res_id: str, vid: str) -> Response:
    """vread."""
    negotiate(request)
    svc = _services(request)
    ver = await run_in_threadpool(svc.fhir.vread, _caller(request), res_type, res_id, vid)
    return fhir_response(ver.content or b"", 200, version_headers(ver))


def _everything_params(request: Request, ids: list[str]) -> EverythingQuery:
    settings = _services(request).settings
    return parse_everything(
        ids,
        request.query_params.get("_type"),
        request.query_params.get("_since"),
        _int_param(request, "_count", settings.max_page_size, settings.max_page_size),
        _int_param(request, "_page_offset", 0, 10**12),
    )


@router.get("/Patient/{pid}/$everything")
async def patient_everything(request: Request, pid: str) -> Response:
    """Patient/{id}/$everything."""
    negotiate(request)
    svc = _services(request)
    q = _everything_params(request, [pid])
    base = base_url(request, svc.settings.public_base_url)
    body = await run_in_threadpool(
        everything_bundle, svc.fhir, _caller(request), q, base=base, path=f"/Patient/{pid}/$everything",
        params=dict(request.query_params),
    )  # fmt: skip
    return fhir_response(body)


@router.get("/Patient/$everything")
async def patients_everything(request: Request) -> Response:
    """Patient/$everything?_id=a,b (type level; the patients must be named)."""
    negotiate(request)
    svc = _services(request)
    ids = [i.strip() for v in request.query_params.getlist("_id") for i in v.split(",") if i.strip()]
    if not ids:
        raise BadRequest(
            "Patient/$everything at type level needs _id (one or more patient ids)", expression="_id"
        )
    q = _everything_params(request, ids)
    base = base_url(request, svc.settings.public_base_url)
    body = await run_in_threadpool(
        everything_bundle, svc.fhir, _caller(request), q, base=base, path="/Patient/$everything",
        params=dict(request.query_params),
    )  # fmt: skip
    return fhir_response(body)


async def _summary_params(request: Request) -> dict[str, str]:
    """identifier and profile from the query and, for POST, from a Parameters body."""
    params = {k: v for k in ("identifier", "profile") if (v := request.query_params.get(k))}
    if request.method == "POST":
        limit = _services(request).settings.max_body_bytes
        if request.headers.get("content-type"):
            params.update(parse_parameters(await read_body(request, limit)))
        elif (await read_raw_body(request, limit)).strip():
            raise UnsupportedMediaType("Send the Parameters of $summary as application/fhir+json")
    check_profile(params.get("profile"))
    return params


async def _summary(request: Request, pid: str | None) -> Response:
    negotiate(request)
    svc = _services(request)
    params = await _summary_params(request)
    caller = _caller(request)
    if pid is None:
        token = params.get("identifier")
        if not token:
            raise BadRequest(
                "Patient/$summary at type level needs identifier=system|value", expression="identifier"
            )
        pid = await run_in_threadpool(patient_by_identifier, svc.search, caller, token)
    base = base_url(request, svc.settings.public_base_url)
    document = await run_in_threadpool(summary_document, svc.fhir, svc.search, caller, pid, base=base)
    return fhir_response(jsonio.dumps(document))


@router.get("/Patient/$summary")
@router.post("/Patient/$summary")
async def patients_summary(request: Request) -> Response:
    """Patient/$summary?identifier=system|value (IPS: the patient named by an identifier)."""
    return await _summary(request, None)


@router.get("/Patient/{pid}/$summary")
@router.post("/Patient/{pid}/$summary")
async def patient_summary(request: Request, pid: str) -> Response:
    """Patient/{id}/$summary: the health book as a FHIR document Bundle."""
    return await _summary(request, pid)


@router.get("/{compartment}/{cid}/{res_type}")
async def search_compartment(request: Request, compartment: str, cid: str, res_type: str) -> Response:
    """Compartment search, e.g. GET /Patient/{id}/Observation (or * for every type)."""
    target = None if res_type == "*" else res_type
    return await _search(request, target, compartment=(compartment, cid))


async def search_pairs(request: Request, max_body_bytes: int) -> list[tuple[str, str]]:
    """The search parameters of a GET query, or of a POST _search form body added to it."""
    params: list[tuple[str, str]] = list(request.query_params.multi_items())
    if request.method == "POST":
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        if ctype != "application/x-www-form-urlencoded":
            raise BadRequest("POST _search takes application/x-www-form-urlencoded parameters")
        raw = await read_raw_body(request, max_body_bytes)
        try:
            params += parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=20_000)
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest(f"Malformed form body: {exc}") from None
    reject_nul(params)
    return params


async def _search(
    request: Request, res_type: str | None, compartment: tuple[str, str] | None = None
) -> Response:
    negotiate(request)
    svc = _services(request)
    params = await search_pairs(request, svc.settings.max_body_bytes)
    base = base_url(request, svc.settings.public_base_url)
    body = await run_in_threadpool(
        svc.search.search_bundle,
        _caller(request),
        res_type,
        params,
        base=base,
        prefer=parse_prefer(request),
        compartment=compartment,
    )
    return fhir_response(body)


@router.get("/{res_type}")
@router.post("/{res_type}/_search")
async def search_type(request: Request, res_type: str) -> Response:
    """search-type."""
    return await _search(request, res_type)


@router.get("/{res_type}/{res_id}")
async def read(request: Request, res_type: str, res_id: str) -> Response:
    """read."""
    negotiate(request)
    svc = _services(request)
    cur = await run_in_threadpool(svc.fhir.read, _caller(request), res_type, res_id)
    return fhir_response(cur.content or b"", 200, version_headers(cur))


@router.post("/{res_type}")
async def create(request: Request, res_type: str) -> Response:
    """create, and conditional create with If-None-Exist."""
    negotiate(request)
    svc = _services(request)
    body = await read_body(request, svc.settings.max_body_bytes)
    result = await run_in_threadpool(
        svc.fhir.create, _caller(request), res_type, body, if_none_exist=request.headers.get("if-none-exist")
    )
    base = base_url(request, svc.settings.public_base_url)
    return write_response(result.stored, result.status, parse_prefer(request), base, result.issues)


@router.put("/{res_type}/{res_id}")
async def update(request: Request, res_type: str, res_id: str) -> Response:
    """update (and update-as-create), versioned with If-Match."""
    negotiate(request)
    svc = _services(request)
    body = await read_body(request, svc.settings.max_body_bytes)
    result = await run_in_threadpool(
        svc.fhir.update, _caller(request), res_type, res_id, body, if_match=request.headers.get("if-match")
    )
    base = base_url(request, svc.settings.public_base_url)
    return write_response(result.stored, result.status, parse_prefer(request), base, result.issues)


@router.put("/{res_type}")
async def conditional_update(request: Request, res_type: str) -> Response:
    """Conditional update: PUT [type]?criteria."""
    negotiate(request)
    svc = _services(request)
    body = await read_body(request, svc.settings.max_body_bytes)
    result = await run_in_threadpool(
        svc.fhir.conditional_update,
        _caller(request),
        res_type,
        request.url.query,
        body,
        if_match=request.headers.get("if-match"),
    )
    base = base_url(request, svc.settings.public_base_url)
    return write_response(result.stored, result.status, parse_prefer(request), base, result.issues)


@router.patch("/{res_type}/{res_id}")
async def patch(request: Request, res_type: str, res_id: str) -> Response:
    """patch with JSON Patch or FHIRPath Patch, told apart by the Content-Type."""
    negotiate(request)
    svc = _services(request)
    ops = await read_patch(request, svc.settings.max_body_bytes)
    result = await run_in_threadpool(
        svc.fhir.patch, _caller(request), res_type, res_id, ops, if_match=request.headers.get("if-match")
    )
    base = base_url(request, svc.settings.public_base_url)
    return write_response(
        result.stored, result.status, parse_prefer(request), base, result.issues, location=False
    )


def _deleted_response(request: Request, stored: Any, what: str) -> Response:
    prefer = parse_prefer(request)
    headers = {"ETag": f'W/"{stored.version_id}"'} if stored is not None else {}
    if prefer.return_ == "minimal":
        return Response(status_code=204, headers=headers)
    text = f"{what} deleted" if stored is not None else f"{what}: nothing to delete"
    return outcome_response([Issue("information", "informational", text)], 200, headers)


@router.delete("/{res_type}/{res_id}")
async def delete(request: Request, res_type: str, res_id: str) -> Response:
    """delete."""
    negotiate(request)
    svc = _services(request)
    stored = await run_in_threadpool(svc.fhir.delete, _caller(request), res_type, res_id)
    return _deleted_response(request, stored, f"{res_type}/{res_id}")


@router.delete("/{res_type}")
async def conditional_delete(request: Request, res_type: str) -> Response:
    """Conditional delete: DELETE [type]?criteria (single match)."""
    negotiate(request)
    svc = _services(request)
    stored = await run_in_threadpool(
        svc.fhir.conditional_delete, _caller(request), res_type, request.url.query
    )
    what = f"{res_type}/{stored.res_id}" if stored is not None else res_type
    return _deleted_response(request, stored, what)
