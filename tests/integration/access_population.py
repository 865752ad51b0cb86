"""A small population for the access-control tests, and tokens for each kind of caller.

Facilities: a ward health station (01001), a provincial hospital (01501), a facility elsewhere (79001).
People: a citizen treated at the station and at the hospital, a mother with a young child, and a stranger
treated only at the facility elsewhere.
"""

from __future__ import annotations

import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

from healthbook.auth.subject import Caller
from healthbook.config import Settings
from healthbook.fhir.router import Services
from healthbook.identity import systems

ISSUER = "http://127.0.0.1/test-issuer"
AUDIENCE = "healthbook"
SYSTEM = Caller.system("test-access")
KEY = RSAKey.generate_key(2048, parameters={"kid": "access-test", "alg": "RS256", "use": "sig"})

STATION, HOSPITAL, ELSEWHERE = "01001", "01501", "79001"
CITIZEN, MOTHER, CHILD, STRANGER = "001190012345", "001192000777", "001224000001", "079185000999"
LOINC = "http://loinc.org"


def settings_with_auth(settings: Settings) -> Settings:
    """The settings under test with access control on and the test issuer trusted."""
    return settings.model_copy(
        update={
            "auth": "required",
            "audience": AUDIENCE,
            "oidc_issuers": Settings(
                oidc_issuers=[{"issuer": ISSUER, "jwks": {"keys": [KEY.as_dict(private=False)]}}]
            ).oidc_issuers,
        }
    )


def token(role: str, *, scope: str, lifetime: int = 600, sub: str | None = None, **claims: Any) -> str:
    """A signed access token of the test issuer."""
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub or f"test-{role}-{claims.get('healthbook_cccd') or claims.get('healthbook_facility')}",
        "iat": now,
        "exp": now + lifetime,
        "scope": scope,
        "healthbook_role": role,
        **claims,
    }
    return jwt.encode({"alg": "RS256", "kid": "access-test"}, body, KEY)


def headers(tok: str) -> dict[str, str]:
    """Authorization header."""
    return {"Authorization": f"Bearer {tok}"}


def as_(role: str) -> dict[str, str]:
    """The Authorization header of a fresh token of one of the TOKENS roles."""
    return headers(TOKENS[role]())


PATIENT_SCOPE = "openid fhirUser patient/*.rs patient/Consent.cud"
TOKENS = {
    "citizen": lambda: token("citizen", scope=PATIENT_SCOPE, healthbook_cccd=CITIZEN),
    "mother": lambda: token("guardian", scope=PATIENT_SCOPE, healthbook_cccd=MOTHER),
    "stranger": lambda: token("citizen", scope=PATIENT_SCOPE, healthbook_cccd=STRANGER),
    "station": lambda: token("health-worker", scope="openid user/*.cruds", healthbook_facility=STATION),
    "elsewhere": lambda: token("health-worker", scope="openid user/*.cruds", healthbook_facility=ELSEWHERE),
    "hospital": lambda: token("facility-system", scope="system/*.cruds", healthbook_facility=HOSPITAL),
    "manager": lambda: token("manager", scope="openid user/*.rs", healthbook_province="01"),
}


def _org(oid: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": oid,
        "identifier": [{"system": systems.FACILITY_CODE, "value": code}],
        "name": f"Cơ sở {code}",
    }


def _patient(pid: str, cccd: str, family: str, birth: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": systems.CCCD, "value": cccd}],
        "name": [{"family": family, "given": ["Văn"], "text": f"{family} Văn"}],
        "gender": "male",
        "birthDate": birth,
    }


def encounter(eid: str, pid: str, org: str) -> dict[str, Any]:
    """A finished ambulatory Encounter at an Organization."""
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{pid}"},
        "serviceProvider": {"reference": f"Organization/{org}"},
        "period": {"start": "2025-03-01T08:00:00+07:00", "end": "2025-03-01T09:00:00+07:00"},
    }


