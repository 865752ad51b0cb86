"""Code systems, identifier systems, extension URLs and the code tables of the XML130 mapping.

Identifier systems of persons and facilities, the patient extensions and the address-code extensions come from
healthbook.identity.systems (VN Core where it defines them, docs/identity.md); everything below them is specific to
the XML130 import. Vietnamese code lists that have no published FHIR code system (DMDC lists, MA_LOAI_KCB, …) get
a URL under the canonical base of the Ministry's draft VN Core IG (vn-standards §7.2); those URLs are this
project's choice, not an IG's.
"""

from __future__ import annotations

from healthbook.identity import systems as ids
from healthbook.synth import systems as sy

BASE = "http://fhir.ehealth.gov.vn/core"
# Identifiers; those that are only unique within one facility end in /<MACSKCB>.
EPISODE = f"{BASE}/NamingSystem/xml130-ma-lk"  # + /MACSKCB: the MA_LK of an episode
RECORD_NUMBER = f"{BASE}/NamingSystem/ma-hsba"  # + /MACSKCB: MA_HSBA
REFERRAL_SLIP = f"{BASE}/NamingSystem/giay-chuyen-tuyen"  # + /MACSKCB of the issuer
REFERRAL_FILE = f"{BASE}/NamingSystem/so-hoso-chuyen-tuyen"  # + /MACSKCB
REFERRAL_BOOK = f"{BASE}/NamingSystem/so-chuyen-tuyen"  # + /MACSKCB
APPOINTMENT_SLIP = f"{BASE}/NamingSystem/giay-hen-kham-lai"  # + /MACSKCB
ARCHIVE_NUMBER = f"{BASE}/NamingSystem/so-luu-tru"  # + /MACSKCB: SO_LUU_TRU of XML7
BIRTH_CERTIFICATE = f"{BASE}/NamingSystem/giay-chung-sinh"  # + /MACSKCB: QUYEN_SO/SO of XML9
OTHER_ID = f"{BASE}/NamingSystem/xml130-so-cccd"  # SO_CCCD that is neither CCCD, CMND nor passport (VNeID)
BHXH = f"{BASE}/NamingSystem/bhxh"  # the 10-digit social-insurance number (mã số BHXH)
CCCD = ids.CCCD
CMND = ids.CMND
PASSPORT = ids.PASSPORT
BHYT = ids.BHYT
PATIENT_CODE = ids.PATIENT_INTERNAL_ID  # MA_BN, with the facility as assigner
FACILITY = ids.FACILITY_CODE
CERTIFICATE = ids.PRACTISING_CERTIFICATE

# Code systems.
ICD10 = sy.ICD10
ICD9CM = "http://hl7.org/fhir/sid/icd-9-cm"
LOINC = sy.LOINC
UCUM = sy.UCUM
SNOMED = sy.SNOMED
YHCT = f"{BASE}/CodeSystem/yhct"  # traditional-medicine disease codes (QĐ 7603 PL 07.1)
TABLE = f"{BASE}/CodeSystem/xml130-table"  # LOAIHOSO as a document type
CARE_TYPE = f"{BASE}/CodeSystem/xml130-ma-loai-kcb"
TREATMENT_RESULT = f"{BASE}/CodeSystem/xml130-ket-qua-dtri"
DISCHARGE_TYPE = f"{BASE}/CodeSystem/xml130-ma-loai-rv"
REFERRAL_REASON = f"{BASE}/CodeSystem/xml130-ma-lydo-ct"
PATIENT_CATEGORY = f"{BASE}/CodeSystem/xml130-ma-doituong-kcb"
ADMISSION_REASON = f"{BASE}/CodeSystem/xml130-ma-ly-do-vnt"
ACCIDENT = f"{BASE}/CodeSystem/xml130-ma-tai-nan"
COST_GROUP = f"{BASE}/CodeSystem/dmdc-nhom-chi-phi"  # MA_NHOM (QĐ 5937 PL 3)
DRUG = f"{BASE}/CodeSystem/dmdc-thuoc"  # MA_THUOC: active-ingredient code of the DMDC
SERVICE = f"{BASE}/CodeSystem/dmdc-dvkt"  # MA_DICH_VU: technical service code of the DMDC
SUPPLY = f"{BASE}/CodeSystem/dmdc-vtyt"  # MA_VAT_TU
RESULT_INDEX = f"{BASE}/CodeSystem/dmdc-chi-so"  # MA_CHI_SO (QĐ 7603 PL 11)
ROUTE = f"{BASE}/CodeSystem/dmdc-duong-dung"  # DUONG_DUNG
DEPARTMENT = f"{BASE}/CodeSystem/dmdc-khoa"  # MA_KHOA (QĐ 5937 PL 5)
NATIONALITY = f"{BASE}/CodeSystem/quoc-tich-tt07"  # MA_QUOCTICH (TT 07/2016/TT-BCA PL 2; not ISO 3166)
V3_ACT = sy.V3_ACT_CODE
V3_ROLE = sy.V3_ROLE_CODE
DISCHARGE_DISPOSITION = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
DIAGNOSIS_ROLE = "http://terminology.hl7.org/CodeSystem/diagnosis-role"
OBSERVATION_CATEGORY = sy.OBSERVATION_CATEGORY
CONDITION_CATEGORY = sy.CONDITION_CATEGORY
CONDITION_CLINICAL = sy.CONDITION_CLINICAL
CONDITION_VERIFICATION = sy.CONDITION_VERIFICATION
DIAGNOSTIC_SERVICE = sy.DIAGNOSTIC_SERVICE
PROVENANCE_ROLE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"

