"""Who may read a health book, read off the records themselves (pure functions, no database).

* A Patient's own personal identification number (CCCD) opens the book to that citizen.
* A RelatedPerson who is a parent or guardian, identified by CCCD, opens the child's book while the
  relationship's period lasts (and until the child turns 18, added by the service).
* An Encounter opens the book to the facility that provided it (`serviceProvider`).
* A Consent of scope `patient-privacy` (modelled on India's ABDM consent artefact: purpose, data types,
  data date range, expiry, requesting facility) permits named actors and hides named records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from healthbook.fhir.outcomes import Issue
from healthbook.fhir.search.values import date_range
from healthbook.identity import systems

# v3 RoleCode: parents and guardians, who act for a minor (Luật Trẻ em 2016, Bộ luật Dân sự 2015 art. 136).
GUARDIAN_CODES = frozenset(
    {
        "MTH",
        "FTH",
        "PRN",
        "NMTH",
        "NFTH",
        "NPRN",
        "GUARD",
        "STPMTH",
        "STPFTH",
        "STPPRN",
        "ADOPTMTH",
        "ADOPTFTH",
    }
)
PRIVACY_SCOPE = "patient-privacy"
RESOURCE_TYPES_SYSTEM = "http://hl7.org/fhir/resource-types"


@dataclass(frozen=True, slots=True)
class Actor:
    """Someone a consent names: by facility code or CCCD directly, or by a reference to resolve."""

    facility: str | None = None
    cccd: str | None = None
    reference: str | None = None  # "Organization/1", "RelatedPerson/2", "Patient/3"
    path: str = "Consent.provision.actor"


@dataclass(frozen=True, slots=True)
class Permit:
    """One permit provision: who, which resource types ('*' = all), validity, data range, purpose."""

    actors: tuple[Actor, ...]
    types: tuple[str, ...]
    valid_from: int | None
    valid_to: int | None
    data_from: int | None
    data_to: int | None
    purpose: str | None


@dataclass(frozen=True, slots=True)
class ConsentRules:
    """What an active privacy consent does: the grants it makes, the records it hides, what it cannot do."""

    permits: tuple[Permit, ...] = ()
    hidden: tuple[tuple[str, str], ...] = ()  # (type, id) of the records the citizen hid
    # (message, path) of provisions healthbook stores but does not enforce (returned as warnings)
    unenforced: tuple[tuple[str, str], ...] = ()


def identifier(resource: dict[str, Any], system: str) -> str | None:
    """The value of the first identifier of `system` (current, i.e. not `old`)."""
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == system and ident.get("use") != "old":
            value = ident.get("value")
            if isinstance(value, str) and value:
                return value
    return None


def _period(value: Any) -> tuple[int | None, int | None]:
    if not isinstance(value, dict):
        return None, None
    start, end = value.get("start"), value.get("end")
    lo = date_range(start)[0] if isinstance(start, str) else None
    hi = date_range(end)[1] if isinstance(end, str) else None
    return lo, hi


def guardian(related: dict[str, Any]) -> tuple[str, int | None, int | None] | None:
    """(CCCD, valid from, valid to) when a RelatedPerson is an active parent or guardian with a CCCD."""
    if related.get("active") is False:
        return None
    codes = {
        c.get("code")
        for rel in related.get("relationship") or []
        if isinstance(rel, dict)
        for c in rel.get("coding") or []
        if isinstance(c, dict)
    }
    cccd = identifier(related, systems.CCCD)
    if cccd is None or not codes & GUARDIAN_CODES:
        return None
    lo, hi = _period(related.get("period"))
    return cccd, lo, hi


def reference_of(value: Any) -> tuple[str | None, str | None, str | None]:
    """(literal reference, identifier system, identifier value) of a Reference."""
    if not isinstance(value, dict):
        return None, None, None
    ref = value.get("reference") if isinstance(value.get("reference"), str) else None
    ident = value.get("identifier")
    if not isinstance(ident, dict):
        ident = {}
    system, code = ident.get("system"), ident.get("value")
    return ref, system if isinstance(system, str) else None, code if isinstance(code, str) else None


def service_provider(encounter: dict[str, Any]) -> tuple[str | None, str | None]:
    """(literal reference, facility code given inline) of an Encounter's serviceProvider."""
    ref, system, code = reference_of(encounter.get("serviceProvider"))
    return ref, code if system == systems.FACILITY_CODE else None


def encounter_ids(doc: dict[str, Any]) -> list[str]:
    """Ids of the Encounters a record belongs to (`encounter`, or DocumentReference.context.encounter)."""
    refs: list[Any] = [doc.get("encounter")]
    context = doc.get("context")
    if isinstance(context, dict):
        found = context.get("encounter")
        refs += found if isinstance(found, list) else [found]
    elif isinstance(context, list):
        refs += context
    ids = []
    for value in refs:
        ref, _, _ = reference_of(value)
        if ref and ref.startswith("Encounter/"):
            ids.append(ref.split("/", 1)[1])
    return ids


ACTOR_KINDS = (
    "a consent actor is enforced when it is a facility (Organization, or an identifier of system "
    f"{systems.FACILITY_CODE}) or a person (Patient/RelatedPerson, or an identifier of system {systems.CCCD})"
)


