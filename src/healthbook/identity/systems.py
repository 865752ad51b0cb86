"""Identifier systems and extension URLs of Vietnamese identity, shared by the server, importers and synth."""

from __future__ import annotations

# Identifier systems (Identifier.system).
CCCD = "http://fhir.ehealth.gov.vn/core/NamingSystem/cccd"
BHYT = "http://fhir.ehealth.gov.vn/core/NamingSystem/bhyt"
CMND = "http://fhir.ehealth.gov.vn/core/NamingSystem/cmnd"
PASSPORT = "http://hl7.org/fhir/sid/passport-VNM"
FACILITY_CODE = "http://fhir.ehealth.gov.vn/core/NamingSystem/facility-code"
# Practising-certificate number (chứng chỉ hành nghề), used for MA_BAC_SI in XML 130.
PRACTISING_CERTIFICATE = "http://fhir.ehealth.gov.vn/core/NamingSystem/practising-certificate"
