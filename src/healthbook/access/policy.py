"""The production access policy: deny by default, by role and token scopes, then record by record.

The type-level check (`check`) says whether a caller may attempt an interaction at all; `condition` gives
the records the caller may see, which every read path applies (search pages, counts, chains, _has,
includes, history, $everything, $summary, $export, the health-book pages), so that what is restricted is
filtered out rather than merely refused, and never shows in a count or an error message.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from healthbook.access import repository as repo
from healthbook.access.view import FEW_KEYS, Condition, View, grantees, nothing
from healthbook.auth.scopes import INTERACTION_PERMISSIONS, Context, scope_allows
from healthbook.auth.subject import ANONYMOUS, Caller, Role
from healthbook.errors import Forbidden
from healthbook.fhir.compartment import NO_PATIENT_PREFIX
from healthbook.fhir.timeutil import now_us

_READS = frozenset({"read", "vread", "history-instance", "search", "search-type", "search-system"})
_WRITES = frozenset({"create", "update", "patch", "delete"})
# What each role may attempt; the record-level rules (views, write guard) then decide what it touches.
ROLE_INTERACTIONS: dict[Role, frozenset[str]] = {
    Role.CITIZEN: _READS | _WRITES | {"everything", "summary", "book"},
    Role.GUARDIAN: _READS | _WRITES | {"everything", "summary", "book"},
    Role.HEALTH_WORKER: _READS | _WRITES | {"everything", "summary", "book", "break-glass"},
    Role.FACILITY_SYSTEM: _READS | _WRITES | {"everything", "summary", "export", "import", "import-xml130"},
    Role.MANAGER: _READS | {"report"},
}
SCOPE_CONTEXT: dict[Role, Context] = {
    Role.CITIZEN: "patient",
    Role.GUARDIAN: "patient",
    Role.HEALTH_WORKER: "user",
    Role.MANAGER: "user",
    Role.FACILITY_SYSTEM: "system",
}
_SCOPE_NAME = {"summary": "everything", "book": "everything", "import-xml130": "import"}


class RecordPolicy:
    """AccessPolicy of a server with access control on (and of one with it off, for in-process callers)."""

    def __init__(self, *, auth_required: bool):
        self.auth_required = auth_required

    def unrestricted(self, caller: Caller | None) -> bool:
        """In-process system callers, and the anonymous caller of a server whose auth is off (development)."""
        if caller is None:
            return False
        if caller.in_process:
            return True
        return not self.auth_required and caller.subject == ANONYMOUS and not caller.authenticated

    def check(self, caller: Caller | None, interaction: str, res_type: str | None) -> None:
        """Refuse what the caller's role or token scopes do not allow (403), whatever the records."""
        if self.unrestricted(caller):
            return
        if caller is None or not caller.authenticated or caller.role is None:
            raise Forbidden("An access token is required for this")
        allowed = ROLE_INTERACTIONS.get(caller.role, frozenset())
        if interaction not in allowed:
            what = res_type or "resources"
            raise Forbidden(f"The role '{caller.role.value}' may not {interaction} {what}")
        name = _SCOPE_NAME.get(interaction, interaction)
        if name in INTERACTION_PERMISSIONS and not scope_allows(
            caller.scopes, SCOPE_CONTEXT[caller.role], res_type, name
        ):
            what = res_type or "all resource types"
            raise Forbidden(f"The access token's scopes do not allow {interaction} on {what}")

    def sees(self, conn: Connection, caller: Caller, key: str, res_type: str, res_id: str) -> bool | None:
        """Whether the caller sees one record, decided from its book's grants; None: ask condition().

        The same rule as View.condition for one record, in one indexed lookup instead of a statement
        built per call (a read, a write's check): None only when a grant limited to a data period
        could decide, which takes the record's clinical dates.
        """
        if self.unrestricted(caller):
            return True
        if not caller.authenticated:
            return False  # nothing at all, shared records included
        if key.startswith(NO_PATIENT_PREFIX):
            return True
        names = grantees(caller)
        if not names:
            return False
        covering = repo.book_grants(conn, key, names, now_us(), res_type, res_id)
        undated = [g for g in covering if (g[2] is None and g[3] is None) or res_type == "Patient"]
        if any(g[1] or not g[4] for g in undated):  # sees hidden records, or this one is not hidden
            return True
        return False if len(undated) == len(covering) else None

    def condition(self, conn: Connection, caller: Caller) -> Condition | None:
        """None for unrestricted callers; otherwise the View of the caller's grants, now."""
        if self.unrestricted(caller):
            return None
        if not caller.authenticated:
            return nothing
        names = grantees(caller)
        now = now_us()
        if not names:
            return View((), now).condition
        keys = repo.granted_books(conn, names, now, FEW_KEYS + 1)
        return View(names, now, tuple(keys) if len(keys) <= FEW_KEYS else None).condition