def observation(oid: str, pid: str, eid: str | None, code: str, when: str = "2025-03-01") -> dict[str, Any]:
    """A final Observation with a LOINC code, in an Encounter when given."""
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": 120,
            "unit": "mm[Hg]",
            "system": "http://unitsofmeasure.org",
            "code": "mm[Hg]",
        },
    }
    if eid is not None:
        res["encounter"] = {"reference": f"Encounter/{eid}"}
    return res


def resources() -> list[dict[str, Any]]:
    """Everything the tests start from."""
    return [
        _org("station", STATION),
        _org("hospital", HOSPITAL),
        _org("elsewhere", ELSEWHERE),
        {"resourceType": "Practitioner", "id": "doctor", "name": [{"text": "BS. Phạm Văn Bình"}]},
        _patient("citizen", CITIZEN, "Trần", "1990-03-04"),
        _patient("mother", MOTHER, "Lê", "1992-05-06"),
        _patient("child", CHILD, "Lê", "2024-01-02"),
        _patient("stranger", STRANGER, "Hoàng", "1985-07-08"),
        {
            "resourceType": "RelatedPerson",
            "id": "mother-of-child",
            "identifier": [{"system": systems.CCCD, "value": MOTHER}],
            "patient": {"reference": "Patient/child"},
            "relationship": [
                {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}]}
            ],
            "name": [{"text": "Lê Thị Lan"}],
        },
        encounter("citizen-station", "citizen", "station"),
        encounter("citizen-hospital", "citizen", "hospital"),
        encounter("child-station", "child", "station"),
        encounter("stranger-elsewhere", "stranger", "elsewhere"),
        observation("citizen-bp", "citizen", "citizen-station", "85354-9"),
        observation("citizen-hiv", "citizen", "citizen-hospital", "75622-1", "2025-03-01"),
        observation("citizen-old", "citizen", None, "85354-9", "2015-06-01"),
        observation("child-weight", "child", "child-station", "29463-7"),
        observation("stranger-hiv", "stranger", "stranger-elsewhere", "75622-1"),
        {
            "resourceType": "Condition",
            "id": "citizen-dx",
            "subject": {"reference": "Patient/citizen"},
            "encounter": {"reference": "Encounter/citizen-hospital"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "B20"}]},
        },
    ]


def load(services: Services) -> None:
    """Write the population as an in-process system caller."""
    for res in resources():
        services.fhir.update(SYSTEM, res["resourceType"], res["id"], res)


CITIZEN_BOOK = {
    ("Patient", "citizen"),
    ("Encounter", "citizen-station"),
    ("Encounter", "citizen-hospital"),
    ("Observation", "citizen-bp"),
    ("Observation", "citizen-hiv"),
    ("Observation", "citizen-old"),
    ("Condition", "citizen-dx"),
}
CHILD_BOOK = {
    ("Patient", "child"),
    ("RelatedPerson", "mother-of-child"),
    ("Encounter", "child-station"),
    ("Observation", "child-weight"),
}
MOTHER_BOOK = {("Patient", "mother")}
STRANGER_BOOK = {
    ("Patient", "stranger"),
    ("Encounter", "stranger-elsewhere"),
    ("Observation", "stranger-hiv"),
}
SHARED = {
    ("Organization", "station"),
    ("Organization", "hospital"),
    ("Organization", "elsewhere"),
    ("Practitioner", "doctor"),
}
# What each caller sees of the population before any consent.
SEES = {
    "citizen": CITIZEN_BOOK | SHARED,
    "mother": MOTHER_BOOK | CHILD_BOOK | SHARED,
    "stranger": STRANGER_BOOK | SHARED,
    "station": CITIZEN_BOOK | CHILD_BOOK | SHARED,
    "elsewhere": STRANGER_BOOK | SHARED,
    "hospital": CITIZEN_BOOK | SHARED,
    "manager": SHARED,
}
