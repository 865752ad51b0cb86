"""The CapabilityStatement: generated from what the server really implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from healthbook import __version__
from healthbook.fhir.operations import summary
from healthbook.fhir.validation import resource_types

INSTANCE_INTERACTIONS = ["read", "vread", "update", "patch", "delete", "history-instance"]
TYPE_INTERACTIONS = ["history-type", "create", "search-type"]

PATIENT_OPERATIONS = [
    {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
    {"name": "summary", "definition": summary.DEFINITION, "documentation": summary.DOCUMENTATION},
    {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"},
]
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
]

# (name, type, documentation) triples for one resource type.
SearchParamInfo = Sequence[tuple[str, str, str]]


def capability_statement(
    base: str,
    search_params: Callable[[str], SearchParamInfo],
    *,
    system_search: bool,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Describe the server at `base`: interactions, formats and search parameters per type."""
    resources = []
    for rtype in sorted(resource_types()):
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
            }
        )
    system = [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}]
    if system_search:
        system.append({"code": "search-system"})
    doc = " ".join(
        [
            "healthbook FHIR R4 server. Only JSON (application/fhir+json) is produced and accepted;",
            "requests for XML are answered with 406 Not Acceptable (body 415 Unsupported Media Type).",
            "PATCH takes JSON Patch (application/json-patch+json).",
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
        "patchFormat": ["application/json-patch+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": doc,
                "resource": resources,
                "interaction": system,
                "operation": SYSTEM_OPERATIONS,
            }
        ],
    }
