"""HTTP details of the FHIR API: content negotiation, body limits, Prefer, and response building."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from healthbook.errors import BadRequest, NotAcceptable, PayloadTooLarge, UnsupportedMediaType
from healthbook.fhir import jsonio, patching
from healthbook.fhir.outcomes import Issue, operation_outcome
from healthbook.fhir.store.sql_repository import StoredVersion
from healthbook.fhir.timeutil import to_http_date

FHIR_JSON = "application/fhir+json"
JSON_TYPES = {"application/fhir+json", "application/json", "application/json+fhir", "text/json"}
XML_TYPES = {"application/fhir+xml", "application/xml", "application/xml+fhir", "text/xml", "xml"}
_FORMAT_JSON = {"json", *JSON_TYPES}


@dataclass(frozen=True, slots=True)
class Prefer:
    """The parts of the Prefer header this server acts on."""

    return_: str = "representation"  # minimal | representation | OperationOutcome
    handling: str = "lenient"  # lenient | strict


def parse_prefer(request: Request) -> Prefer:
    """Read return= and handling= from Prefer; unknown tokens are ignored as RFC 7240 says.

    A preference given more than once (in one header or in repeated headers) counts only at its first
    occurrence (RFC 7240 §2); later ones are ignored without an error.
    """
    seen: dict[str, str] = {}
    for header in request.headers.getlist("prefer"):
        for token in header.split(","):
            name, _, value = token.split(";", 1)[0].strip().partition("=")
            name = name.strip().lower()
            if name in ("return", "handling") and name not in seen:
                seen[name] = value.strip().strip('"')
    ret = seen.get("return", "representation")
    handling = seen.get("handling", "lenient")
    return Prefer(
        ret if ret in ("minimal", "representation", "OperationOutcome") else "representation",
        handling if handling in ("strict", "lenient") else "lenient",
    )


def reject_nul(params: list[tuple[str, str]]) -> None:
    """NUL never occurs in a FHIR string (datatypes.html#string) and PostgreSQL text cannot hold it."""
    for name, value in params:
        if "\x00" in name or "\x00" in value:
            clean = name.replace("\x00", "")
            raise BadRequest(
                f"Search parameter '{clean[:40]}' contains a NUL character", expression=clean or None
            )


def _media(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def negotiate(request: Request) -> None:
    """Only JSON is produced: XML or other requested formats answer 406 (OperationOutcome in JSON)."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        if _media(fmt) in _FORMAT_JSON:
            return
        raise NotAcceptable(f"_format '{fmt[:60]}' is not supported: this server speaks FHIR JSON only")
    accept = request.headers.get("accept")
    if not accept:
        return
    kinds = [_media(part) for part in accept.split(",")]
    if any(k in JSON_TYPES or k in ("*/*", "application/*", "") for k in kinds):
        return
    raise NotAcceptable(
        f"Accept '{accept[:80]}' cannot be served: this server produces application/fhir+json"
    )


async def read_patch(request: Request, limit: int) -> patching.Patch:
    """A PATCH body: JSON Patch as application/json-patch+json, FHIRPath Patch as FHIR JSON."""
    body = await read_body(request, limit, patch=True)
    return patching.parse(body, _media(request.headers.get("content-type", "")))


async def read_body(request: Request, limit: int, *, patch: bool = False) -> Any:
    """Read and parse the JSON body, enforcing the size limit while streaming."""
    ctype = _media(request.headers.get("content-type", ""))
    allowed = JSON_TYPES | {patching.JSON_PATCH} if patch else JSON_TYPES
    if ctype in XML_TYPES:
        raise UnsupportedMediaType("FHIR XML is not supported: send application/fhir+json")
    if ctype not in allowed:
        want = f"{patching.JSON_PATCH} or {FHIR_JSON} (FHIRPath Patch)" if patch else FHIR_JSON
        raise UnsupportedMediaType(f"Content-Type '{ctype or '(none)'}' is not accepted here: send {want}")
    body = await read_raw_body(request, limit)
    if not body.strip():
        raise BadRequest("The request body is empty")
    value = jsonio.loads(body)
    try:
        # The precise-decimal parser accepts "\ud800" escapes that can never be stored as UTF-8.
        jsonio.dumps(value)
    except TypeError as exc:
        raise BadRequest(f"The request body is not valid Unicode: {exc}") from None
    if b"\\u0000" in body and _has_nul(value):
        # Never valid in FHIR (datatypes.html#string), and PostgreSQL text cannot store it.
        raise BadRequest("The request body contains a NUL character (\\u0000)")
    return value


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


async def read_raw_body(request: Request, limit: int) -> bytes:
    """The body bytes, refusing (413) anything over the limit without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body of {declared} bytes is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def fhir_response(content: bytes | str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A response carrying FHIR JSON."""
    return Response(
        content=content, status_code=status, headers=headers, media_type=FHIR_JSON + "; charset=utf-8"
    )


def outcome_response(issues: list[Issue], status: int, headers: dict[str, str] | None = None) -> Response:
    """A response carrying an OperationOutcome."""
    return fhir_response(jsonio.dumps(operation_outcome(issues)), status, headers)


def version_headers(stored: StoredVersion) -> dict[str, str]:
    """ETag and Last-Modified of a stored version."""
    return {"ETag": f'W/"{stored.version_id}"', "Last-Modified": to_http_date(stored.last_updated)}


def base_url(request: Request, configured: str | None) -> str:
    """The FHIR base URL as the client sees it, without a trailing slash."""
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/") + "/fhir"


def write_response(
    stored: StoredVersion,
    status: int,
    prefer: Prefer,
    base: str,
    issues: list[Issue],
    *,
    location: bool = True,
) -> Response:
    """Answer a create/update/patch as Prefer: return= asks."""
    headers = version_headers(stored)
    if location:
        headers["Location"] = f"{base}/{stored.res_type}/{stored.res_id}/_history/{stored.version_id}"
    if prefer.return_ == "minimal":
        return Response(status_code=status, headers=headers)
    if prefer.return_ == "OperationOutcome":
        text = f"{stored.res_type}/{stored.res_id} stored as version {stored.version_id}"
        return outcome_response([Issue("information", "informational", text), *issues], status, headers)
    return fhir_response(stored.content or b"", status, headers)
