"""The demo users of the development identity provider, picked from the synthetic population in the database.

They are found at first use rather than hard-coded, so that they match whatever `healthbook demo` loaded:
the citizen is the first showcase person (healthbook.synth.demo.find_showcase), the parent is the mother of
a young child (RelatedPerson of the child, identified by her CCCD, who is a Patient herself), the health
worker works at the citizen's health station, the hospital is a non-station facility the citizen visited,
and the manager manages the citizen's province.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson

from healthbook.auth.subject import Caller, Role
from healthbook.fhir.http import Prefer
from healthbook.fhir.search.service import SearchService
from healthbook.fhir.service import FhirService
from healthbook.identity import systems
from healthbook.synth.demo import find_showcase
from healthbook.synth.facilities import CENTRAL, PROVINCIAL, REGIONAL
from healthbook.synth.systems import FACILITY_LEVEL

_CALLER = Caller.system("dev-idp")
_HOSPITAL_RANK = {PROVINCIAL: 0, CENTRAL: 1, REGIONAL: 2}


@dataclass(frozen=True, slots=True)
class DemoUser:
    """A person one can log in as (authorization code), with the claims the token will carry."""

    key: str
    role: Role
    label: str  # Vietnamese first, English second
    name: str
    what: str  # what this user should be able to see, for the login page
    cccd: str | None = None
    patient: str | None = None  # launch context: own record (citizen) or the child's (guardian)
    fhir_user: str | None = None
    facility: str | None = None
    province: str | None = None
    scope: str = "openid fhirUser patient/*.rs patient/Consent.cud"  # granted when none is asked for

    @property
    def subject(self) -> str:
        """The `sub` of this user's tokens."""
        return f"dev-{self.key}"


@dataclass(frozen=True, slots=True)
class DemoFacility:
    """The facility of the demo hospital system (client credentials)."""

    code: str
    name: str


@dataclass(frozen=True, slots=True)
class DemoDirectory:
    """Everything the provider needs from the database."""

    users: tuple[DemoUser, ...]
    hospital: DemoFacility | None