# Extensions.
EXT_TREATMENT_RESULT = f"{BASE}/StructureDefinition/xml130-ket-qua-dtri"  # on Encounter
EXT_ETHNICITY = ids.EXT_ETHNICITY  # valueCodeableConcept of CS_ETHNICITY: the GSO codes of MA_DANTOC
CS_ETHNICITY = ids.CS_ETHNICITY
EXT_OCCUPATION = ids.EXT_OCCUPATION
CS_OCCUPATION = ids.CS_OCCUPATION  # MA_NGHE_NGHIEP (QĐ 34/2020/QĐ-TTg)
EXT_NATIONALITY = ids.EXT_NATIONALITY
EXT_BIRTH_TIME = "http://hl7.org/fhir/StructureDefinition/patient-birthTime"
EXT_PROVINCE = ids.EXT_PROVINCE  # address codes: with a district code they are read in the pre-2025 units
EXT_DISTRICT = ids.EXT_DISTRICT
EXT_COMMUNE = ids.EXT_COMMUNE
EXT_CONTENT_HASH = f"{BASE}/StructureDefinition/xml130-content-sha256"  # on Provenance.entity

GENDER = {"1": "male", "2": "female", "3": "unknown"}

# MA_LOAI_KCB (vn-standards §6.8): display (this project's short Vietnamese wording) and Encounter.class.
CARE_TYPES: dict[str, tuple[str, str]] = {
    "01": ("Khám bệnh", "AMB"),
    "02": ("Điều trị ngoại trú", "AMB"),
    "03": ("Điều trị nội trú", "IMP"),
    "04": ("Điều trị nội trú ban ngày", "SS"),
    "05": ("Điều trị ngoại trú bệnh mạn tính, có khám và lĩnh thuốc", "AMB"),
    "06": ("Điều trị lưu tại trạm y tế xã, phòng khám đa khoa khu vực", "IMP"),
    "07": ("Nhận thuốc theo hẹn", "AMB"),
    "08": ("Điều trị ngoại trú bệnh mạn tính, có thực hiện dịch vụ kỹ thuật", "AMB"),
    "09": ("Điều trị nội trú dưới 4 giờ", "SS"),
    "10": ("Khác", "AMB"),
    "11": ("Khám bệnh, chữa bệnh lưu động", "FLD"),
    "12": ("Khám bệnh, chữa bệnh tại nhà", "HH"),
    "13": ("Y học gia đình", "AMB"),
    "14": ("Khám bệnh, chữa bệnh từ xa", "VR"),
    "15": ("Khám sức khỏe định kỳ", "AMB"),
    "16": ("Khám sàng lọc", "AMB"),
}
INPATIENT_TYPES = frozenset({"03", "04", "06", "09"})
TREATMENT_RESULTS = {
    "1": "Khỏi",
    "2": "Đỡ",
    "3": "Không thay đổi",
    "4": "Nặng hơn",
    "5": "Tử vong",
    "6": "Tiên lượng nặng xin về",
    "7": "Chưa xác định",
    "8": "Tử vong ngoại viện",
}
# MA_LOAI_RV: display and the R4 discharge-disposition code.
DISCHARGE_TYPES = {
    "1": ("Ra viện", "home"),
    "2": ("Chuyển tuyến theo yêu cầu chuyên môn", "other-hcf"),
    "3": ("Trốn viện", "aadvice"),
    "4": ("Xin ra viện", "aadvice"),
    "5": ("Chuyển tuyến theo yêu cầu của người bệnh", "other-hcf"),
}
REFERRAL_REASONS = {
    "1": "Đủ điều kiện chuyển tuyến theo quy định",
    "2": "Không phù hợp với khả năng đáp ứng của cơ sở khám bệnh, chữa bệnh",
    "3": "Theo yêu cầu của người bệnh hoặc người đại diện hợp pháp",
}
# MA_NHOM values the mapping relies on (QĐ 5937 PL 3 as used by facilities; not in the reference): the
# paraclinical groups give the category of results; examinations and bed days are charges, not procedures.
LAB_GROUP, IMAGING_GROUP, FUNCTION_GROUP = "1", "2", "3"
NOT_PROCEDURE_GROUPS = frozenset({"10", "11", "12", "13", "14", "15", "16", "19"})

