"""A patient's resources indexed by reference, with the facility and date each one came from."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from healthbook.book.dates import clinical_date

Resource = dict[str, Any]
_REF = re.compile(r"(?:^|/)([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$")

# Where the facility of each type is named, in order of trust: Organization, PractitionerRole, Location
# and HealthcareService references count at once; "~x" follows x to an Encounter and takes its facility;
# Practitioners are kept for the last resort (their PractitionerRole's organization).
FACILITY_PATHS: dict[str, tuple[str, ...]] = {
    "Encounter": ("serviceProvider", "location.location", "participant.individual"),
    "Condition": ("recorder", "asserter", "~encounter"),
    "AllergyIntolerance": ("recorder", "asserter", "~encounter"),
    "Immunization": ("performer.actor", "location", "~encounter"),
    "Observation": ("performer", "~encounter"),
    "DiagnosticReport": ("performer", "resultsInterpreter", "~encounter"),
    "Procedure": (
        "performer.onBehalfOf",
        "performer.actor",
        "location",
        "~encounter",
        "recorder",
        "asserter",
    ),
    "MedicationRequest": ("requester", "~encounter", "recorder"),
    "MedicationDispense": ("performer.actor", "location", "~context"),
    "MedicationStatement": ("informationSource", "~context"),
    "MedicationAdministration": ("performer.actor", "~context"),
    # A referral's performer is where the patient is sent; the slip comes from the requester.
    "ServiceRequest": ("requester", "~encounter"),
    "Task": ("requester", "~encounter", "owner"),
    "Appointment": ("participant.actor",),
    "DocumentReference": ("custodian", "author", "~context.encounter"),
    "Composition": ("custodian", "author", "~encounter"),
    "Coverage": ("payor",),
    "EpisodeOfCare": ("managingOrganization", "careManager"),
    "Patient": ("managingOrganization", "generalPractitioner"),
    "RelatedPerson": (),
}
_ORG_LIKE = frozenset({"Organization", "PractitionerRole", "Location", "HealthcareService"})


def split_ref(ref: str) -> tuple[str, str] | None:
    """(type, id) of a relative or absolute RESTful reference; None for urn:, #local and conditional ones."""
    if ref.startswith(("urn:", "#")) or "?" in ref:
        return None
    m = _REF.search(ref)
    return (m.group(1), m.group(2)) if m else None


def _refs_at(resource: Resource, path: str) -> Iterator[dict[str, Any]]:
    """Reference objects at a dotted path, walking arrays."""
    nodes: list[Any] = [resource]
    for name in path.split("."):
        nxt: list[Any] = []
        for node in nodes:
            value = node.get(name) if isinstance(node, dict) else None
            if isinstance(value, list):
                nxt.extend(value)
            elif value is not None:
                nxt.append(value)
        nodes = nxt
    for node in nodes:
        if isinstance(node, dict) and ("reference" in node or "display" in node):
            yield node


