"""Identifier systems and extension URLs of Vietnamese identity, shared by the server, importers and synth.

Where the Ministry of Health's draft VN Core guide (canonical http://fhir.ehealth.gov.vn/core) defines a
URI we use it; where it defines none we use the HL7 Vietnam community guide or HL7's own registry, and
only as a last resort our own canonical. docs/identity.md records the evidence for each choice.
"""

from __future__ import annotations

VN_CORE = "http://fhir.ehealth.gov.vn/core"
HL7_VN = "http://fhir.hl7.org.vn/core"
HEALTHBOOK = "https://healthbook.vn/fhir"

# Identifier systems (Identifier.system).
CCCD = f"{VN_CORE}/sid/national_id"  # personal identification number (số định danh cá nhân)
BHYT = f"{VN_CORE}/sid/insurance_number"  # health-insurance card (mã thẻ BHYT)
CMND = f"{HL7_VN}/sid/cmnd"  # old 9-digit identity card (chứng minh nhân dân)
PASSPORT = "http://hl7.org/fhir/sid/passport-VNM"  # Vietnamese passport (HL7 terminology registry)
PASSPORT_PREFIX = "http://hl7.org/fhir/sid/passport-"  # passport-XXX: other countries (ISO 3166 alpha-3)
FACILITY_CODE = f"{VN_CORE}/sid/provider-code"  # 5-character facility code (mã cơ sở KCB, QĐ 384)
PATIENT_INTERNAL_ID = f"{VN_CORE}/sid/patient-internal-id"  # a facility's own patient number
# Practising-certificate number (chứng chỉ hành nghề), used for MA_BAC_SI in XML 130.
PRACTISING_CERTIFICATE = f"{HL7_VN}/sid/cchn"

# Patient extensions of the VN Core guide.
EXT_ETHNICITY = f"{VN_CORE}/StructureDefinition/extension-race"  # dân tộc
CS_ETHNICITY = f"{VN_CORE}/CodeSystem/vn-core-race"  # 2-digit GSO codes, 01 Kinh … 54 Rơ-măm
EXT_OCCUPATION = f"{VN_CORE}/StructureDefinition/extension-occupation"  # nghề nghiệp
CS_OCCUPATION = f"{VN_CORE}/CodeSystem/vn-core-occupation"
EXT_NATIONALITY = f"{VN_CORE}/StructureDefinition/extension-nationality"  # quốc tịch
CS_COUNTRY = "urn:iso:std:iso:3166"

# Address codes of the administrative units (the guides define no extension for them).
EXT_PROVINCE = f"{HEALTHBOOK}/StructureDefinition/address-province"  # valueCode: 2-digit province code
EXT_DISTRICT = f"{HEALTHBOOK}/StructureDefinition/address-district"  # valueCode: 3 digits, before 2025 only
EXT_COMMUNE = f"{HEALTHBOOK}/StructureDefinition/address-commune"  # valueCode: 5-digit commune/ward code
CS_ADMIN_UNIT_2025 = f"{HEALTHBOOK}/CodeSystem/admin-unit-2025"
CS_ADMIN_UNIT_LEGACY = f"{HEALTHBOOK}/CodeSystem/admin-unit-legacy"

# Flags the identity service sets.
CS_IDENTITY_FLAG = f"{HEALTHBOOK}/CodeSystem/identity-flag"

IDENTIFIER_SYSTEMS = {
    "CCCD": CCCD,
    "BHYT": BHYT,
    "CMND": CMND,
    "PASSPORT": PASSPORT,
    "FACILITY_CODE": FACILITY_CODE,
    "PATIENT_INTERNAL_ID": PATIENT_INTERNAL_ID,
    "PRACTISING_CERTIFICATE": PRACTISING_CERTIFICATE,
}