def _search(search: SearchService, rtype: str, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    bundle = orjson.loads(search.search_bundle(_CALLER, rtype, pairs, base="", prefer=Prefer()))
    return [e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") != "include"]


def _read(fhir: FhirService, ref: str | None) -> dict[str, Any] | None:
    if not ref or "/" not in ref:
        return None
    rtype, _, rid = ref.partition("/")
    stored = fhir.read(_CALLER, rtype, rid)
    return orjson.loads(stored.content or "{}")  # type: ignore[no-any-return]


def _identifier(res: dict[str, Any], system: str) -> str | None:
    return next((i.get("value") for i in res.get("identifier", []) if i.get("system") == system), None)


def _name(res: dict[str, Any]) -> str:
    names = res.get("name") or [{}]
    first = names[0] if isinstance(names, list) else {}
    prefix = " ".join(first.get("prefix", []))
    text = first.get("text") or " ".join([first.get("family", ""), *first.get("given", [])]).strip()
    return f"{prefix} {text}".strip() or res.get("id", "?")


def _level(org: dict[str, Any]) -> str | None:
    for t in org.get("type", []):
        for c in t.get("coding", []):
            if c.get("system") == FACILITY_LEVEL:
                return str(c.get("code"))
    return None


def load_directory(fhir: FhirService, search: SearchService) -> DemoDirectory:
    """Pick the demo users from the population in the database (empty when there is none yet)."""
    showcase = find_showcase(fhir, search)
    citizen = _read(fhir, f"Patient/{showcase[0].patient_id}") if showcase else None
    if citizen is None:
        adult = (dt.date.today() - dt.timedelta(days=18 * 366)).isoformat()
        first = _search(search, "Patient", [("birthdate", f"le{adult}"), ("_count", "1")])
        citizen = first[0] if first else None
    if citizen is None:
        return DemoDirectory((), None)
    users: list[DemoUser] = []
    cccd = _identifier(citizen, systems.CCCD)
    users.append(
        DemoUser(
            "citizen",
            Role.CITIZEN,
            "Công dân / Citizen",
            _name(citizen),
            "Sổ sức khỏe của chính mình / his or her own health book",
            cccd=cccd,
            patient=citizen["id"],
            fhir_user=f"Patient/{citizen['id']}",
        )
    )
    parent = _parent(fhir, search, exclude=citizen["id"])
    if parent is not None:
        users.append(parent)
    gps: list[dict[str, Any]] = citizen.get("generalPractitioner", [])
    station_ref = gps[0].get("reference") if gps else None
    station = _read(fhir, station_ref)
    station_code = _identifier(station, systems.FACILITY_CODE) if station else None
    if station is not None and station_code is not None:
        roles = _search(
            search, "PractitionerRole", [("organization", f"Organization/{station['id']}"), ("_count", "1")]
        )
        practitioner_ref = roles[0].get("practitioner", {}).get("reference") if roles else None
        practitioner = _read(fhir, practitioner_ref)
        users.append(
            DemoUser(
                "health-worker",
                Role.HEALTH_WORKER,
                "Nhân viên y tế trạm y tế / Ward health worker",
                _name(practitioner) if practitioner else "Nhân viên trạm y tế",
                f"Người bệnh của {station.get('name', station_code)} ({station_code}) / "
                "patients with an encounter at this station",
                fhir_user=practitioner_ref,
                facility=station_code,
                scope="openid fhirUser user/*.cruds",
            )
        )
        province = station_code[:2]
        area = (station.get("address") or [{}])[0].get("state") or f"tỉnh mã {province}"
        users.append(
            DemoUser(
                "manager",
                Role.MANAGER,
                "Cán bộ quản lý Sở Y tế / Provincial manager",
                f"Sở Y tế {area}",
                f"Số liệu tổng hợp của {area}, không định danh / aggregates of the province, no identities",
                province=province,
                scope="openid user/*.rs",
            )
        )
    return DemoDirectory(tuple(users), _hospital(fhir, search, citizen["id"], station_code))


def _parent(fhir: FhirService, search: SearchService, exclude: str) -> DemoUser | None:
    """The mother of the youngest child found among recent births."""
    since = (dt.date.today() - dt.timedelta(days=6 * 365)).isoformat()
    children = _search(search, "Patient", [("birthdate", f"ge{since}"), ("_count", "50")])
    children.sort(key=lambda c: str(c.get("birthDate", "")), reverse=True)
    for child in children:
        related = _search(search, "RelatedPerson", [("patient", f"Patient/{child['id']}"), ("_count", "1")])
        if not related:
            continue
        mother_cccd = _identifier(related[0], systems.CCCD)
        if mother_cccd is None:
            continue
        mothers = _search(
            search, "Patient", [("identifier", f"{systems.CCCD}|{mother_cccd}"), ("_count", "1")]
        )
        if not mothers or mothers[0]["id"] == exclude:
            continue
        return DemoUser(
            "parent",
            Role.GUARDIAN,
            "Cha mẹ của trẻ nhỏ / Parent of a young child",
            _name(mothers[0]),
            f"Sổ sức khỏe của con ({_name(child)}, sinh {child.get('birthDate', '?')}) / the child's book",
            cccd=mother_cccd,
            patient=child["id"],
            fhir_user=f"RelatedPerson/{related[0]['id']}",
        )
    return None


def _hospital(
    fhir: FhirService, search: SearchService, patient_id: str, station: str | None
) -> DemoFacility | None:
    """A hospital the citizen visited (provincial or central before regional), else one of the province."""
    encounters = _search(search, "Encounter", [("subject", f"Patient/{patient_id}"), ("_count", "100")])
    candidates: list[tuple[int, DemoFacility]] = []
    seen: set[str] = set()
    for enc in encounters:
        ref = enc.get("serviceProvider", {}).get("reference")
        if not ref or ref in seen:
            continue
        seen.add(ref)
        org = _read(fhir, ref)
        code = _identifier(org, systems.FACILITY_CODE) if org else None
        level = _level(org) if org else None
        if org is not None and code is not None and level in _HOSPITAL_RANK:
            candidates.append((_HOSPITAL_RANK[level], DemoFacility(code, str(org.get("name", code)))))
    if candidates:
        return min(candidates, key=lambda c: c[0])[1]
    for org in _search(
        search, "Organization", [("type", f"{FACILITY_LEVEL}|{PROVINCIAL}"), ("_count", "100")]
    ):
        code = _identifier(org, systems.FACILITY_CODE)
        if code is not None and (station is None or code[:2] == station[:2]):
            return DemoFacility(code, str(org.get("name", code)))
    return None
