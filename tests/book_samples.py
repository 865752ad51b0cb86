"""Hand-built minimal resources with data in every group of the health book (QĐ 1332), for its tests."""

from __future__ import annotations

import base64
from typing import Any

from healthbook.identity.systems import (
    BHYT,
    CCCD,
    CS_COUNTRY,
    CS_ETHNICITY,
    EXT_ETHNICITY,
    EXT_NATIONALITY,
    FACILITY_CODE,
)

Resource = dict[str, Any]
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
STATION = "Trạm Y tế xã Tam Hưng"
HOSPITAL = "Bệnh viện Đa khoa tỉnh Hà Nam"
BHXH = "Bảo hiểm xã hội Việt Nam"
HOSTILE = '<script>alert("x")</script> Ánh & <b>Co</b>'


def _org(oid: str, name: str, code: str) -> Resource:
    return {
        "resourceType": "Organization",
        "id": oid,
        "identifier": [{"system": FACILITY_CODE, "value": code}],
        "name": name,
    }


def facilities(prefix: str) -> list[Resource]:
    """A commune station, a provincial hospital, the payer and one doctor working at the station."""
    return [
        _org(f"{prefix}-station", STATION, "01144"),
        _org(f"{prefix}-hospital", HOSPITAL, "01001"),
        {"resourceType": "Organization", "id": f"{prefix}-bhxh", "name": BHXH},
        {
            "resourceType": "Practitioner",
            "id": f"{prefix}-doctor",
            "name": [{"text": "Lê Văn Bác", "family": "Lê", "given": ["Văn", "Bác"]}],
        },
        {
            "resourceType": "PractitionerRole",
            "id": f"{prefix}-role",
            "practitioner": {"reference": f"Practitioner/{prefix}-doctor"},
            "organization": {"reference": f"Organization/{prefix}-station"},
        },
    ]


def patient(
    pid: str, *, cccd: str = "001190012345", name: str = "Nguyễn Thị Ánh", prefix: str = ""
) -> Resource:
    """A woman born in 1990 (CCCD century/sex digit 1, year digits 90) registered at the station."""
    prefix = prefix or pid
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [
            {"use": "official", "system": CCCD, "value": cccd},
            {
                "system": BHYT,
                "value": "GD4011234567890",
                "period": {"start": "2026-01-01", "end": "2026-12-31"},
            },
        ],
        "name": [{"use": "official", "text": name, "family": "Nguyễn", "given": ["Thị", "Ánh"]}],
        "gender": "female",
        "birthDate": "1990-04-12",
        "telecom": [{"system": "phone", "value": "0912345678", "use": "mobile"}],
        "address": [{"use": "home", "text": "Thôn Tân Lập, Xã Tam Hưng, Thành phố Hà Nội", "country": "VN"}],
        "generalPractitioner": [{"reference": f"Organization/{prefix}-station"}],
        "extension": [
            {
                "url": EXT_ETHNICITY,
                "valueCodeableConcept": {
                    "coding": [{"system": CS_ETHNICITY, "code": "01", "display": "Kinh"}]
                },
            },
            {
                "url": EXT_NATIONALITY,
                "valueCodeableConcept": {
                    "coding": [{"system": CS_COUNTRY, "code": "VN"}],
                    "text": "Việt Nam",
                },
            },
        ],
    }


def _quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": code}