# Document types (LOINC) of the notes and papers.
DISCHARGE_SUMMARY = ("18842-5", "Discharge summary")
EPISODE_SUMMARY = ("34133-9", "Summary of episode note")
PROGRESS_NOTE = ("11506-3", "Progress note")
CONSULT_NOTE = ("11488-4", "Consult note")
OPERATION_NOTE = ("11504-8", "Surgical operation note")

# Vital signs of the CSST<…> convention of XML5 DIEN_BIEN_LS (QĐ 4750): key -> LOINC, name, UCUM, unit.
VITALS: dict[str, tuple[str, str, str, str]] = {
    "M": ("8867-4", "Mạch", "/min", "lần/phút"),
    "T": ("8310-5", "Nhiệt độ", "Cel", "°C"),
    "NT": ("9279-1", "Nhịp thở", "/min", "lần/phút"),
    "SP": ("59408-5", "SpO2", "%", "%"),
    "CN": ("29463-7", "Cân nặng", "kg", "kg"),
    "CC": ("8302-2", "Chiều cao", "cm", "cm"),
}
BLOOD_PRESSURE = ("85354-9", "Huyết áp")
SYSTOLIC = ("8480-6", "Huyết áp tâm thu")
DIASTOLIC = ("8462-4", "Huyết áp tâm trương")
WEIGHT = ("29463-7", "Cân nặng")
BIRTH_WEIGHT = ("8339-4", "Cân nặng lúc sinh")
BLOOD_GROUP = ("882-1", "Nhóm máu ABO và Rh")
ABO_GROUP = ("883-9", "Nhóm máu ABO")
RH_GROUP = ("10331-7", "Nhóm máu Rh")

# DON_VI_DO as Vietnamese laboratories write it -> UCUM. Case matters: G/L is giga per litre (10^9/L, cell
# counts), g/L grams per litre. Units that are not listed are kept as text only.
UCUM_UNITS: dict[str, str] = {
    "mmol/L": "mmol/L", "mmol/l": "mmol/L", "µmol/L": "umol/L", "μmol/L": "umol/L", "umol/L": "umol/L",
    "µmol/l": "umol/L", "umol/l": "umol/L", "nmol/L": "nmol/L", "pmol/L": "pmol/L", "mg/dL": "mg/dL",
    "mg/dl": "mg/dL", "g/dL": "g/dL", "g/dl": "g/dL", "mg/L": "mg/L", "mg/l": "mg/L", "g/L": "g/L",
    "g/l": "g/L", "G/L": "10*9/L", "G/l": "10*9/L", "T/L": "10*12/L", "T/l": "10*12/L",
    "10^9/L": "10*9/L", "x10^9/L": "10*9/L", "10*9/L": "10*9/L", "10^12/L": "10*12/L",
    "x10^12/L": "10*12/L", "10*12/L": "10*12/L", "%": "%", "fL": "fL", "fl": "fL", "pg": "pg",
    "L/L": "L/L", "l/l": "L/L", "U/L": "U/L", "U/l": "U/L", "u/l": "U/L", "UI/L": "[IU]/L",
    "IU/L": "[IU]/L", "mIU/L": "m[IU]/L", "mIU/mL": "m[IU]/mL", "µIU/mL": "u[IU]/mL", "μIU/mL": "u[IU]/mL",
    "uIU/mL": "u[IU]/mL", "IU/mL": "[IU]/mL", "ng/mL": "ng/mL", "ng/ml": "ng/mL", "pg/mL": "pg/mL",
    "pg/ml": "pg/mL", "µg/L": "ug/L", "ug/L": "ug/L", "ng/dL": "ng/dL", "mm/h": "mm/h", "mm/giờ": "mm/h",
    "giây": "s", "s": "s", "phút": "min", "mmHg": "mm[Hg]", "lần/phút": "/min", "nhịp/phút": "/min",
    "°C": "Cel", "độ C": "Cel", "kg": "kg", "g": "g", "gram": "g", "cm": "cm", "mm": "mm", "mL": "mL",
    "ml": "mL", "L": "L", "lít": "L", "mEq/L": "meq/L", "mOsm/kg": "mosm/kg", "mL/phút": "mL/min",
    "ml/phút": "mL/min", "mL/min": "mL/min", "mL/min/1.73m2": "mL/min/{1.73_m2}",
    "ml/ph/1,73m2": "mL/min/{1.73_m2}", "/mm3": "/mm3", "/µL": "/uL", "/uL": "/uL",
}  # fmt: skip