def _actor(value: Any, path: str) -> Actor | None:
    ref, system, code = reference_of(value.get("reference") if isinstance(value, dict) else None)
    if system == systems.FACILITY_CODE and code:
        return Actor(facility=code, path=path)
    if system == systems.CCCD and code:
        return Actor(cccd=code, path=path)
    if ref and ref.count("/") == 1 and ref.split("/", 1)[0] in ("Organization", "RelatedPerson", "Patient"):
        return Actor(reference=ref, path=path)
    return None


def _types(provision: dict[str, Any]) -> tuple[str, ...] | None:
    """The resource types a provision's classes name; None when a class is not a resource type."""
    types = []
    for c in provision.get("class") or []:
        if not isinstance(c, dict) or c.get("system") not in (RESOURCE_TYPES_SYSTEM, None):
            return None
        if isinstance(c.get("code"), str):
            types.append(c["code"])
    return tuple(sorted(set(types))) or ("*",)


def _purpose(provision: dict[str, Any]) -> str | None:
    for p in provision.get("purpose") or []:
        if isinstance(p, dict) and isinstance(p.get("code"), str):
            return str(p["code"])[:64]
    return None


def is_privacy_consent(consent: dict[str, Any]) -> bool:
    """Whether a Consent is about access to the record (scope patient-privacy)."""
    scope = consent.get("scope")
    if not isinstance(scope, dict):
        return False
    return any(isinstance(c, dict) and c.get("code") == PRIVACY_SCOPE for c in scope.get("coding") or [])


def consent_rules(consent: dict[str, Any]) -> ConsentRules:
    """The grants and hidings of a Consent; nothing unless it is an active privacy consent.

    Enforced: a permit provision naming actors (top level or nested), with optional class (resource types),
    period (validity), dataPeriod (which data) and purpose; a deny provision naming records in `data`
    (hide them); a deny without actors or data (the default, "deny unless permitted below"). Any other
    provision (deny of named actors, permit of single records, classes that are not resource types, a
    permit without actors) is stored but not enforced, and reported in `unenforced`: access stays denied
    unless something else grants it, so an unenforced provision never opens anything.
    """
    if consent.get("status") != "active" or not is_privacy_consent(consent):
        return ConsentRules()
    top = consent.get("provision")
    if not isinstance(top, dict):
        return ConsentRules()
    permits: list[Permit] = []
    hidden: list[tuple[str, str]] = []
    unenforced: list[tuple[str, str]] = []

    def walk(provision: dict[str, Any], path: str, outer: tuple[int | None, int | None]) -> None:
        kind = provision.get("type", "permit" if path == "Consent.provision" else None)
        actors = provision.get("actor") or []
        data = provision.get("data") or []
        lo, hi = _period(provision.get("period"))
        lo = lo if lo is not None else outer[0]
        hi = hi if hi is not None else outer[1]
        if kind == "deny":
            if actors:
                unenforced.append(
                    ("denying named actors is not enforced: access is denied unless permitted; a permit is "
                     "revoked by setting its consent's status to inactive", f"{path}.actor")
                )  # fmt: skip
            for n, d in enumerate(data):
                ref, _, _ = reference_of(d.get("reference") if isinstance(d, dict) else None)
                if ref and ref.count("/") == 1:
                    rtype, rid = ref.split("/")
                    hidden.append((rtype, rid))
                else:
                    unenforced.append(
                        ("a hidden record is enforced when given as a relative reference Type/id",
                         f"{path}.data[{n}].reference")
                    )  # fmt: skip
        elif kind == "permit":
            types = _types(provision)
            if data:
                unenforced.append(("permitting single records is not enforced", f"{path}.data"))
            elif types is None:
                unenforced.append(
                    (f"a permit is enforced for classes of system {RESOURCE_TYPES_SYSTEM}", f"{path}.class")
                )
            elif actors:
                found = []
                for n, a in enumerate(actors):
                    actor = _actor(a, f"{path}.actor[{n}]")
                    if actor is None:
                        unenforced.append((ACTOR_KINDS, f"{path}.actor[{n}].reference"))
                    else:
                        found.append(actor)
                if found:
                    d_lo, d_hi = _period(provision.get("dataPeriod"))
                    permits.append(Permit(tuple(found), types, lo, hi, d_lo, d_hi, _purpose(provision)))
            elif not provision.get("provision"):
                unenforced.append(("a permit without actor opens nothing", f"{path}.actor"))
        for n, child in enumerate(provision.get("provision") or []):
            if isinstance(child, dict):
                walk(child, f"{path}.provision[{n}]", (lo, hi))

    walk(top, "Consent.provision", (None, None))
    return ConsentRules(tuple(permits), tuple(dict.fromkeys(hidden)), tuple(unenforced))


def consent_warnings(resource: dict[str, Any]) -> list[Issue]:
    """A body check: what of a privacy consent will not be enforced, as warnings (the consent is stored)."""
    if resource.get("resourceType") != "Consent":
        return []
    rules = consent_rules(resource)
    return [Issue("warning", "not-supported", message, path) for message, path in rules.unenforced]