def references(value: Any) -> Iterator[str]:
    """Every Reference.reference string anywhere inside a resource."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str):
                yield ref
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))


class Record:
    """One patient's resources (and the organisations and staff they refer to), found by reference."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        self.by_key: dict[tuple[str, str], Resource] = {}
        self.roles: dict[str, list[Resource]] = {}
        for res in resources:
            rtype, rid = res.get("resourceType"), res.get("id")
            if isinstance(rtype, str) and isinstance(rid, str):
                self.by_key[(rtype, rid)] = res
        for (rtype, _), res in sorted(self.by_key.items()):
            if rtype == "PractitionerRole":
                target = self._target(res.get("practitioner"))
                if target is not None and target[0] == "Practitioner":
                    self.roles.setdefault(target[1], []).append(res)

    def of_type(self, *types: str) -> list[Resource]:
        """Resources of these types, in (type, id) order."""
        return [res for key, res in sorted(self.by_key.items()) if key[0] in types]

    def _target(self, ref: Any) -> tuple[str, str] | None:
        value = ref.get("reference") if isinstance(ref, dict) else None
        return split_ref(value) if isinstance(value, str) else None

    def get(self, ref: Any) -> Resource | None:
        """The resource a Reference (object or string) points to, if the record holds it."""
        key = split_ref(ref) if isinstance(ref, str) else self._target(ref)
        return self.by_key.get(key) if key is not None else None

    def encounter_of(self, res: Resource) -> Resource | None:
        """The Encounter a resource was recorded in (encounter, context, or DocumentReference.context)."""
        for path in ("encounter", "context", "context.encounter"):
            for ref in _refs_at(res, path):
                target = self.get(ref)
                if target is not None and target.get("resourceType") == "Encounter":
                    return target
        return None

    def date(self, res: Resource) -> str | None:
        """The clinical date of a resource; else its Encounter's; else when the server last stored it."""
        found = clinical_date(res)
        if found is None:
            enc = self.encounter_of(res)
            found = clinical_date(enc) if enc is not None else None
        if found is None:
            meta = res.get("meta")
            updated = meta.get("lastUpdated") if isinstance(meta, dict) else None
            found = updated if isinstance(updated, str) else None
        return found

    def org_name(self, org: Resource) -> str | None:
        """What the book calls an Organization: its name, else an alias."""
        name = org.get("name")
        if isinstance(name, str) and name.strip():
            return name
        alias = org.get("alias")
        if isinstance(alias, list) and alias and isinstance(alias[0], str):
            return alias[0]
        return None

    def _named(self, ref: dict[str, Any], depth: int) -> str | None:
        """The facility named by an organisation-like reference, or None."""
        key = self._target(ref)
        target = self.by_key.get(key) if key is not None else None
        rtype = key[0] if key is not None else None
        if target is None:
            display = ref.get("display")
            if rtype in _ORG_LIKE and isinstance(display, str) and display.strip():
                return display
            return None
        if rtype == "Organization":
            return self.org_name(target)
        if depth > 3:
            return None
        if rtype == "PractitionerRole":
            org = target.get("organization")
            return self._named(org, depth + 1) if isinstance(org, dict) else None
        if rtype == "Location":
            org = target.get("managingOrganization")
            found = self._named(org, depth + 1) if isinstance(org, dict) else None
            name = target.get("name")
            return found or (name if isinstance(name, str) else None)
        if rtype == "HealthcareService":
            org = target.get("providedBy")
            return self._named(org, depth + 1) if isinstance(org, dict) else None
        return None

    def facility(self, res: Resource, depth: int = 0) -> str | None:
        """The name of the facility a resource came from, or None when the record does not say."""
        rtype = str(res.get("resourceType"))
        if rtype == "Organization":
            return self.org_name(res)
        practitioners: list[str] = []
        for path in FACILITY_PATHS.get(rtype, ()):
            follow = path.startswith("~")
            for ref in _refs_at(res, path.lstrip("~")):
                key = self._target(ref)
                if follow:
                    target = self.get(ref)
                    if target is not None and target.get("resourceType") == "Encounter" and depth < 2:
                        found = self.facility(target, depth + 1)
                        if found:
                            return found
                    continue
                if key is not None and key[0] == "Practitioner":
                    practitioners.append(key[1])
                    continue
                found = self._named(ref, 0)
                if found:
                    return found
        for pid in practitioners:
            for role in self.roles.get(pid, []):
                org = role.get("organization")
                found = self._named(org, 1) if isinstance(org, dict) else None
                if found:
                    return found
        return None

    def supporting(self, keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """What the given resources refer to, transitively, that the record holds (plus staff roles)."""
        seen = set(keys)
        todo = list(seen)
        out: list[tuple[str, str]] = []
        while todo:
            res = self.by_key.get(todo.pop())
            if res is None:
                continue
            found = [k for k in (split_ref(r) for r in references(res)) if k is not None]
            if res.get("resourceType") == "Practitioner":
                found += [("PractitionerRole", str(r["id"])) for r in self.roles.get(str(res.get("id")), [])]
            for key in found:
                if key not in seen and key in self.by_key:
                    seen.add(key)
                    out.append(key)
                    todo.append(key)
        return sorted(out)
