"""Who is asking: every service call takes a Caller, and the policy decides (deny by default)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from healthbook.auth.scopes import EMPTY, ScopeSet
from healthbook.errors import Forbidden

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import ColumnElement
    from sqlalchemy.engine import Connection

    # A condition on the owner columns (healthbook.fhir.search.sql.Own) of any statement over resources.
    Condition = Callable[[Any], ColumnElement[bool]]

ANONYMOUS = "anonymous"


class Role(StrEnum):
    """What the person or system behind a token acts as (the role claim, README "Authentication")."""

    CITIZEN = "citizen"  # a person acting for himself or herself
    GUARDIAN = "guardian"  # a person acting for someone else: a parent for a child, a named proxy
    HEALTH_WORKER = "health-worker"  # staff of one facility
    FACILITY_SYSTEM = "facility-system"  # a facility's software (client credentials), no person behind it
    MANAGER = "manager"  # health administration: aggregates of an area


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated (or explicitly anonymous) party behind a request.

    Only `subject` is required, so in-process callers stay one-liners; everything else comes from a
    verified access token (auth.tokens) and is None/empty otherwise.
    """

    subject: str
    roles: frozenset[str] = field(default_factory=frozenset)
    purpose: str | None = None
    issuer: str | None = None  # `iss` of the token; None for anonymous and in-process callers
    role: Role | None = None
    scopes: ScopeSet = EMPTY
    fhir_user: str | None = None  # "Practitioner/123", "Patient/456", "RelatedPerson/789" (relative)
    patient: str | None = None  # the Patient id of the launch context (SMART `patient`)
    facility: str | None = None  # 5-character facility code of a health worker or facility system
    province: str | None = None  # 2-digit province code of a manager's area
    cccd: str | None = field(default=None, repr=False)  # personal ID number: never in logs or reprs
    client_id: str | None = None  # the OAuth client (app or facility system) that obtained the token
    request_id: str | None = None  # the HTTP request's id (X-Request-ID), for the audit trail

    @staticmethod
    def system(name: str) -> Caller:
        """A trusted in-process caller: the CLI, importers, the demo loader."""
        return Caller(subject=f"system:{name}", roles=frozenset({"system"}))

    @property
    def authenticated(self) -> bool:
        """Whether the caller was established by a verified access token."""
        return self.issuer is not None

    @property
    def in_process(self) -> bool:
        """A trusted in-process system caller (Caller.system), not one claimed by a token."""
        return "system" in self.roles and not self.authenticated


class AccessPolicy(Protocol):
    """Decides whether a caller may perform an interaction on a resource type, and what it may see."""

    def check(self, caller: Caller | None, interaction: str, res_type: str | None) -> None:
        """Raise Forbidden unless allowed."""

    def condition(self, conn: Connection, caller: Caller) -> Condition | None:
        """The records this caller may see, as a condition on owner columns; None when it sees everything."""

    def sees(self, conn: Connection, caller: Caller, key: str, res_type: str, res_id: str) -> bool | None:
        """Whether the caller sees one record, when that is quick to tell; None: apply condition()."""


class OpenPolicy:
    """Grants every interaction to any identified caller; used until access control is configured."""

    def check(self, caller: Caller | None, interaction: str, res_type: str | None) -> None:
        """Only an unidentified call is refused."""
        if caller is None:
            raise Forbidden("No caller identity attached to the request")

    def condition(self, conn: Connection, caller: Caller) -> Condition | None:
        """Everything is visible."""
        return None

    def sees(self, conn: Connection, caller: Caller, key: str, res_type: str, res_id: str) -> bool | None:
        """As condition(): everything."""
        return True


class SystemOnlyPolicy:
    """Grants every interaction to in-process system callers and nothing to anyone else."""

    def check(self, caller: Caller | None, interaction: str, res_type: str | None) -> None:
        """Deny unless the caller is a system caller."""
        if caller is None or "system" not in caller.roles:
            raise Forbidden(f"Not allowed to {interaction} {res_type or 'resources'}")

    def condition(self, conn: Connection, caller: Caller) -> Condition | None:
        """System callers see everything (check() has refused the others)."""
        return None

    def sees(self, conn: Connection, caller: Caller, key: str, res_type: str, res_id: str) -> bool | None:
        """As condition(): everything."""
        return True
