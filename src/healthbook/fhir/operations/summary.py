"""Patient/$summary (IPS OperationDefinition/summary): the health book of QĐ 1332 as a FHIR document.

The data are the patient's compartment exactly as $everything serves it (same query, same access
check, served from the patient's shard key), plus the PractitionerRoles of the staff it names, which
tell the facility of resources that name only a practitioner (vaccinations, appointments).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from healthbook import __version__
from healthbook.auth.subject import Caller
from healthbook.book.document import build_document
from healthbook.errors import BadRequest, NotFound, PreconditionFailed
from healthbook.fhir import jsonio
from healthbook.fhir.http import Prefer
from healthbook.fhir.operations.everything import EverythingQuery, everything
from healthbook.fhir.service import FhirService, check_id

if TYPE_CHECKING:  # the search service imports the CapabilityStatement, which lists this operation
    from healthbook.fhir.search.service import SearchService

Resource = dict[str, Any]
DEFINITION = "http://hl7.org/fhir/uv/ips/OperationDefinition/summary"
ALL = 10**9  # $summary is one document: no paging
_ROLE_CHUNK = 100
DOCUMENTATION = (
    "The health book (Sổ sức khỏe điện tử, QĐ 1332/QĐ-BYT) as a document Bundle: a Composition "
    "(LOINC 60591-5) with the four data groups as sections — administrative information, history, "
    "care episodes, record summary — each with a generated narrative naming the facility and date of "
    "every entry. Served from the patient compartment under the $everything access policy. "
    "Type level: Patient/$summary?identifier=system|value. The profile parameter is not supported "
    "(the sections follow QĐ 1332, not the IPS section list)."
)


def search_resources(
    search: SearchService, caller: Caller, rtype: str, pairs: list[tuple[str, str]]
) -> list[Resource]:
    """The resources of one search page (matches and includes), parsed."""
    body = search.search_bundle(caller, rtype, pairs, base="", prefer=Prefer())
    bundle = jsonio.loads(body)
    return [e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") != "outcome"]


def _staff_roles(search: SearchService, caller: Caller, resources: Sequence[Resource]) -> list[Resource]:
    """PractitionerRoles (and their Organizations) of the practitioners the record names."""
    have = {(r["resourceType"], r["id"]) for r in resources}
    with_role = {
        str((r.get("practitioner") or {}).get("reference", "")).removeprefix("Practitioner/")
        for r in resources
        if r["resourceType"] == "PractitionerRole"
    }
    wanted = sorted(
        r["id"] for r in resources if r["resourceType"] == "Practitioner" and r["id"] not in with_role
    )
    found: list[Resource] = []
    for start in range(0, len(wanted), _ROLE_CHUNK):
        chunk = wanted[start : start + _ROLE_CHUNK]
        pairs = [
            ("practitioner", ",".join(f"Practitioner/{p}" for p in chunk)),
            ("_include", "PractitionerRole:organization"),
            ("_count", "1000"),
        ]
        for res in search_resources(search, caller, "PractitionerRole", pairs):
            key = (res["resourceType"], res["id"])
            if key not in have:
                have.add(key)
                found.append(res)
    return found


def summary_document(
    fhir: FhirService,
    search: SearchService,
    caller: Caller,
    patient_id: str,
    *,
    base: str,
    now: datetime | None = None,
) -> Resource:
    """The document Bundle of one patient's health book (404 when the Patient is unknown or deleted)."""
    check_id(patient_id)
    rows, _ = everything(
        fhir, caller, EverythingQuery((patient_id,), None, None, ALL, 0), interaction="$summary"
    )
    resources: list[Resource] = [jsonio.loads(row[4]) for row in rows if row[4]]
    resources += _staff_roles(search, caller, resources)
    return build_document(
        resources, patient_id=patient_id, base=base, now=now or datetime.now(UTC), version=__version__
    )


def _replaced(patient: Resource) -> bool:
    return patient.get("active") is False or any(
        isinstance(link, dict) and link.get("type") == "replaced-by" for link in patient.get("link") or []
    )


def patients_with_identifier(
    search: SearchService, caller: Caller, system: str, value: str
) -> list[Resource]:
    """Live Patients carrying system|value, the surviving records first, then the most recently updated."""
    if any(c in part for part in (system, value) for c in "|,\\$"):
        return []  # search syntax (OR lists, escapes) must not widen the lookup
    found = search_resources(
        search, caller, "Patient", [("identifier", f"{system}|{value}"), ("_count", "20")]
    )
    found.sort(key=lambda p: str((p.get("meta") or {}).get("lastUpdated", "")), reverse=True)
    found.sort(key=_replaced)  # stable: survivors first, each group newest first
    return found


def patient_by_identifier(search: SearchService, caller: Caller, token: str) -> str:
    """The Patient id named by an identifier token system|value (the type-level form of $summary)."""
    system, sep, value = token.partition("|")
    if not sep or not system or not value:
        raise BadRequest("identifier must be given as system|value", expression="identifier")
    found = [p for p in patients_with_identifier(search, caller, system, value) if not _replaced(p)]
    if not found:
        raise NotFound("No Patient carries this identifier")
    if len(found) > 1:
        raise PreconditionFailed(
            f"{len(found)} Patients carry this identifier; ask for Patient/[id]/$summary",
            expression="identifier",
        )
    return str(found[0]["id"])


def parse_parameters(body: Any) -> dict[str, str]:
    """The identifier and profile of a POSTed Parameters resource (an empty body means none)."""
    if body is None:
        return {}
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("POST $summary takes a Parameters resource (or no body)")
    out: dict[str, str] = {}
    for param in body.get("parameter") or []:
        name = param.get("name") if isinstance(param, dict) else None
        if name not in ("identifier", "profile"):
            raise BadRequest(f"$summary has no parameter {str(name)[:40]!r}", expression="parameter")
        value = next((v for k, v in param.items() if k.startswith("value")), None)
        if isinstance(value, dict) and name == "identifier":
            value = f"{value.get('system', '')}|{value.get('value', '')}"
        if not isinstance(value, str):
            raise BadRequest(f"$summary parameter {name} needs a string value", expression="parameter")
        out[str(name)] = value
    return out


def check_profile(profile: str | None) -> None:
    """Only the server's own document is produced; asking for another profile is an error, not a guess."""
    if profile:
        raise BadRequest(
            f"profile '{profile[:120]}' is not supported: $summary returns the QĐ 1332 health book "
            "(Composition LOINC 60591-5 with the four data groups)",
            expression="profile",
        )


def dumps(document: Resource) -> bytes:
    """Serialise the document, keeping decimal precision."""
    return jsonio.dumps(document)
