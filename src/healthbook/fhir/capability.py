"""The CapabilityStatement: generated from what the server really implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from healthbook import __version__
from healthbook.fhir.operations import summary
from healthbook.fhir.validation import resource_types
from healthbook.identity import systems

INSTANCE_INTERACTIONS = ["read", "vread", "update", "patch", "delete", "history-instance"]
TYPE_INTERACTIONS = ["history-type", "create", "search-type"]

PATIENT_OPERATIONS = [
    {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
    {"name": "summary", "definition": summary.DEFINITION, "documentation": summary.DOCUMENTATION},
    {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"},
    {
        "name": "match",
        "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match",
        "documentation": "Exact on the personal ID number (also cancelled ones), otherwise scored on the "
        "normalised name, birth date, sex, address and BHYT number; grades certain/probable/possible.",
    },
    {
        "name": "merge",
        "definition": "http://hl7.org/fhir/5.0/OperationDefinition/Patient-merge",
        "documentation": "The R5 parameters (source-patient[-identifier], target-patient[-identifier], "
        "preview); answers a merge-id that $unmerge takes.",
    },
    {"name": "unmerge", "definition": "https://healthbook.vn/fhir/OperationDefinition/Patient-unmerge"},
    {"name": "duplicates", "definition": "https://healthbook.vn/fhir/OperationDefinition/Patient-duplicates"},
    {
        "name": "not-duplicate",
        "definition": "https://healthbook.vn/fhir/OperationDefinition/Patient-not-duplicate",
    },
]
# What each type's identifiers mean here (the identity package checks them on every write).
TYPE_DOCUMENTATION = {
    "Patient": "Identifier systems: personal identification number (CCCD, 12 digits) "
    f"{systems.CCCD}; BHYT card {systems.BHYT}; old identity card (CMND) {systems.CMND}; passport "
    f"{systems.PASSPORT} (other countries {systems.PASSPORT_PREFIX}XXX). One Patient per personal "
    "identification number: a second one is refused with 409.",
    "Practitioner": f"Identifier systems: CCCD {systems.CCCD}; practising certificate "
    f"{systems.PRACTISING_CERTIFICATE}.",
    "Organization": f"Identifier system of the 5-character facility code: {systems.FACILITY_CODE}.",
}
GROUP_OPERATIONS = [
    {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"},
]
SYSTEM_OPERATIONS = [
    {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"},
    {
        "name": "import",
        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/import",
        "documentation": "Asynchronous; the body is NDJSON (application/fhir+ndjson), not a Parameters manifest.",
    },
    {
        "name": "import-xml130",
        "definition": "http://fhir.ehealth.gov.vn/core/OperationDefinition/import-xml130",
        "documentation": "Synchronous import of a GIAMDINHHS document (QĐ 130/4750/3176 XML, application/xml); "
        "answers an OperationOutcome with per-episode issues. See docs/xml130-mapping.md.",
    },
]

SMART_SECURITY_EXTENSION = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"

# (name, type, documentation) triples for one resource type.
SearchParamInfo = Sequence[tuple[str, str, str]]


# The audit trail (healthbook.audit) answers AuditEvent: read and search only, with its own parameters.
AUDIT_EVENT: dict[str, Any] = {
    "type": "AuditEvent",
    "profile": "http://hl7.org/fhir/StructureDefinition/AuditEvent",
    "documentation": (
        "Search answers from the server's audit trail: who accessed which health book, written by the "
        "server for every read, search, write and operation of an authenticated caller, in an "
        "append-only hash chain per book. A citizen or guardian reads the log of his or her own books "
        "only; newest first, paged by _page links. Facilities may submit AuditEvents of their own "
        "systems (create, or update to a new id): they are kept as records of the patient's book and "
        "never change (update, patch and delete answer 405); read finds both kinds by id."
    ),
    "interaction": [{"code": "read"}, {"code": "vread"}, {"code": "create"}, {"code": "search-type"}],
    "versioning": "versioned",
    "readHistory": False,
    "updateCreate": True,
    "searchParam": [
        {"name": "patient", "type": "reference", "documentation": "The health book (Patient id)"},
        {"name": "date", "type": "date", "documentation": "When recorded (eq ge gt le lt)"},
        {"name": "action", "type": "token", "documentation": "C R U D E"},
        {"name": "outcome", "type": "token", "documentation": "0 success, 4 refused or not found"},
        {"name": "subtype", "type": "token", "documentation": "restful-interaction code, or $operation"},
    ],
}


def capability_statement(
    base: str,
    search_params: Callable[[str], SearchParamInfo],
    *,
    system_search: bool,
    notes: Sequence[str] = (),
    security: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Describe the server at `base`: interactions, formats and search parameters per type."""
    resources = []
    for rtype in sorted(resource_types()):
        if rtype == "AuditEvent":
            resources.append(AUDIT_EVENT)
            continue
        operations = (
            PATIENT_OPERATIONS if rtype == "Patient" else GROUP_OPERATIONS if rtype == "Group" else []
        )
        resources.append(
            {
                "type": rtype,
                "profile": f"http://hl7.org/fhir/StructureDefinition/{rtype}",
                "interaction": [{"code": c} for c in INSTANCE_INTERACTIONS + TYPE_INTERACTIONS],
                "versioning": "versioned-update",
                "readHistory": True,
                "updateCreate": True,
                "conditionalCreate": True,
                "conditionalRead": "not-supported",
                "conditionalUpdate": True,
                "conditionalDelete": "single",
                "searchParam": [
                    {"name": name, "type": ptype, "documentation": doc}
                    for name, ptype, doc in search_params(rtype)
                ],
                **({"operation": operations} if operations else {}),
                **({"documentation": TYPE_DOCUMENTATION[rtype]} if rtype in TYPE_DOCUMENTATION else {}),
            }
        )
    system = [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}]
    if system_search:
        system.append({"code": "search-system"})
    doc = " ".join(
        [
            "healthbook FHIR R4 server. Only JSON (application/fhir+json) is produced and accepted;",
            "requests for XML are answered with 406 Not Acceptable (body 415 Unsupported Media Type).",
            "PATCH takes JSON Patch (application/json-patch+json) and FHIRPath Patch (a Parameters resource as",
            "application/fhir+json).",
            *notes,
        ]
    )
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-02",
        "publisher": "healthbook",
        "kind": "instance",
        "software": {"name": "healthbook", "version": __version__},
        "implementation": {"description": "healthbook — Sổ sức khỏe điện tử", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": doc,
                "resource": resources,
                "interaction": system,
                "operation": SYSTEM_OPERATIONS,
                **({"security": security} if security else {}),
            }
        ],
    }


def security_section(authorize: str | None, token: str | None, *, required: bool) -> dict[str, Any]:
    """The `security` element: SMART-on-FHIR service code and the oauth-uris extension (SMART App Launch)."""
    uris = [
        {"url": name, "valueUri": uri} for name, uri in (("authorize", authorize), ("token", token)) if uri
    ]
    out: dict[str, Any] = {
        "cors": False,
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth2 using SMART-on-FHIR profile (see .well-known/smart-configuration)",
            }
        ],
        "description": (
            "Bearer JWT access tokens from trusted OpenID Connect issuers (SMART App Launch 2.x scopes). "
            + (
                "A token is required."
                if required
                else "A token is optional for now: without one the caller is anonymous."
            )
        ),
    }
    if uris:
        out["extension"] = [{"url": SMART_SECURITY_EXTENSION, "extension": uris}]
    return out
