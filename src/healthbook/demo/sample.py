"""A small, fixed sample of fictitious Vietnamese health records for `healthbook demo`."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ"]
MIDDLE_F = ["Thị", "Ngọc", "Thu", "Thanh"]
MIDDLE_M = ["Văn", "Đức", "Minh", "Quốc"]
GIVEN_F = ["Ánh", "Hương", "Lan", "Mai", "Thảo", "Hạnh", "Trang", "Linh"]
GIVEN_M = ["Anh", "Hùng", "Dũng", "Tuấn", "Nam", "Phúc", "Long", "Quân"]
PROVINCES = [
    ("01", "Thành phố Hà Nội"),
    ("79", "Thành phố Hồ Chí Minh"),
    ("48", "Thành phố Đà Nẵng"),
    ("46", "Thành phố Huế"),
]
CCCD_SYSTEM = "http://fhir.ehealth.gov.vn/core/NamingSystem/cccd"
FACILITY_SYSTEM = "http://fhir.ehealth.gov.vn/core/NamingSystem/facility-code"


def _cccd(province: str, female: bool, year: int, rng: random.Random) -> str:
    century = (year // 100) - 19  # 1900s -> 0, 2000s -> 1
    digit = century * 2 + (1 if female else 0)
    return f"0{province}{digit}{year % 100:02d}{rng.randrange(10**6):06d}"


def sample_resources(citizens: int = 50, seed: int = 1) -> Iterator[dict[str, Any]]:
    """Organizations, then per citizen a Patient, an Encounter and a blood-pressure Observation."""
    rng = random.Random(seed)
    for code, name in [("01001", "Trạm Y tế phường Ba Đình"), ("01929", "Bệnh viện Bạch Mai")]:
        yield {
            "resourceType": "Organization",
            "id": f"org-{code}",
            "identifier": [{"system": FACILITY_SYSTEM, "value": code}],
            "active": True,
            "name": name,
        }
    for n in range(citizens):
        female = rng.random() < 0.5
        year = rng.randint(1940, 2023)
        province, province_name = rng.choice(PROVINCES)
        family = rng.choice(FAMILY)
        given = f"{rng.choice(MIDDLE_F if female else MIDDLE_M)} {rng.choice(GIVEN_F if female else GIVEN_M)}"
        pid = f"demo-{n:04d}"
        birth = f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        yield {
            "resourceType": "Patient",
            "id": pid,
            "identifier": [{"system": CCCD_SYSTEM, "value": _cccd(province, female, year, rng)}],
            "name": [
                {"use": "official", "text": f"{family} {given}", "family": family, "given": given.split()}
            ],
            "gender": "female" if female else "male",
            "birthDate": birth,
            "address": [{"text": province_name, "state": province_name, "country": "VN"}],
        }
        enc = f"enc-{n:04d}"
        day = f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}"
        yield {
            "resourceType": "Encounter",
            "id": enc,
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{pid}"},
            "serviceProvider": {"reference": "Organization/org-01001"},
            "period": {"start": f"{day}T08:00:00+07:00", "end": f"{day}T08:30:00+07:00"},
        }
        systolic, diastolic = rng.randint(100, 170), rng.randint(60, 105)
        yield {
            "resourceType": "Observation",
            "id": f"bp-{n:04d}",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "vital-signs",
                        }
                    ]
                }
            ],
            "code": {
                "coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure"}]
            },
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{enc}"},
            "effectiveDateTime": f"{day}T08:10:00+07:00",
            "component": [
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                    "valueQuantity": {
                        "value": systolic,
                        "unit": "mmHg",
                        "system": "http://unitsofmeasure.org",
                        "code": "mm[Hg]",
                    },
                },
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                    "valueQuantity": {
                        "value": diastolic,
                        "unit": "mmHg",
                        "system": "http://unitsofmeasure.org",
                        "code": "mm[Hg]",
                    },
                },
            ],
        }
