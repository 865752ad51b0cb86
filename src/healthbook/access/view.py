"""What one caller may see, as one SQL condition on the owner columns of any statement over resources.

A resource is visible when it belongs to no patient (Organization, Practitioner, Medication ... filed under
a pseudo key '~Type') or when a valid grant of one of the caller's grantee names covers its book and type,
its date when the grant has a data range, and — unless the grant sees hidden records (own book, guardian,
emergency) — it is not hidden. The condition is correlated on patient_key only (Citus rule 4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256

from sqlalchemy import ColumnElement, and_, false, func, literal, or_, select

from healthbook.access.models import access_grant, access_hidden
from healthbook.auth.subject import Caller, Role
from healthbook.db.dialect import prefix_match
from healthbook.fhir.compartment import NO_PATIENT_PREFIX
from healthbook.fhir.search.sql import Own
from healthbook.fhir.store.schema import INDEX_TABLES

# Date search parameters that date a record for a consent's data range (the clinical date of the type).
CLINICAL_DATES = (
    "date",
    "authoredon",
    "recorded-date",
    "onset-date",
    "period",
    "occurrence",
    "issued",
    "created",
    "effective",
    "when-handed-over",
)
FEW_KEYS = 200  # up to this many books, the condition names them (the planner then seeks by key)
_FAR_FUTURE = 2**62


def subject_key(caller: Caller) -> str:
    """A health worker's own grantee name (break-glass): issuer and subject, hashed to a fixed length."""
    return "subject:" + sha256(f"{caller.issuer}|{caller.subject}".encode()).hexdigest()[:40]


def grantees(caller: Caller) -> tuple[str, ...]:
    """The grantee names a caller reads under (empty for managers: aggregates only)."""
    if caller.role in (Role.CITIZEN, Role.GUARDIAN) and caller.cccd:
        return (f"cccd:{caller.cccd}",)
    if caller.role is Role.HEALTH_WORKER and caller.facility:
        return (f"facility:{caller.facility}", subject_key(caller))
    if caller.role is Role.FACILITY_SYSTEM and caller.facility:
        return (f"facility:{caller.facility}",)
    return ()


@dataclass(frozen=True, slots=True)
class View:
    """A restricted caller's view at one instant: grantee names, and the books when they are few."""

    grantees: tuple[str, ...]
    now: int
    keys: tuple[str, ...] | None = None  # None: too many to name (a facility)

    def condition(self, own: Own) -> ColumnElement[bool]:
        """Visible: shared resources, or a valid grant covering the record (see module docstring)."""
        shared = prefix_match(own.pk, NO_PATIENT_PREFIX)
        if not self.grantees or self.keys == ():
            return shared
        granted = self._granted(own)
        if self.keys is not None:
            granted = and_(own.pk.in_(self.keys), granted)
        return or_(shared, granted)

    def _granted(self, own: Own) -> ColumnElement[bool]:
        g = access_grant.alias()
        h = access_hidden.alias()
        d = INDEX_TABLES["date"].alias()
        hidden = (
            select(literal(1))
            .where(h.c.patient_key == own.pk, h.c.res_type == own.type, h.c.res_id == own.id)
            .correlate_except(h)
            .exists()
        )
        dated = (
            select(literal(1))
            .where(
                d.c.patient_key == own.pk,
                d.c.res_type == own.type,
                d.c.res_id == own.id,
                d.c.param.in_(CLINICAL_DATES),
                d.c.high >= func.coalesce(g.c.data_from, 0),
                d.c.low <= func.coalesce(g.c.data_to, _FAR_FUTURE),
            )
            .correlate_except(d)
            .exists()
        )
        return (
            select(literal(1))
            .where(
                g.c.patient_key == own.pk,
                g.c.grantee.in_(self.grantees),
                or_(g.c.res_type == "*", g.c.res_type == own.type),
                or_(g.c.valid_from.is_(None), g.c.valid_from <= self.now),
                or_(g.c.valid_to.is_(None), g.c.valid_to > self.now),
                or_(g.c.sees_hidden, ~hidden),
                or_(
                    and_(g.c.data_from.is_(None), g.c.data_to.is_(None)),
                    own.type == "Patient",
                    dated,
                ),
            )
            .correlate_except(g)
            .exists()
        )


Condition = Callable[[Own], ColumnElement[bool]]


def nothing(own: Own) -> ColumnElement[bool]:
    """The condition of a caller who may see nothing at all (anonymous while auth is required)."""
    return false()
