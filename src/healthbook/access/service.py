"""Access control wired into the engine: grant hooks, the write guard, break-glass, the audit visibility rule."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from healthbook.access import derive, grants
from healthbook.access import repository as repo
from healthbook.access.guard import WriteGuard
from healthbook.access.models import access_grant, access_hidden
from healthbook.access.policy import RecordPolicy
from healthbook.access.view import grantees, subject_key
from healthbook.auth.subject import Caller, Role
from healthbook.db.dialect import prefix_match
from healthbook.errors import BadRequest, Forbidden, NotFound
from healthbook.fhir import jsonio
from healthbook.fhir.audit import Access
from healthbook.fhir.service import FhirService, check_id
from healthbook.fhir.store import sql_repository as store
from healthbook.fhir.store.sql_repository import StoredVersion
from healthbook.fhir.timeutil import now_us, to_instant
from healthbook.identity.systems import FACILITY_CODE as _FACILITY_SYSTEM

BREAK_GLASS_HOURS = 24
MAX_REASON = 500
AUDIT_BOOKS = 1000  # books whose access log one person reads (own and children's)
_NOTICE = "http://terminology.hl7.org/CodeSystem/communication-category"
_INTERNAL = Caller.system("access")
# Records that make grants, in an order where what a record needs is there already.
REBUILT_TYPES = ("Patient", "RelatedPerson", "Encounter", "Consent")


@dataclass(frozen=True, slots=True)
class BreakGlass:
    """An emergency access granted: until when, and the notice the citizen was sent."""

    patient_id: str
    grant_id: str
    expires: int
    notice_id: str


class AccessService:
    """Installs the access rules on the FHIR service and answers the access questions of other packages."""

    def __init__(
        self, fhir: FhirService, policy: RecordPolicy, *, break_glass_hours: float = BREAK_GLASS_HOURS
    ):
        self.fhir = fhir
        self.policy = policy
        self.break_glass_hours = break_glass_hours

    def install(self) -> None:
        """Keep grants in step with every write, and guard every write."""
        self.fhir.write_hooks.append(grants.on_write)
        self.fhir.body_checks.append(derive.consent_warnings)
        self.fhir.write_guards.append(WriteGuard(self.policy))

    def has_grants(self) -> bool:
        """Whether any grant is stored (a database from before access control has none)."""
        with self.fhir.db.read() as conn:
            return conn.execute(select(access_grant.c.patient_key).limit(1)).first() is not None

    def rebuild(self, on_progress: Callable[[int], None] | None = None) -> int:
        """Derive every grant and hiding afresh from the stored records (after an upgrade or a repair)."""
        done = 0
        with self.fhir.db.write() as conn:
            conn.execute(delete(access_grant).where(~prefix_match(access_grant.c.grant_id, "break-glass:")))
            conn.execute(delete(access_hidden))
        for rtype in REBUILT_TYPES:
            after = ""
            while True:
                with self.fhir.db.write() as conn:
                    rows = store.live_of_type(conn, rtype, after, 500)
                    for row in rows:
                        version = StoredVersion(row[0], rtype, row[1], 1, row[2], False, row[3])
                        grants.on_write(conn, version, jsonio.loads(row[3]), None)
                if not rows:
                    break
                after = rows[-1][1]
                done += len(rows)
                if on_progress is not None:
                    on_progress(done)
        return done

    def audit_books(self, caller: Caller) -> list[str] | None:
        """Whose access logs a caller reads: None = every book (in-process tools, auth off), else own books.

        Own books are those the caller sees in full (own, children's): a proxy named by consent, a health
        worker, a facility system or a manager reads no access log.
        """
        if self.policy.unrestricted(caller):
            return None
        if caller.role not in (Role.CITIZEN, Role.GUARDIAN) or not caller.authenticated:
            raise Forbidden("Only the citizen, or a guardian, reads the access log of a health book")
        with self.fhir.db.read() as conn:
            return repo.granted_books(conn, grantees(caller), now_us(), AUDIT_BOOKS, sees_hidden=True)

    def emergency_books(self, conn: Connection, caller: Caller, books: Sequence[str]) -> set[str]:
        """The books a health worker reads under break-glass now (their accesses are for ETREAT)."""
        if caller.role is not Role.HEALTH_WORKER or not caller.authenticated or not books:
            return set()
        return repo.emergency_books(conn, subject_key(caller), books, now_us())

    def break_glass(self, caller: Caller, patient_id: str, reason: Any) -> BreakGlass:
        """Emergency access for one health worker to one book, for a limited time; the citizen is told."""
        self.policy.check(caller, "break-glass", "Patient")
        check_id(patient_id)
        if caller.role is not Role.HEALTH_WORKER or not caller.facility:
            raise Forbidden("Only a health worker of a facility can declare an emergency access")
        if not isinstance(reason, str) or not reason.strip():
            raise BadRequest("An emergency access needs a reason", expression="Parameters.parameter[reason]")
        reason = reason.strip()[:MAX_REASON]
        now = now_us()
        expires = now + int(self.break_glass_hours * 3600 * 1_000_000)
        grant_id = f"break-glass:{uuid.uuid4()}"
        with self.fhir.db.write() as conn:
            patient = store.current(conn, patient_id, "Patient", patient_id)
            if patient is None or patient.deleted:
                raise NotFound(f"Patient/{patient_id} is not known")
            repo.add_grant(
                conn,
                {
                    "patient_key": patient_id,
                    "grantee": subject_key(caller),
                    "grant_id": grant_id,
                    "res_type": "*",
                    "sees_hidden": True,
                    "valid_from": now,
                    "valid_to": expires,
                    "data_from": None,
                    "data_to": None,
                    "purpose": "ETREAT",
                },
            )
            notice = self._notice(conn, caller, patient_id, reason, expires)
            declared = Access(patient_id, "$break-glass", "Patient", patient_id, purpose="ETREAT")
            self.fhir.audit.record(caller, [declared], conn)
        return BreakGlass(patient_id, grant_id, expires, notice)

    def _notice(self, conn: Connection, caller: Caller, patient_id: str, reason: str, expires: int) -> str:
        """A Communication to the citizen in his or her own book, written with the grant."""
        until = dt.datetime.fromtimestamp(expires / 1e6, dt.UTC).astimezone(
            dt.timezone(dt.timedelta(hours=7))
        )
        when = until.strftime("%H:%M %d/%m/%Y")
        text = (
            f"Một nhân viên y tế của cơ sở {caller.facility} đã mở sổ sức khỏe của bạn trong tình huống "
            f"khẩn cấp (lý do: {reason}). Quyền truy cập hết hạn lúc {when}. / A health worker of facility "
            f"{caller.facility} opened your health book in an emergency (reason: {reason}); the access "
            f"ends at {when}."
        )
        notice_id = str(uuid.uuid4())
        body = {
            "resourceType": "Communication",
            "status": "completed",
            "category": [{"coding": [{"system": _NOTICE, "code": "alert", "display": "Alert"}]}],
            "priority": "urgent",
            "subject": {"reference": f"Patient/{patient_id}"},
            "recipient": [{"reference": f"Patient/{patient_id}"}],
            "sender": {"identifier": {"system": _FACILITY_SYSTEM, "value": caller.facility}},
            "sent": to_instant(now_us()),
            "reasonCode": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                            "code": "ETREAT",
                            "display": "Emergency Treatment",
                        }
                    ]
                }
            ],
            "payload": [{"contentString": text}],
        }
        checked, _ = self.fhir._checked_body("Communication", body, None)
        self.fhir._store(conn, _INTERNAL, checked, notice_id, None, "POST")
        return notice_id
