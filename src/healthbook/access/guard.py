"""Who may write what: a citizen records consents for his or her own book (or a child's); a facility writes
only data attributed to its own facility code; a manager writes nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from healthbook.access import derive
from healthbook.access import repository as repo
from healthbook.access.grants import encounter_facility, facility_of
from healthbook.access.policy import RecordPolicy
from healthbook.access.view import grantees
from healthbook.auth.subject import Caller, Role
from healthbook.errors import Forbidden
from healthbook.fhir import jsonio
from healthbook.fhir.compartment import NO_PATIENT_PREFIX
from healthbook.fhir.store import sql_repository as store
from healthbook.fhir.store.sql_repository import StoredVersion
from healthbook.fhir.timeutil import now_us
from healthbook.identity import systems

# Shared resources that belong to one facility through this element.
_OWNED_BY = {
    "Location": "managingOrganization",
    "PractitionerRole": "organization",
    "HealthcareService": "providedBy",
}


class WriteGuard:
    """The FhirService write guard of a server with access control."""

    def __init__(self, policy: RecordPolicy):
        self.policy = policy

    def __call__(
        self,
        conn: Connection,
        caller: Caller,
        key: str,
        doc: dict[str, Any] | None,
        cur: StoredVersion | None,
    ) -> None:
        """Refuse (403) a write the caller may not make; the current version is judged as well as the new."""
        if self.policy.unrestricted(caller):
            return
        versions: list[tuple[str, dict[str, Any]]] = []
        if doc is not None:
            versions.append((key, doc))
        if cur is not None and not cur.deleted and cur.content is not None:
            versions.append((cur.patient_key, jsonio.loads(cur.content)))
        if caller.role in (Role.CITIZEN, Role.GUARDIAN):
            for book, version in versions:
                self._citizen(conn, caller, book, version)
        elif caller.role in (Role.HEALTH_WORKER, Role.FACILITY_SYSTEM) and caller.facility:
            for book, version in versions:
                self._facility(conn, caller.facility, book, version, new=cur is None or cur.deleted)
        else:
            raise Forbidden("This caller may not write health records")

    def _citizen(self, conn: Connection, caller: Caller, book: str, version: dict[str, Any]) -> None:
        if version.get("resourceType") != "Consent":
            raise Forbidden("A citizen records consents (Consent) only; the facilities record the care")
        if not repo.has_grant(conn, book, grantees(caller), now_us(), sees_hidden=True):
            raise Forbidden("A citizen records consents only for his or her own book or a child's")

    def _facility(
        self, conn: Connection, code: str, book: str, version: dict[str, Any], *, new: bool
    ) -> None:
        rtype = str(version.get("resourceType"))
        if rtype == "Consent":
            raise Forbidden("Consents are the citizen's to give: a facility cannot record them")
        if rtype == "Organization":
            if derive.identifier(version, systems.FACILITY_CODE) != code:
                raise Forbidden(f"A facility writes only its own Organization (facility code {code})")
            return
        if rtype in _OWNED_BY:
            ref, system, value = derive.reference_of(version.get(_OWNED_BY[rtype]))
            owner = facility_of(conn, ref, value if system == systems.FACILITY_CODE else None)
            if owner != code:
                raise Forbidden(f"{rtype}.{_OWNED_BY[rtype]} must be this facility ({code})")
            return
        if book.startswith(NO_PATIENT_PREFIX):
            return  # reference data: Practitioner, Medication, Substance ...
        if rtype == "Encounter":
            if encounter_facility(conn, version) != code:
                raise Forbidden(f"Encounter.serviceProvider must be this facility ({code})")
            return
        encounters = derive.encounter_ids(version)
        if encounters:
            for eid in encounters:
                key = store.locate(conn, "Encounter", eid)
                cur = store.current(conn, key, "Encounter", eid) if key else None
                found = jsonio.loads(cur.content) if cur is not None and cur.content else None
                if found is None or encounter_facility(conn, found) != code:
                    raise Forbidden(f"The record's Encounter/{eid[:64]} is not an encounter at this facility")
            return
        if rtype == "Patient" and new:
            return  # registering a new citizen
        if not repo.has_grant(conn, book, [f"facility:{code}"], now_us()):
            raise Forbidden(
                "This facility has no encounter with the patient: record the Encounter first, "
                "or refer the record to one of this facility's encounters"
            )