def clinical(pid: str, prefix: str = "") -> list[Resource]:
    """One of everything the book shows, for Patient/pid (ids start with pid)."""
    prefix = prefix or pid
    me = {"reference": f"Patient/{pid}"}
    enc = {"reference": f"Encounter/{pid}-enc"}
    doctor = {"reference": f"Practitioner/{prefix}-doctor"}
    role = {"reference": f"PractitionerRole/{prefix}-role"}
    hospital = {"reference": f"Organization/{prefix}-hospital"}
    vital = [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs",
                }
            ]
        }
    ]
    lab = [
        {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}
            ]
        }
    ]
    at = "2025-03-10T08:30:00+07:00"

    def obs(suffix: str, code: str, text: str, category: list[Any], **value: Any) -> Resource:
        return {
            "resourceType": "Observation",
            "id": f"{pid}-{suffix}",
            "status": "final",
            "category": category,
            "code": {"coding": [{"system": LOINC, "code": code}], "text": text},
            "subject": me,
            "encounter": enc,
            "effectiveDateTime": at,
            **value,
        }

    return [
        {
            "resourceType": "Coverage",
            "id": f"{pid}-bhyt",
            "status": "active",
            "type": {"text": "Bảo hiểm y tế"},
            "subscriberId": "GD4011234567890",
            "beneficiary": me,
            "period": {"start": "2026-01-01", "end": "2026-12-31"},
            "payor": [{"reference": f"Organization/{prefix}-bhxh"}],
        },
        {
            "resourceType": "Encounter",
            "id": f"{pid}-enc",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "type": [{"text": "Khám bệnh"}],
            "subject": me,
            "period": {"start": at, "end": "2025-03-10T09:00:00+07:00"},
            "reasonCode": [{"text": "Đau đầu kéo dài"}],
            "diagnosis": [{"condition": {"reference": f"Condition/{pid}-dx"}, "rank": 1}],
            "serviceProvider": hospital,
        },
        {
            "resourceType": "Condition",
            "id": f"{pid}-htn",
            "clinicalStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
                ]
            },
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                            "code": "problem-list-item",
                        }
                    ]
                }
            ],
            "code": {"coding": [{"system": ICD10, "code": "I10", "display": "Bệnh lý tăng huyết áp"}]},
            "subject": me,
            "onsetDateTime": "2020-05-01",
            "recorder": doctor,
        },
        {
            "resourceType": "Condition",
            "id": f"{pid}-dx",
            "clinicalStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}
                ]
            },
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                            "code": "encounter-diagnosis",
                        }
                    ]
                }
            ],
            "code": {"coding": [{"system": ICD10, "code": "R51", "display": "Đau đầu"}]},
            "subject": me,
            "encounter": enc,
            "onsetDateTime": "2025-03-10",
        },
        {
            "resourceType": "Condition",
            "id": f"{pid}-error",
            "verificationStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                        "code": "entered-in-error",
                    }
                ]
            },
            "code": {"coding": [{"system": ICD10, "code": "C34.9", "display": "Nhập nhầm"}]},
            "subject": me,
            "encounter": enc,
        },
        {
            "resourceType": "AllergyIntolerance",
            "id": f"{pid}-allergy",
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                        "code": "active",
                    }
                ]
            },
            "criticality": "high",
            "code": {"text": "Penicillin"},
            "patient": me,
            "recordedDate": "2019-01-05",
            "recorder": doctor,
            "reaction": [{"manifestation": [{"text": "Nổi mề đay"}]}],
        },
        {
            "resourceType": "Immunization",
            "id": f"{pid}-vaccine",
            "status": "completed",
            "vaccineCode": {
                "coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "08"}],
                "text": "Vắc xin viêm gan B sơ sinh",
            },
            "patient": me,
            "occurrenceDateTime": "1990-04-12T20:00:00Z",  # 13/04/1990 in Vietnam
            "primarySource": True,
            "performer": [{"actor": doctor}],
            "protocolApplied": [{"series": "TCMR", "doseNumberPositiveInt": 1}],
        },
        obs("height", "8302-2", "Chiều cao", vital, valueQuantity=_quantity(158, "cm", "cm")),
        obs("weight", "29463-7", "Cân nặng", vital, valueQuantity=_quantity(52.5, "kg", "kg")),
        obs(
            "bp",
            "85354-9",
            "Huyết áp",
            vital,
            component=[
                {
                    "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                    "valueQuantity": _quantity(135, "mmHg", "mm[Hg]"),
                },
                {
                    "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                    "valueQuantity": _quantity(85, "mmHg", "mm[Hg]"),
                },
            ],
        ),
        obs("abo", "882-1", "Nhóm máu", lab, valueCodeableConcept={"text": "O Rh+"}),
        obs(
            "glucose",
            "14771-0",
            "Glucose máu lúc đói",
            lab,
            valueQuantity=_quantity(7.2, "mmol/L", "mmol/L"),
            referenceRange=[
                {"low": {"value": 3.9, "unit": "mmol/L"}, "high": {"value": 6.1, "unit": "mmol/L"}}
            ],
            interpretation=[
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                            "code": "H",
                        }
                    ]
                }
            ],
        ),
        {
            "resourceType": "DiagnosticReport",
            "id": f"{pid}-report",
            "status": "final",
            "code": {"text": "Sinh hóa máu"},
            "subject": me,
            "encounter": enc,
            "effectiveDateTime": at,
            "performer": [hospital],
            "result": [{"reference": f"Observation/{pid}-glucose"}],
        },
        {
            "resourceType": "Procedure",
            "id": f"{pid}-endoscopy",
            "status": "completed",
            "code": {"text": "Nội soi dạ dày"},
            "subject": me,
            "encounter": enc,
            "performedDateTime": "2025-03-10T10:00:00+07:00",
        },
        {
            "resourceType": "MedicationRequest",
            "id": f"{pid}-rx",
            "status": "completed",
            "intent": "order",
            "medicationCodeableConcept": {"text": "Paracetamol 500mg (viên)"},
            "subject": me,
            "encounter": enc,
            "authoredOn": "2025-03-10",
            "requester": doctor,
            "dosageInstruction": [{"text": "Uống 1 viên khi đau, tối đa 4 viên/ngày"}],
            "dispenseRequest": {"quantity": _quantity(10, "viên", "{tbl}")},
        },
        {
            "resourceType": "MedicationDispense",
            "id": f"{pid}-dispense",
            "status": "completed",
            "medicationCodeableConcept": {"text": "Paracetamol 500mg (viên)"},
            "subject": me,
            "context": enc,
            "performer": [{"actor": hospital}],
            "quantity": _quantity(10, "viên", "{tbl}"),
            "whenHandedOver": "2025-03-10T10:30:00+07:00",
        },
        {
            "resourceType": "MedicationStatement",
            "id": f"{pid}-statement",
            "status": "active",
            "medicationCodeableConcept": {"text": "Amlodipin 5mg"},
            "subject": me,
            "effectiveDateTime": "2024-01-01",
            "informationSource": {"reference": f"Organization/{prefix}-station"},
            "dosage": [{"text": "Uống 1 viên mỗi sáng"}],
        },
        {
            "resourceType": "DocumentReference",
            "id": f"{pid}-xml8",
            "status": "current",
            "type": {"coding": [{"system": LOINC, "code": "34133-9", "display": "Summary of episode note"}]},
            "subject": me,
            "date": "2025-03-12T09:00:00+07:00",
            "custodian": hospital,
            "description": "Tóm tắt hồ sơ bệnh án (XML8)",
            "content": [
                {
                    "attachment": {
                        "contentType": "text/plain",
                        "data": base64.b64encode("Chẩn đoán ra viện: R51".encode()).decode(),
                    }
                }
            ],
        },
        {
            "resourceType": "Appointment",
            "id": f"{pid}-next",
            "status": "booked",
            "description": "Hẹn tái khám tăng huyết áp",
            "start": "2099-01-15T09:00:00+07:00",
            "end": "2099-01-15T09:30:00+07:00",
            "participant": [{"actor": me, "status": "accepted"}, {"actor": role, "status": "accepted"}],
        },
        {
            "resourceType": "Appointment",
            "id": f"{pid}-past",
            "status": "fulfilled",
            "description": "Hẹn khám lại sau nội soi",
            "start": "2025-03-20T08:00:00+07:00",
            "end": "2025-03-20T08:30:00+07:00",
            "participant": [{"actor": me, "status": "accepted"}, {"actor": role, "status": "accepted"}],
        },
        {
            "resourceType": "ServiceRequest",
            "id": f"{pid}-referral",
            "status": "completed",
            "intent": "order",
            "category": [
                {
                    "coding": [{"system": SNOMED, "code": "3457005", "display": "Patient referral"}],
                    "text": "Chuyển tuyến",
                }
            ],
            "code": {"text": f"Chuyển tuyến đến {HOSPITAL}"},
            "subject": me,
            "authoredOn": "2025-03-01T10:00:00+07:00",
            "requester": role,
            "performer": [hospital],
        },
        {
            "resourceType": "Task",
            "id": f"{pid}-referral-task",
            "status": "completed",
            "intent": "order",
            "description": "Theo dõi chuyển tuyến",
            "focus": {"reference": f"ServiceRequest/{pid}-referral"},
            "for": me,
            "authoredOn": "2025-03-02",
            "requester": role,
        },
    ]


def transaction(resources: list[Resource]) -> Resource:
    """A transaction Bundle that PUTs the resources with their ids."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources
        ],
    }
