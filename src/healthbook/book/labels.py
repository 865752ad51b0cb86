"""Words of the health book in Vietnamese (first) and English, and the codes of its sections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from healthbook.identity.systems import HEALTHBOOK

Lang = Literal["vi", "en"]
LANGS: tuple[Lang, ...] = ("vi", "en")

LOINC = "http://loinc.org"
# The four QĐ 1332 data groups and the book's own subsections. Neither the Ministry's VN Core guide nor
# IPS names them, so they are codes of our own canonical.
BOOK_SECTION = f"{HEALTHBOOK}/CodeSystem/health-book-section"
EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
LIST_ORDER = "http://terminology.hl7.org/CodeSystem/list-order"


@dataclass(frozen=True, slots=True)
class SectionDef:
    """One kind of section: its code (LOINC where IPS defines one, else local) and its titles."""

    key: str
    system: str
    code: str
    display: str
    vi: str
    en: str

    def title(self, lang: Lang) -> str:
        """The title in a language."""
        return self.vi if lang == "vi" else self.en


_DEFS = (
    SectionDef("administrative", BOOK_SECTION, "administrative", "Administrative information",
               "Thông tin hành chính", "Administrative information"),
    SectionDef("history", BOOK_SECTION, "history", "Medical history", "Tiền sử", "Medical history"),
    SectionDef("care", BOOK_SECTION, "care-episodes", "Care episodes",
               "Các lần khám chữa bệnh", "Care episodes"),
    SectionDef("summary", BOOK_SECTION, "record-summary", "Record summary",
               "Tóm tắt hồ sơ", "Record summary"),
    SectionDef("history.problems", LOINC, "11450-4", "Problem list - Reported",
               "Bệnh mạn tính và vấn đề sức khỏe", "Chronic conditions and health problems"),
    SectionDef("history.allergies", LOINC, "48765-2", "Allergies and adverse reactions Document",
               "Dị ứng", "Allergies"),
    SectionDef("history.immunizations", LOINC, "11369-6", "History of Immunization Narrative",
               "Tiêm chủng", "Vaccinations"),
    SectionDef("care.indicators", LOINC, "8716-3", "Vital signs",
               "Chỉ số chính: nhóm máu, chiều cao, cân nặng, huyết áp",
               "Key indicators: blood group, height, weight, blood pressure"),
    SectionDef("care.episode", BOOK_SECTION, "care-episode", "Care episode", "Lần khám", "Visit"),
    SectionDef("care.unlinked", BOOK_SECTION, "care-unlinked", "Not linked to a visit",
               "Kết quả, thủ thuật và thuốc không gắn với lần khám",
               "Results, procedures and medicines not linked to a visit"),
    SectionDef("summary.documents", LOINC, "34133-9", "Summary of episode note",
               "Tóm tắt hồ sơ bệnh án, giấy ra viện", "Treatment and discharge summaries"),
    SectionDef("summary.prescriptions", LOINC, "10160-0", "History of Medication use Narrative",
               "Đơn thuốc gần nhất và thuốc đang dùng", "Latest and current prescriptions"),
    SectionDef("summary.appointments", LOINC, "18776-5", "Plan of care note",
               "Lịch hẹn tái khám", "Follow-up appointments"),
    SectionDef("summary.referrals", LOINC, "57133-1", "Referral note",
               "Giấy chuyển tuyến", "Referral slips"),
)  # fmt: skip
SECTIONS: dict[str, SectionDef] = {d.key: d for d in _DEFS}
BY_CODE: dict[tuple[str, str], SectionDef] = {(d.system, d.code): d for d in _DEFS}

# Interface words: key -> (Vietnamese, English).
_WORDS: dict[str, tuple[str, str]] = {
    "book": ("Sổ sức khỏe điện tử", "Electronic health book"),
    "empty": ("Chưa có dữ liệu nào được gửi đến sổ.", "No data have been sent to the book."),
    "empty.short": ("Chưa có dữ liệu", "No data"),
    "unknown.facility": ("Không rõ cơ sở", "Facility not recorded"),
    "col.what": ("Nội dung", "Item"),
    "col.detail": ("Chi tiết", "Details"),
    "col.facility": ("Cơ sở", "Facility"),
    "col.date": ("Ngày", "Date"),
    "items": ("mục", "items"),
    "f.name": ("Họ và tên", "Name"),
    "f.birth": ("Ngày sinh", "Date of birth"),
    "f.gender": ("Giới tính", "Sex"),
    "f.cccd": ("Số định danh cá nhân (CCCD)", "Personal identification number (CCCD)"),
    "f.bhyt": ("Số thẻ BHYT", "Health-insurance (BHYT) card number"),
    "f.ethnicity": ("Dân tộc", "Ethnicity"),
    "f.nationality": ("Quốc tịch", "Nationality"),
    "f.occupation": ("Nghề nghiệp", "Occupation"),
    "f.phone": ("Điện thoại", "Phone"),
    "f.address": ("Địa chỉ", "Address"),
    "f.primary": ("Nơi đăng ký khám chữa bệnh ban đầu", "Registered primary-care facility"),
    "f.contact": ("Người giám hộ, người đại diện", "Guardian or legal representative"),
    "f.deceased": ("Đã mất", "Deceased"),
    "g.male": ("Nam", "Male"),
    "g.female": ("Nữ", "Female"),
    "g.other": ("Khác", "Other"),
    "g.unknown": ("Không rõ", "Unknown"),
    "k.Patient": ("Người dân", "Citizen"),
    "k.Coverage": ("Thẻ bảo hiểm y tế", "Health-insurance card"),
    "k.Organization": ("Cơ sở khám chữa bệnh ban đầu", "Primary-care facility"),
    "k.RelatedPerson": ("Người thân, người đại diện", "Relative or representative"),
    "k.Condition": ("Bệnh", "Condition"),
    "k.diagnosis": ("Chẩn đoán", "Diagnosis"),
    "k.main-diagnosis": ("Chẩn đoán chính", "Main diagnosis"),
    "k.EpisodeOfCare": ("Quản lý bệnh", "Care programme"),
    "k.AllergyIntolerance": ("Dị ứng", "Allergy"),
    "k.Immunization": ("Tiêm chủng", "Vaccination"),
    "k.Encounter": ("Lần khám", "Visit"),
    "k.vital": ("Sinh hiệu", "Vital sign"),
    "k.lab": ("Xét nghiệm", "Laboratory test"),
    "k.imaging": ("Chẩn đoán hình ảnh", "Imaging"),
    "k.Observation": ("Kết quả khám", "Observation"),
    "k.DiagnosticReport": ("Phiếu kết quả", "Report"),
    "k.Procedure": ("Thủ thuật, phẫu thuật", "Procedure or surgery"),
    "k.MedicationRequest": ("Thuốc kê đơn", "Prescribed medicine"),
    "k.MedicationDispense": ("Thuốc đã cấp phát", "Dispensed medicine"),
    "k.MedicationStatement": ("Thuốc đang dùng", "Medicine taken"),
    "k.MedicationAdministration": ("Thuốc đã dùng", "Medicine given"),
    "k.Appointment": ("Lịch hẹn", "Appointment"),
    "k.ServiceRequest": ("Giấy chuyển tuyến", "Referral slip"),
    "k.Task": ("Theo dõi chuyển tuyến", "Referral follow-up"),
    "k.DocumentReference": ("Tài liệu", "Document"),
    "k.Composition": ("Tóm tắt bệnh án", "Record summary"),
    "k.other": ("Khác", "Other"),
    "d.dose": ("mũi", "dose"),
    "d.code": ("mã cơ sở", "facility code"),
    "d.to": ("chuyển đến", "to"),
    "d.valid": ("hiệu lực", "valid"),
    "d.range": ("tham chiếu", "reference"),
    "d.results": ("kết quả", "results"),
    "d.at": ("lúc", "at"),
    "d.until": ("đến", "until"),
    "d.since": ("từ", "since"),
    "d.reason": ("lý do", "reason"),
    "d.discharge": ("ra viện", "discharge"),
    "d.quantity": ("số lượng", "quantity"),
    "d.days": ("ngày", "days"),
    "d.lot": ("lô", "lot"),
    "d.reaction": ("phản ứng", "reaction"),
    "d.high": ("cao", "high"),
    "d.low": ("thấp", "low"),
    "d.abnormal": ("bất thường", "abnormal"),
    "d.updated": ("cập nhật", "updated"),
    "p.made": ("Tổng hợp lúc", "Compiled on"),
    "p.contents": ("Mục lục", "Contents"),
    "p.switch": ("English", "Tiếng Việt"),
    "p.synthetic": (
        "Dữ liệu mô phỏng để thử nghiệm, không phải hồ sơ của người thật.",
        "Synthetic test data, not the record of a real person.",
    ),
    "p.several": (
        "Có nhiều hồ sơ mang số định danh này; đang hiển thị hồ sơ được cập nhật gần nhất.",
        "Several records carry this number; the most recently updated one is shown.",
    ),
    "p.source": (
        "Dữ liệu do các cơ sở khám chữa bệnh gửi đến; mỗi mục ghi rõ cơ sở và ngày. Tài liệu FHIR:",
        "Data sent by health facilities; each item names its facility and date. FHIR document:",
    ),
    "p.print": ("In sổ", "Print"),
    "p.404.title": ("Không tìm thấy sổ sức khỏe", "Health book not found"),
    "p.404.text": (
        "Số định danh cá nhân không đúng (12 chữ số) hoặc chưa có sổ sức khỏe trên máy chủ này.",
        "The personal identification number is not valid (12 digits) or has no health book on this server.",
    ),
    "p.off.title": ("Trang sổ sức khỏe chưa được bật", "Health-book pages are not enabled"),
    "p.off.text": (
        "Máy chủ này không bật trang sổ sức khỏe (HEALTHBOOK_BOOK_PAGES); sổ vẫn xem được qua API FHIR.",
        "This server does not serve health-book pages (HEALTHBOOK_BOOK_PAGES); the book is on the FHIR API.",
    ),
    "p.login.title": ("Cần đăng nhập", "Please log in"),
    "p.login.text": (
        "Sổ sức khỏe chỉ mở cho người có quyền: hãy đăng nhập bằng định danh điện tử (VNeID).",
        "Health books open only to those with the right to read them: log in with your digital identity (VNeID).",
    ),
    "p.login.link": ("Đăng nhập", "Log in"),
    "p.mine.title": ("Sổ sức khỏe bạn được xem", "Health books you may view"),
    "p.mine.none": ("Bạn chưa được xem sổ sức khỏe nào.", "There is no health book you may view."),
    "p.logout": ("Đăng xuất", "Log out"),
    "p.log.title": ("Ai đã truy cập sổ này", "Who accessed this book"),
    "p.log.none": ("Chưa có lượt truy cập nào được ghi lại.", "No access has been recorded yet."),
    "p.log.when": ("Thời gian", "When"),
    "p.log.who": ("Ai", "Who"),
    "p.log.what": ("Việc gì", "What"),
    "p.log.note": (
        "20 lượt gần nhất; toàn bộ nhật ký: AuditEvent?patient= trên API FHIR.",
        "The 20 latest; the whole log: AuditEvent?patient= on the FHIR API.",
    ),
    "log.refused": ("bị từ chối", "refused"),
    "rtype.Observation": ("kết quả đo, xét nghiệm", "an observation"),
    "rtype.Encounter": ("lần khám", "an encounter"),
    "rtype.Condition": ("chẩn đoán", "a diagnosis"),
    "rtype.MedicationRequest": ("đơn thuốc", "a prescription"),
    "rtype.MedicationStatement": ("thuốc đang dùng", "a medication"),
    "rtype.Immunization": ("mũi tiêm chủng", "a vaccination"),
    "rtype.AllergyIntolerance": ("dị ứng", "an allergy"),
    "rtype.Procedure": ("thủ thuật, phẫu thuật", "a procedure"),
    "rtype.DiagnosticReport": ("kết quả cận lâm sàng", "a diagnostic report"),
    "rtype.ServiceRequest": ("chỉ định, chuyển tuyến", "a referral or order"),
    "rtype.Appointment": ("giấy hẹn khám lại", "an appointment"),
    "rtype.EpisodeOfCare": ("đợt điều trị", "an episode of care"),
    "rtype.Coverage": ("thẻ BHYT", "an insurance card"),
    "rtype.RelatedPerson": ("người giám hộ, người thân", "a related person"),
    "rtype.Consent": ("đồng ý chia sẻ", "a consent"),
    "rtype.Communication": ("thông báo", "a notice"),
    "rtype.DocumentReference": ("tài liệu", "a document"),
    "rtype.AuditEvent": ("nhật ký truy cập", "an audit record"),
    "log.role.citizen": ("Chính chủ", "The citizen"),
    "log.role.guardian": ("Người giám hộ", "A guardian"),
    "log.role.health-worker": ("Nhân viên y tế", "A health worker"),
    "log.role.facility-system": ("Hệ thống của cơ sở", "A facility system"),
    "log.role.manager": ("Cán bộ quản lý", "A manager"),
    "log.role.": ("Người dùng", "A user"),
    "log.read": ("Xem", "Viewed"),
    "log.vread": ("Xem một phiên bản", "Viewed a version"),
    "log.history-instance": ("Xem lịch sử", "Viewed the history"),
    "log.history-type": ("Xem lịch sử", "Viewed the history"),
    "log.history-system": ("Xem lịch sử", "Viewed the history"),
    "log.search-type": ("Tra cứu", "Searched"),
    "log.search-system": ("Tra cứu", "Searched"),
    "log.create": ("Ghi mới", "Recorded"),
    "log.update": ("Cập nhật", "Updated"),
    "log.patch": ("Cập nhật", "Updated"),
    "log.delete": ("Xóa", "Deleted"),
    "log.$everything": ("Mở toàn bộ sổ", "Opened the whole book"),
    "log.$summary": ("Xem sổ sức khỏe", "Viewed the health book"),
    "log.$export": ("Xuất dữ liệu hàng loạt", "Bulk-exported"),
    "log.$break-glass": ("Truy cập khẩn cấp", "Emergency access"),
    "log.$import-xml130": ("Gửi dữ liệu khám chữa bệnh (XML 130)", "Sent care data (XML 130)"),
    "p.403.title": ("Không có quyền xem sổ này", "Not allowed to view this book"),
    "p.403.text": (
        "Bạn không có quyền xem sổ sức khỏe này.",
        "You are not allowed to view this health book.",
    ),
}

# Status and category codes: (element, code) -> (Vietnamese, English).
_CODES: dict[tuple[str, str], tuple[str, str]] = {
    ("clinical", "active"): ("đang mắc", "active"),
    ("clinical", "recurrence"): ("tái phát", "recurrence"),
    ("clinical", "relapse"): ("tái phát", "relapse"),
    ("clinical", "inactive"): ("không còn biểu hiện", "inactive"),
    ("clinical", "remission"): ("thuyên giảm", "in remission"),
    ("clinical", "resolved"): ("đã khỏi", "resolved"),
    ("verification", "provisional"): ("chẩn đoán sơ bộ", "provisional"),
    ("verification", "differential"): ("chẩn đoán phân biệt", "differential"),
    ("verification", "unconfirmed"): ("chưa xác định", "unconfirmed"),
    ("class", "AMB"): ("Ngoại trú", "Outpatient"),
    ("class", "IMP"): ("Nội trú", "Inpatient"),
    ("class", "ACUTE"): ("Nội trú", "Inpatient"),
    ("class", "NONAC"): ("Nội trú", "Inpatient"),
    ("class", "EMER"): ("Cấp cứu", "Emergency"),
    ("class", "SS"): ("Điều trị ban ngày", "Day care"),
    ("class", "VR"): ("Khám từ xa", "Telehealth"),
    ("class", "HH"): ("Tại nhà", "Home visit"),
    ("class", "PRENC"): ("Khám trước", "Pre-admission"),
    ("class", "FLD"): ("Tại cộng đồng", "Field visit"),
    ("appointment", "booked"): ("đã hẹn", "booked"),
    ("appointment", "fulfilled"): ("đã khám", "attended"),
    ("appointment", "cancelled"): ("đã hủy", "cancelled"),
    ("appointment", "noshow"): ("không đến", "did not attend"),
    ("appointment", "arrived"): ("đã đến", "arrived"),
    ("appointment", "checked-in"): ("đã tiếp đón", "checked in"),
    ("appointment", "pending"): ("chờ xác nhận", "pending"),
    ("appointment", "proposed"): ("đề xuất", "proposed"),
    ("appointment", "waitlist"): ("danh sách chờ", "wait list"),
    ("medication", "active"): ("đang dùng", "active"),
    ("medication", "completed"): ("đã dùng xong", "completed"),
    ("medication", "stopped"): ("đã ngừng", "stopped"),
    ("medication", "on-hold"): ("tạm ngừng", "on hold"),
    ("medication", "cancelled"): ("đã hủy", "cancelled"),
    ("medication", "draft"): ("nháp", "draft"),
    ("medication", "intended"): ("dự định dùng", "intended"),
    ("medication", "not-taken"): ("không dùng", "not taken"),
    ("medication", "in-progress"): ("đang cấp phát", "in progress"),
    ("medication", "preparation"): ("đang chuẩn bị", "in preparation"),
    ("medication", "declined"): ("từ chối", "declined"),
    ("immunization", "completed"): ("đã tiêm", "given"),
    ("immunization", "not-done"): ("không tiêm", "not given"),
    ("procedure", "completed"): ("đã thực hiện", "completed"),
    ("procedure", "in-progress"): ("đang thực hiện", "in progress"),
    ("procedure", "not-done"): ("không thực hiện", "not done"),
    ("procedure", "stopped"): ("đã ngừng", "stopped"),
    ("procedure", "preparation"): ("đang chuẩn bị", "in preparation"),
    ("procedure", "on-hold"): ("tạm hoãn", "on hold"),
    ("request", "active"): ("còn hiệu lực", "active"),
    ("request", "completed"): ("đã thực hiện", "completed"),
    ("request", "revoked"): ("đã thu hồi", "revoked"),
    ("request", "on-hold"): ("tạm hoãn", "on hold"),
    ("request", "draft"): ("nháp", "draft"),
    ("task", "requested"): ("đã gửi", "requested"),
    ("task", "received"): ("đã nhận", "received"),
    ("task", "accepted"): ("đã tiếp nhận", "accepted"),
    ("task", "rejected"): ("từ chối", "rejected"),
    ("task", "in-progress"): ("đang thực hiện", "in progress"),
    ("task", "completed"): ("hoàn thành", "completed"),
    ("task", "cancelled"): ("đã hủy", "cancelled"),
    ("task", "failed"): ("không thực hiện được", "failed"),
    ("task", "ready"): ("sẵn sàng", "ready"),
    ("task", "on-hold"): ("tạm hoãn", "on hold"),
    ("criticality", "high"): ("nguy cơ cao", "high risk"),
    ("criticality", "low"): ("nguy cơ thấp", "low risk"),
    ("criticality", "unable-to-assess"): ("chưa đánh giá được", "not assessable"),
    ("coverage", "active"): ("còn hiệu lực", "active"),
    ("coverage", "cancelled"): ("đã hủy", "cancelled"),
    ("coverage", "draft"): ("nháp", "draft"),
    ("report", "preliminary"): ("sơ bộ", "preliminary"),
    ("report", "amended"): ("đã sửa", "amended"),
    ("report", "corrected"): ("đã sửa", "corrected"),
    ("report", "cancelled"): ("đã hủy", "cancelled"),
    ("report", "registered"): ("đã đăng ký", "registered"),
    ("report", "partial"): ("một phần", "partial"),
}


def word(key: str, lang: Lang) -> str:
    """An interface word; an unknown key is returned as it is (a visible, harmless bug)."""
    pair = _WORDS.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "vi" else pair[1]


def code_word(element: str, code: str, lang: Lang) -> str:
    """A status or class code in words; unknown codes are shown as they are."""
    pair = _CODES.get((element, code))
    if pair is None:
        return code
    return pair[0] if lang == "vi" else pair[1]


def lang_of(value: str | None) -> Lang:
    """The page language: English only when asked for, Vietnamese otherwise."""
    return "en" if value == "en" else "vi"
