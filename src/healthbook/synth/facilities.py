"""Health facilities: a station per commune, regional centres, provincial and central hospitals, staff."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from healthbook.synth import geo, names, systems
from healthbook.synth.ids import facility_id

# Levels of care, from the commune up (vn-standards §4.7; codes of the 5-character facility code).
STATION, REGIONAL, PROVINCIAL, CENTRAL = "tram-y-te", "khu-vuc", "tinh", "trung-uong"
LEVEL_NAMES = {
    STATION: "Trạm y tế xã/phường",
    REGIONAL: "Trung tâm y tế khu vực",
    PROVINCIAL: "Bệnh viện tuyến tỉnh",
    CENTRAL: "Bệnh viện tuyến trung ương",
}
COMMUNES_PER_REGION = 12
# Central hospitals (real public institutions; the 5-character codes given here are synthetic).
CENTRAL_HOSPITALS: list[tuple[str, str, str]] = [
    ("01901", "Bệnh viện Bạch Mai", "north"),
    ("01902", "Bệnh viện Hữu nghị Việt Đức", "north"),
    ("01903", "Bệnh viện Nhi Trung ương", "north"),
    ("01904", "Bệnh viện Phụ sản Trung ương", "north"),
    ("19901", "Bệnh viện Trung ương Thái Nguyên", "north"),
    ("46901", "Bệnh viện Trung ương Huế", "central"),
    ("48901", "Bệnh viện C Đà Nẵng", "central"),
    ("79901", "Bệnh viện Chợ Rẫy", "south"),
    ("79902", "Bệnh viện Thống Nhất", "south"),
    ("92901", "Bệnh viện Đa khoa Trung ương Cần Thơ", "south"),
]
# The central hospital that takes referrals from each region's provinces.
_CENTRAL_FOR = {"north": "01901", "central": "46901", "south": "79901"}
_CENTRAL_NEAR = {"19": "19901", "04": "19901", "08": "19901", "20": "19901", "48": "48901", "51": "48901",
                 "52": "48901", "56": "48901", "66": "48901", "68": "48901", "82": "92901", "86": "92901",
                 "91": "92901", "92": "92901", "96": "92901"}  # fmt: skip
STAFF = {STATION: 2, REGIONAL: 4, PROVINCIAL: 6, CENTRAL: 8}
PAYOR_ID = facility_id("organization", "bhxh")


@dataclass(slots=True)
class Facility:
    """One health facility and the ids of its staff."""

    code: str
    name: str
    level: str
    province: str
    commune: geo.Commune | None
    id: str = ""
    staff: list[str] = field(default_factory=list)
    staff_people: list[tuple[str, int, names.Name]] = field(default_factory=list)  # gender, birth year, name


@dataclass(slots=True)
class Network:
    """All facilities and, per commune, the chain station -> regional centre -> province -> central."""

    facilities: list[Facility]
    station: dict[str, Facility]  # by commune code
    regional: dict[str, Facility]  # by commune code
    provincial: dict[str, Facility]  # by province code
    maternity: dict[str, Facility]  # by province code
    central: dict[str, Facility]  # by province code: where the province refers to


def _province_phrase(p: geo.Province) -> str:
    """'tỉnh Thanh Hóa' or 'thành phố Hà Nội', as written inside a facility name."""
    return p.name[0].lower() + p.name[1:]


@lru_cache(maxsize=8)
def network(only: frozenset[str] | None = None) -> Network:
    """The facility network of the selected provinces (all by default) and the central hospitals."""
    facilities: list[Facility] = []
    station: dict[str, Facility] = {}
    regional: dict[str, Facility] = {}
    provincial: dict[str, Facility] = {}
    maternity: dict[str, Facility] = {}
    central_by_code = {
        code: Facility(code, name, CENTRAL, code[:2], None) for code, name, _ in CENTRAL_HOSPITALS
    }
    facilities.extend(central_by_code.values())
    central: dict[str, Facility] = {}
    for p in geo.provinces():
        if only is not None and p.code not in only:
            continue
        phrase = _province_phrase(p)
        general = Facility(f"{p.code}001", f"Bệnh viện Đa khoa {phrase}", PROVINCIAL, p.code, None)
        womb = Facility(f"{p.code}002", f"Bệnh viện Sản - Nhi {phrase}", PROVINCIAL, p.code, None)
        facilities += [general, womb]
        provincial[p.code] = general
        maternity[p.code] = womb
        central[p.code] = central_by_code[_CENTRAL_NEAR.get(p.code, _CENTRAL_FOR[p.region])]
        for start in range(0, len(p.communes), COMMUNES_PER_REGION):
            group = p.communes[start : start + COMMUNES_PER_REGION]
            seat = group[0]
            centre = Facility(
                f"{p.code}{10 + start // COMMUNES_PER_REGION:03d}",
                f"Trung tâm Y tế khu vực {seat.short}",
                REGIONAL,
                p.code,
                seat,
            )
            facilities.append(centre)
            for c in group:
                regional[c.code] = centre
        for c in p.communes:
            st = Facility(
                f"{p.code}{100 + c.rank:03d}",
                f"Trạm Y tế {c.name[0].lower()}{c.name[1:]}",
                STATION,
                p.code,
                c,
            )
            facilities.append(st)
            station[c.code] = st
    for f in facilities:
        f.id = facility_id("organization", f.code)
        rng = random.Random(f"staff:{f.code}")
        region = geo.by_code()[f.province].region
        for n in range(STAFF[f.level]):
            gender = "female" if rng.random() < 0.6 else "male"
            year = rng.randint(1965, 1998)
            name = names.person_name(rng, names.family_name(rng, region, "kinh"), gender, year, "kinh")
            f.staff.append(facility_id("practitioner", f"{f.code}-{n}"))
            f.staff_people.append((gender, year, name))
    return Network(facilities, station, regional, provincial, maternity, central)


def _address(f: Facility) -> dict[str, Any]:
    p = geo.by_code()[f.province]
    out: dict[str, Any] = {"use": "work", "state": p.name, "country": "VN"}
    if f.commune is not None:
        out["city"] = f.commune.name
        out["text"] = f"{f.commune.name}, {p.name}"
    else:
        out["text"] = p.name
    return out


def payor() -> dict[str, Any]:
    """Vietnam Social Security, the payor of every BHYT card."""
    return {
        "resourceType": "Organization",
        "id": PAYOR_ID,
        "active": True,
        "type": [{"coding": [{"system": systems.ORGANIZATION_TYPE, "code": "pay", "display": "Payer"}]}],
        "name": "Bảo hiểm xã hội Việt Nam",
        "alias": ["BHXH Việt Nam"],
        "address": [
            {"use": "work", "text": "Thành phố Hà Nội", "state": "Thành phố Hà Nội", "country": "VN"}
        ],
    }


def resources(net: Network) -> Iterator[dict[str, Any]]:
    """Organization, Practitioner and PractitionerRole of every facility, written once before the citizens."""
    yield payor()
    for f in net.facilities:
        yield {
            "resourceType": "Organization",
            "id": f.id,
            "meta": {"tag": [systems.SYNTH_TAG]},
            "identifier": [{"system": systems.FACILITY_CODE, "value": f.code}],
            "active": True,
            "type": [
                {
                    "coding": [
                        {
                            "system": systems.ORGANIZATION_TYPE,
                            "code": "prov",
                            "display": "Healthcare Provider",
                        }
                    ]
                },
                {
                    "coding": [
                        {"system": systems.FACILITY_LEVEL, "code": f.level, "display": LEVEL_NAMES[f.level]}
                    ]
                },
            ],
            "name": f.name,
            "address": [_address(f)],
        }
    for f in net.facilities:
        for n, (pid, (gender, year, name)) in enumerate(zip(f.staff, f.staff_people, strict=True)):
            doctor = n % 2 == 0
            title = "BS." if doctor else ("HS." if f.level == STATION else "ĐD.")
            yield {
                "resourceType": "Practitioner",
                "id": pid,
                "identifier": [
                    {"system": systems.PRACTISING_CERTIFICATE, "value": f"{f.code}/CCHN-{n + 1:04d}"}
                ],
                "active": True,
                "name": [
                    {
                        "use": "official",
                        "text": name.text,
                        "family": name.family,
                        "given": list(name.given),
                        "prefix": [title],
                    }
                ],
                "gender": gender,
                "birthDate": f"{year}-{(n * 5) % 12 + 1:02d}-{(n * 7) % 28 + 1:02d}",
            }
            yield {
                "resourceType": "PractitionerRole",
                "id": facility_id("role", f"{f.code}-{n}"),
                "active": True,
                "practitioner": {"reference": f"Practitioner/{pid}"},
                "organization": {"reference": f"Organization/{f.id}"},
                "code": [
                    {
                        "coding": [
                            {
                                "system": systems.PRACTITIONER_ROLE,
                                "code": "doctor" if doctor else "nurse",
                                "display": "Doctor" if doctor else "Nurse",
                            }
                        ],
                        "text": "Bác sĩ" if doctor else ("Hộ sinh" if f.level == STATION else "Điều dưỡng"),
                    }
                ],
            }
