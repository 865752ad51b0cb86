"""Identifier systems, code systems and extension URLs of the synthetic population, in one place for reuse."""

from __future__ import annotations

# Identifiers: the identity package owns them.
from healthbook.identity.systems import (
    BHYT,
    CCCD,
    CS_ADMIN_UNIT_2025,
    CS_COUNTRY,
    CS_ETHNICITY,
    EXT_COMMUNE,
    EXT_ETHNICITY,
    EXT_NATIONALITY,
    EXT_PROVINCE,
    FACILITY_CODE,
    HEALTHBOOK,
    PRACTISING_CERTIFICATE,
)

# Code systems.
ICD10 = "http://hl7.org/fhir/sid/icd-10"
CVX = "http://hl7.org/fhir/sid/cvx"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
ATC = "http://www.whocc.no/atc"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
V2_0131 = "http://terminology.hl7.org/CodeSystem/v2-0131"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
OBSERVATION_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DIAGNOSTIC_SERVICE = "http://terminology.hl7.org/CodeSystem/v2-0074"
ORGANIZATION_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
COVERAGE_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PRACTITIONER_ROLE = "http://terminology.hl7.org/CodeSystem/practitioner-role"
MED_REQUEST_CATEGORY = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"
EPISODE_TYPE = "http://terminology.hl7.org/CodeSystem/episodeofcare-type"
# Vietnamese code systems of our own (the guides define none for these).
ADMIN_UNIT_2025 = CS_ADMIN_UNIT_2025
FACILITY_LEVEL = f"{HEALTHBOOK}/CodeSystem/facility-level"
BHYT_CATEGORY = f"{HEALTHBOOK}/CodeSystem/bhyt-category"
SYNTH_PROCEDURE = f"{HEALTHBOOK}/CodeSystem/synth-procedure"
# Synthetic identifiers that only the generator uses (episode keys, referral slips, donations).
SYNTH_ID = f"{HEALTHBOOK}/sid/synth"
# Marks every generated resource, so synthetic data can never pass for real records.
SYNTH_TAG = {"system": f"{HEALTHBOOK}/CodeSystem/data-origin", "code": "synthetic"}

__all__ = [
    "BHYT",
    "CCCD",
    "CS_COUNTRY",
    "CS_ETHNICITY",
    "EXT_COMMUNE",
    "EXT_ETHNICITY",
    "EXT_NATIONALITY",
    "EXT_PROVINCE",
    "FACILITY_CODE",
    "PRACTISING_CERTIFICATE",
]
