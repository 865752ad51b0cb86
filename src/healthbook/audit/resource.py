"""An audit-trail row as a FHIR R4 AuditEvent (pure): who, which book, what, why, when, the outcome."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from healthbook.fhir.timeutil import to_instant
from healthbook.identity.systems import FACILITY_CODE

_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
_AGENT_TYPE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
_DICOM = "http://dicom.nema.org/resources/ontology/DCM"
_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ROLES = "https://healthbook.vn/fhir/CodeSystem/caller-role"

# interaction → AuditEvent.action (C create, R read, U update, D delete, E execute: searches, operations).
ACTIONS = {
    "read": "R",
    "vread": "R",
    "history-instance": "R",
    "history-type": "R",
    "history-system": "R",
    "search-type": "E",
    "search-system": "E",
    "create": "C",
    "update": "U",
    "patch": "U",
    "delete": "D",
    "$everything": "E",
    "$summary": "E",
    "$export": "E",
    "$break-glass": "E",
    "$import-xml130": "C",
}
OPERATIONS = {
    "$everything": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
    "$summary": "http://hl7.org/fhir/uv/ips/OperationDefinition/summary",
    "$export": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
    "$break-glass": "https://healthbook.vn/fhir/OperationDefinition/Patient-break-glass",
    "$import-xml130": "https://healthbook.vn/fhir/OperationDefinition/import-xml130",
}
# What a caller acts for when its token names no purpose (v3 ActReason).
DEFAULT_PURPOSE = {
    "citizen": "PATRQT",
    "guardian": "FAMRQT",
    "health-worker": "TREAT",
    "facility-system": "TREAT",
    "manager": "HOPERAT",
}
_PURPOSE_NAMES = {
    "PATRQT": "patient requested",
    "FAMRQT": "family requested",
    "TREAT": "treatment",
    "ETREAT": "Emergency Treatment",
    "HOPERAT": "healthcare operations",
    "PUBHLTH": "public health",
    "HPAYMT": "healthcare payment",
    "HRESCH": "healthcare research",
}
TRAIL_DETAILS = ("chain-seq", "chain-hash", "request-id")  # entity.detail types of the trail's own events
_OUTCOME_TEXT = {"4": "refused or not found: nothing of the record was shown"}


def action_of(interaction: str) -> str:
    """AuditEvent.action of an interaction (E for anything unforeseen)."""
    return ACTIONS.get(interaction, "E")


def _subtype(interaction: str) -> list[dict[str, Any]]:
    if interaction.startswith("$"):
        return [
            {"system": _INTERACTION, "code": "operation", "display": "operation"},
            {"system": "urn:ietf:rfc:3986", "code": OPERATIONS.get(interaction, interaction)},
        ]
    return [{"system": _INTERACTION, "code": interaction}]


def _agents(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    role = row["agent_role"]
    person: dict[str, Any] = {
        "type": {
            "coding": [
                {"system": _AGENT_TYPE, "code": "humanuser", "display": "human user"}
                if role != "facility-system"
                else {"system": _DICOM, "code": "110150", "display": "Application"}
            ]
        },
        "who": {
            "identifier": {
                "system": row["agent_issuer"] or "urn:healthbook:local",
                "value": row["agent_subject"],
            }
        },
        "requestor": True,
    }
    if row["agent_user"]:
        person["who"]["reference"] = row["agent_user"]
    if role:
        person["role"] = [{"coding": [{"system": ROLES, "code": role}]}]
    if row["purpose"]:
        person["purposeOfUse"] = [_purpose(row["purpose"])]
    agents = [person]
    if row["agent_facility"]:
        agents.append(
            {
                "type": {"coding": [{"system": _DICOM, "code": "110152", "display": "Destination Role ID"}]},
                "who": {"identifier": {"system": FACILITY_CODE, "value": row["agent_facility"]}},
                "requestor": False,
            }
        )
    if row["agent_client"]:
        agents.append(
            {
                "type": {"coding": [{"system": _DICOM, "code": "110150", "display": "Application"}]},
                "who": {"identifier": {"value": row["agent_client"]}},
                "requestor": False,
            }
        )
    return agents


def _purpose(code: str) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": _ACT_REASON, "code": code}
    if code in _PURPOSE_NAMES:
        coding["display"] = _PURPOSE_NAMES[code]
    return {"coding": [coding]}


def _entities(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    book: dict[str, Any] = {
        "what": {"reference": f"Patient/{row['patient_key']}"},
        "type": {"system": _ENTITY_TYPE, "code": "1", "display": "Person"},
        "role": {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"},
    }
    out: list[dict[str, Any]] = [book]
    if (
        row["res_type"]
        and row["res_id"]
        and (row["res_type"], row["res_id"]) != ("Patient", row["patient_key"])
    ):
        out.append(
            {
                "what": {"reference": f"{row['res_type']}/{row['res_id']}"},
                "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": _OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
            }
        )
    if row["query"]:
        out.append(
            {
                "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": _OBJECT_ROLE, "code": "24", "display": "Query"},
                "query": base64.b64encode(str(row["query"]).encode()).decode(),
            }
        )
    return out


def audit_event(row: Mapping[str, Any], *, server: str) -> dict[str, Any]:
    """The AuditEvent of one row; `server` names the observer (this healthbook instance)."""
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": row["event_id"],
        "meta": {"versionId": "1", "lastUpdated": to_instant(int(row["recorded"]))},
        "type": {"system": _EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
        "subtype": _subtype(str(row["interaction"])),
        "action": action_of(str(row["interaction"])),
        "recorded": to_instant(int(row["recorded"])),
        "outcome": row["outcome"],
    }
    if row["outcome"] in _OUTCOME_TEXT:
        event["outcomeDesc"] = _OUTCOME_TEXT[row["outcome"]]
    if row["purpose"]:
        event["purposeOfEvent"] = [_purpose(row["purpose"])]
    event["agent"] = _agents(row)
    event["source"] = {
        "observer": {"display": server},
        "type": [{"system": _SOURCE_TYPE, "code": "4", "display": "Application Server"}],
    }
    event["entity"] = _entities(row)
    # The link in the book's hash chain, so that a copy of the trail can be checked outside healthbook.
    event["entity"][0]["detail"] = [
        {"type": "chain-seq", "valueString": str(row["seq"])},
        {"type": "chain-hash", "valueString": str(row["hash"])},
    ]
    if row["request_id"]:
        event["entity"][0]["detail"].append({"type": "request-id", "valueString": str(row["request_id"])})
    return event
