"""SMART App Launch scopes: parse v2 (`patient/*.rs`) and v1 (`patient/*.read`) forms and answer what they allow.

Grammar (SMART App Launch 2.x, "Scopes and Launch Context"): ``context/Type.permissions[?param=value&...]``
where context is ``patient``, ``user`` or ``system``, Type is a FHIR resource type or ``*``, and permissions are
the letters ``c r u d s`` in that order, each at most once (v2), or ``read`` / ``write`` / ``*`` (v1).
Scopes that are not resource scopes (``openid``, ``fhirUser``, ``launch/patient``, ``offline_access`` ...)
are kept by name. A resource scope that does not parse grants nothing: deny by default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl

Context = Literal["patient", "user", "system"]
CONTEXTS: tuple[Context, ...] = ("patient", "user", "system")
PERMISSION_ORDER = "cruds"

_SCOPE = re.compile(r"(patient|user|system)/(\*|[A-Z][A-Za-z]{0,63})\.([a-z*]+)(?:\?(.*))?", re.DOTALL)
_V1 = {"read": frozenset("rs"), "write": frozenset("cud"), "*": frozenset("cruds")}

# The SMART permission letters each healthbook interaction needs (all of them). The service layer passes
# these interaction names to AccessPolicy.check; the FHIR names of the capability statement work too.
INTERACTION_PERMISSIONS: dict[str, frozenset[str]] = {
    "read": frozenset("r"),
    "vread": frozenset("r"),
    "history-instance": frozenset("r"),
    "everything": frozenset("rs"),
    "search": frozenset("s"),
    "search-type": frozenset("s"),
    "search-system": frozenset("s"),
    "history-type": frozenset("s"),
    "history-system": frozenset("s"),
    "history": frozenset("rs"),  # the level is not known: ask for both
    "export": frozenset("rs"),
    "report": frozenset("s"),
    "create": frozenset("c"),
    "update": frozenset("u"),
    "patch": frozenset("u"),
    "delete": frozenset("d"),
    "import": frozenset("cu"),
}


@dataclass(frozen=True, slots=True)
class SmartScope:
    """One resource scope: who it speaks for, which type, which permissions, and optional search restrictions."""

    context: Context
    resource_type: str  # a FHIR resource type, or "*" for all
    permissions: frozenset[str]  # subset of "cruds"
    params: tuple[tuple[str, str], ...] = ()  # v2 granular scope: only resources matching these parameters

    def __str__(self) -> str:
        perms = "".join(p for p in PERMISSION_ORDER if p in self.permissions)
        query = "&".join(f"{k}={v}" for k, v in self.params)
        return f"{self.context}/{self.resource_type}.{perms}" + (f"?{query}" if query else "")

    def covers(self, resource_type: str | None) -> bool:
        """Whether the scope names this type (a wildcard scope covers every type and type-less calls)."""
        return self.resource_type == "*" or (
            resource_type is not None and self.resource_type == resource_type
        )


@dataclass(frozen=True, slots=True)
class ScopeSet:
    """The scopes a token grants: resource scopes parsed, the other scope names kept as given."""

    resource: frozenset[SmartScope] = frozenset()
    other: frozenset[str] = frozenset()

    def __iter__(self) -> Iterator[SmartScope]:
        return iter(self.resource)

    def __bool__(self) -> bool:
        return bool(self.resource or self.other)

    def names(self) -> list[str]:
        """Every granted scope as text, sorted (for a token response or an audit record)."""
        return sorted([str(s) for s in self.resource] + list(self.other))


EMPTY = ScopeSet()


def parse_scope(text: str) -> SmartScope | None:
    """One resource scope, or None when `text` is not a (well-formed) resource scope."""
    m = _SCOPE.fullmatch(text)
    if m is None:
        return None
    context, rtype, perms, query = m.group(1), m.group(2), m.group(3), m.group(4)
    if perms in _V1:
        if query is not None:
            return None  # v1 scopes have no query part
        letters = _V1[perms]
    else:
        if not _ordered(perms):
            return None
        letters = frozenset(perms)
    params: tuple[tuple[str, str], ...] = ()
    if query is not None:
        pairs = parse_qsl(query, keep_blank_values=False, strict_parsing=False)
        if not pairs:
            return None
        params = tuple(sorted(pairs))
    return SmartScope(context, rtype, letters, params)  # type: ignore[arg-type]


def _ordered(perms: str) -> bool:
    """v2 permissions: non-empty, only c r u d s, in that order, no repeats."""
    pos = -1
    for letter in perms:
        i = PERMISSION_ORDER.find(letter)
        if i <= pos:
            return False
        pos = i
    return bool(perms)


def parse_scopes(value: str | Iterable[str] | None) -> ScopeSet:
    """The `scope` claim (space-separated string) or `scp` claim (list) as a ScopeSet."""
    if value is None:
        return EMPTY
    words = (
        value.split()
        if isinstance(value, str)
        else [w for v in value if isinstance(v, str) for w in v.split()]
    )
    resource: set[SmartScope] = set()
    other: set[str] = set()
    for word in words:
        parsed = parse_scope(word)
        if parsed is not None:
            resource.add(parsed)
        elif not word.startswith(("patient/", "user/", "system/")):
            other.add(word)  # openid, fhirUser, launch, launch/patient, offline_access ...
        # a malformed resource scope ("patient/Observation.rx") grants nothing and is dropped
    return ScopeSet(frozenset(resource), frozenset(other))


def _needed(interaction: str) -> frozenset[str]:
    if interaction in INTERACTION_PERMISSIONS:
        return INTERACTION_PERMISSIONS[interaction]
    if interaction and _ordered(interaction):
        return frozenset(interaction)  # given as SMART letters ("rs")
    raise ValueError(f"unknown interaction {interaction!r}")


def _matching(
    scopes: Iterable[SmartScope], context: Context | None, resource_type: str | None, needed: frozenset[str]
) -> list[SmartScope]:
    return [
        s
        for s in scopes
        if (context is None or s.context == context) and s.covers(resource_type) and needed <= s.permissions
    ]


def scope_allows(
    scopes: Iterable[SmartScope], context: Context | None, resource_type: str | None, interaction: str
) -> bool:
    """True when some scope of `context` (any context if None) grants `interaction` on the whole type.

    `interaction` is a healthbook/FHIR interaction name (read, search, create, update, patch, delete, history,
    everything, export ...) or SMART letters ("rs"). `resource_type` None stands for a call that is not about
    one type (system search or history, $export): only wildcard scopes grant those. Granular scopes
    (``patient/Observation.rs?category=laboratory``) do not count here, because they allow only part of the
    type: use scope_restrictions to apply them as search filters.
    """
    needed = _needed(interaction)
    # Every needed letter may come from a different full scope ("patient/*.r" + "patient/*.s" = "rs").
    full = [s for s in scopes if not s.params]
    return all(_matching(full, context, resource_type, frozenset(letter)) for letter in needed)


def scope_restrictions(
    scopes: Iterable[SmartScope], context: Context | None, resource_type: str | None, interaction: str
) -> tuple[tuple[tuple[str, str], ...], ...] | None:
    """What the scopes allow of `interaction` on `resource_type`: None (nothing), () (everything), or filters.

    Filters are alternatives (a resource is allowed when it matches all the parameters of at least one of
    them), each a tuple of (search parameter, value) pairs taken from granular scopes.
    """
    scopes = list(scopes)
    if scope_allows(scopes, context, resource_type, interaction):
        return ()
    needed = _needed(interaction)
    filters = sorted({s.params for s in _matching(scopes, context, resource_type, needed) if s.params})
    return tuple(filters) if filters else None
