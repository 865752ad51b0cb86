"""The tables of one synthetic care episode (XML1-5, 7, 8, 9, 13, 14), built from the citizen's FHIR record."""

from __future__ import annotations

import datetime as dt
import random
from typing import TYPE_CHECKING

from healthbook.imports.xml130 import render
from healthbook.synth.icd import CODES
from healthbook.synth.population import Person
from healthbook.synth.xml130_common import (
    BED,
    DELIVERY,
    DRUGS,
    ETHNIC,
    EXAM,
    EXAM_HOSPITAL,
    LAB_SERVICES,
    LEVEL_RATE,
    Episode,
    Resource,
    Row,
    birth_weight,
    compact,
    iso,
    money,
    num,
    ref_id,
)

if TYPE_CHECKING:
    from healthbook.synth.xml130 import Citizen


class EpisodeBuilder:
    """The tables of one encounter."""

    def __init__(self, c: Citizen, enc: Resource) -> None:
        self.c, self.enc, self.p = c, enc, c.p
        self.fac = c.r.facility[ref_id(enc["serviceProvider"])]
        self.items = c.by_enc.get(enc["id"], [])
        self.rng = random.Random(enc["id"])
        self.ma_lk = enc["id"].replace("-", "").upper()
        self.start = compact(enc["period"]["start"]) or ""
        self.end = compact(enc["period"]["end"]) or self.start
        self.doctor = c.r.certificate(ref_id(enc["participant"][0]["individual"]))
        self.inpatient = enc["class"]["code"] == "IMP"
        self.chronic = "episodeOfCare" in enc and enc["type"][0]["text"].startswith("Khám quản lý")
        self.kind = "03" if self.inpatient else "05" if self.chronic else "01"
        self.department = "K19" if self.inpatient else "K01"
        self.rate = LEVEL_RATE.get((self.card() or "XX0")[2], 80) if self.card() else 0

    # ---- identity and coverage ------------------------------------------------------------------

    def card(self) -> str | None:
        p = self.p
        if p.bhyt is None:
            return None
        if p.bhyt_category != "TE" and self._ordinal(self.start) - p.birth < 6 * 365:
            return f"TE1{p.bhyt[3:5]}{p.bhyt[5:]}"  # the child's card before the 6th birthday
        return p.bhyt

    @staticmethod
    def _ordinal(stamp12: str) -> int:
        return dt.date(int(stamp12[:4]), int(stamp12[4:6]), int(stamp12[6:8])).toordinal()

    def _card_period(self) -> tuple[str, str]:
        year = self.start[:4]
        birth = iso(self.p.birth).replace("-", "")
        return max(f"{year}0101", birth), f"{year}1231"

    def identity(self) -> Row:
        """The patient fields shared by XML1, XML13 and XML14."""
        p = self.p
        row: Row = {
            "HO_TEN": p.name.text,
            "NGAY_SINH": iso(p.birth).replace("-", "") + "0000",
            "GIOI_TINH": "1" if p.gender == "male" else "2",
            "DIA_CHI": p.address["text"],
            "MA_THE_BHYT": self.card(),
        }
        if self.card():
            row["GT_THE_DEN"] = self._card_period()[1]
        return row

    # ---- diagnoses -----------------------------------------------------------------------------

    def diagnoses(self) -> tuple[str, list[str]]:
        """(MA_BENH_CHINH, MA_BENH_KT): this visit's conditions, else the condition it follows up."""
        codes = [r["code"]["coding"][0]["code"] for r in self.items if r["resourceType"] == "Condition"]
        if not codes:
            codes = self._followed_up()
        main = codes[0] if codes else ("Z00.1" if self.p.age < 16 else "Z00.0")
        others = [c for c in dict.fromkeys(codes[1:] + self._chronic_at()) if c != main]
        return main, others[:12]

    def _followed_up(self) -> list[str]:
        get = self.c.by_id.get
        for ep in self.enc.get("episodeOfCare", []):
            eoc = get(("EpisodeOfCare", ref_id(ep)))
            if eoc:
                cond = get(("Condition", ref_id(eoc["diagnosis"][0]["condition"])))
                if cond:
                    return [cond["code"]["coding"][0]["code"]]
        refs = [get(("ServiceRequest", ref_id(b))) for b in self.enc.get("basedOn", [])]
        for appt_ref in self.enc.get("appointment", []):
            appt = get(("Appointment", ref_id(appt_ref)))
            refs += [get(("ServiceRequest", ref_id(b))) for b in (appt or {}).get("basedOn", [])]
        for sr in refs:
            for reason in (sr or {}).get("reasonReference", []):
                cond = get(("Condition", ref_id(reason)))
                if cond:
                    return [cond["code"]["coding"][0]["code"]]
        if self.enc["type"][0]["text"] == "Khám thai":
            for (rtype, _), res in self.c.by_id.items():
                code = (
                    res.get("code", {}).get("coding", [{}])[0].get("code", "") if rtype == "Condition" else ""
                )
                if code.startswith("Z34") and (compact(res["onsetDateTime"]) or "") <= self.start[:8]:
                    return [code]
        return []

    def _chronic_at(self) -> list[str]:
        return [code for onset, code in self.c.chronic if onset <= self.start[:8]]

    # ---- the tables ----------------------------------------------------------------------------

    def build(self) -> Episode:
        drugs = self.xml2()
        services, results = self.xml3_xml4()
        main, others = self.diagnoses()
        appointments = self.xml14(main, others)
        tables = [
            ("XML1", render.table_document("XML1", [self.xml1(main, others, drugs, services, appointments)]))
        ]
        for name, rows in (("XML2", drugs), ("XML3", services), ("XML4", results), ("XML5", self.xml5())):
            if rows:
                tables.append((name, render.table_document(name, rows)))
        if self.inpatient:
            tables.append(("XML7", render.table_document("XML7", [self.xml7(main, others)])))
            tables.append(("XML8", render.table_document("XML8", [self.xml8(main, others)])))
        births = self.xml9()
        if births:
            tables.append(("XML9", render.table_document("XML9", births)))
        for row in self.xml13(main, others):
            tables.append(("XML13", render.table_document("XML13", [row])))
        for row in appointments:
            tables.append(("XML14", render.table_document("XML14", [row])))
        return Episode(self.fac.code, self.ma_lk, self.start, tables)

    def xml1(
        self, main: str, others: list[str], drugs: list[Row], services: list[Row], appts: list[Row]
    ) -> Row:
        p = self.p
        t_drug = sum(float(d["THANH_TIEN_BV"] or 0) for d in drugs)
        t_all = t_drug + sum(float(s["THANH_TIEN_BV"] or 0) for s in services)
        paid = round(t_all * self.rate / 100, 2)
        row: Row = {
            "MA_LK": self.ma_lk, "STT": "1", "MA_BN": "BN" + p.id.replace("-", "")[:10].upper(),
            **self.identity(), "SO_CCCD": p.cccd,
            "NHOM_MAU": self.c.blood[1].replace(" Rh", "") if self.c.blood and self.c.blood[0] <= self.start[:8] else None,
            "MA_DANTOC": ETHNIC.get(p.group, "01"), "MA_NGHE_NGHIEP": "00000" if p.age < 6 else None,
            "MATINH_CU_TRU": p.province.code, "MAXA_CU_TRU": p.commune.code, "DIEN_THOAI": p.phone,
            "MA_DKBD": self.c.r.net.station[p.commune.code].code if self.card() else None,
            "GT_THE_TU": self._card_period()[0] if self.card() else None,
            "LY_DO_VV": self.enc["type"][0]["text"],
            "CHAN_DOAN_VAO": CODES[main].name if self.inpatient and main in CODES else None,
            "CHAN_DOAN_RV": "; ".join(CODES[c].name for c in [main, *others] if c in CODES),
            "MA_BENH_CHINH": main, "MA_BENH_KT": ";".join(others) or None,
            "MA_PTTT_QT": ";".join(s["MA_PTTT_QT"] or "" for s in services if s.get("MA_PTTT_QT")) or None,
            "MA_DOITUONG_KCB": "1" if self.card() else None,
            "NGAY_VAO": self.start, "NGAY_VAO_NOI_TRU": self.start if self.inpatient else None, "NGAY_RA": self.end,
            "SO_NGAY_DTRI": str(self._ordinal(self.end) - self._ordinal(self.start) + 1) if self.inpatient else "0",
            "KET_QUA_DTRI": "2" if self.inpatient or self.chronic else "1", "MA_LOAI_RV": "1",
            "NGAY_TTOAN": self.end, "T_THUOC": money(t_drug), "T_VTYT": "0", "T_TONGCHI_BV": money(t_all),
            "T_TONGCHI_BH": money(t_all if self.card() else 0), "T_BNTT": money(0 if self.card() else t_all),
            "T_BNCCT": money(round(t_all - paid, 2) if self.card() else 0), "T_BHTT": money(paid),
            "T_NGUONKHAC": "0", "T_BHTT_GDV": "0", "NAM_QT": self.end[:4], "THANG_QT": self.end[4:6],
            "MA_LOAI_KCB": self.kind, "MA_KHOA": self.department, "MA_CSKCB": self.fac.code,
            "MA_KHUVUC": None, "CAN_NANG": self._weight(), "CAN_NANG_CON": self._newborn_weights(),
            "NGAY_TAI_KHAM": ";".join((a["NGAY_HEN_KL"] or "")[:8] for a in appts) or None,
            "MA_HSBA": ("BA" if self.inpatient else "PK") + self.ma_lk[:10], "MA_TTDV": self.c.r.head(self.fac),
        }  # fmt: skip
        sr = next(
            (self.c.by_id.get(("ServiceRequest", ref_id(b))) for b in self.enc.get("basedOn", [])), None
        )
        if sr:
            src = self.c.by_id.get(("Encounter", ref_id(sr["encounter"])))
            if src:
                row["MA_NOI_DI"] = self.c.r.facility[ref_id(src["serviceProvider"])].code
            row["GIAY_CHUYEN_TUYEN"] = sr["identifier"][0]["value"]
        for appt_ref in self.enc.get("appointment", []):
            row["GIAY_CHUYEN_TUYEN"] = row.get("GIAY_CHUYEN_TUYEN") or _slip(self.c, ref_id(appt_ref))
        issued = [r for r in self.items if r["resourceType"] == "ServiceRequest"]
        if issued:
            dest = self.c.r.facility[ref_id(issued[0]["performer"][0])]
            row["MA_NOI_DEN"], row["MA_LOAI_RV"] = dest.code, "2"
        return row

    def _weight(self) -> str | None:
        for r in self.items:
            if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "29463-7":
                return f"{r['valueQuantity']['value']:.2f}"
        return None

    def _children(self) -> list[tuple[Person, list[Resource]]]:
        if self.enc["type"][0]["text"] != "Sinh con":
            return []
        return [(k, rec) for k, rec in self.c.newborns if iso(k.birth).replace("-", "") == self.start[:8]]

    def _newborn_weights(self) -> str | None:
        weights = [birth_weight(rec) for _, rec in self._children()]
        return ";".join(w for w in weights if w) or None

    def xml2(self) -> list[Row]:
        rows: list[Row] = []
        for mr in (r for r in self.items if r["resourceType"] == "MedicationRequest"):
            atc = mr["medicationCodeableConcept"]["coding"][0]["code"]
            code, name, strength, unit, form, price = DRUGS[atc]
            qty = mr["dispenseRequest"]["quantity"]["value"]
            per_day = mr["dosageInstruction"][0]["timing"]["repeat"]["frequency"]
            days = mr["dispenseRequest"]["expectedSupplyDuration"]["value"]
            ordered = self.start[:8] + self.start[8:]
            row: Row = {
                "MA_LK": self.ma_lk, "STT": str(len(rows) + 1), "MA_THUOC": code, "MA_NHOM": "4",
                "TEN_THUOC": name, "DON_VI_TINH": unit, "HAM_LUONG": strength or None, "DUONG_DUNG": "1.01",
                "DANG_BAO_CHE": form, "LIEU_DUNG": f"1 {unit}/lần * {per_day} lần/ngày * {days} ngày [{per_day} {unit}/ngày]",
                "CACH_DUNG": mr["dosageInstruction"][0]["text"], "SO_DANG_KY": f"VD-{int(code.split('.')[1]) + 20000}-21",
                "TT_THAU": "G1;N1;2026", "PHAM_VI": "1", "TYLE_TT_BH": "100", "SO_LUONG": num(qty),
                "DON_GIA": str(price), "THANH_TIEN_BV": money(qty * price), "THANH_TIEN_BH": money(qty * price if self.rate else 0),
                "MUC_HUONG": str(self.rate) if self.rate else None, "T_BHTT": money(round(qty * price * self.rate / 100, 2)),
                "MA_KHOA": self.department, "MA_BAC_SI": self.c.r.certificate(ref_id(mr["requester"])),
                "NGAY_YL": ordered, "NGAY_TH_YL": ordered if self.inpatient else None, "NGUON_CTRA": "1",
            }  # fmt: skip
            rows.append(row)
        return rows

    def _service(self, code: str, name: str, price: int, qty: int = 1, **extra: str | None) -> Row:
        total = price * qty
        row: Row = {
            "MA_LK": self.ma_lk, "MA_DICH_VU": code, "TEN_DICH_VU": name, "DON_VI_TINH": "Lần", "PHAM_VI": "1",
            "SO_LUONG": str(qty), "DON_GIA_BV": str(price), "DON_GIA_BH": str(price), "TYLE_TT_DV": "100",
            "TYLE_TT_BH": "100", "THANH_TIEN_BV": str(total), "THANH_TIEN_BH": str(total if self.rate else 0),
            "MUC_HUONG": str(self.rate) if self.rate else None, "T_BHTT": money(round(total * self.rate / 100, 2)),
            "MA_KHOA": self.department, "MA_BAC_SI": self.doctor, "NGAY_YL": self.start,
        }  # fmt: skip
        row.update(extra)
        return row

    def xml3_xml4(self) -> tuple[list[Row], list[Row]]:
        services: list[Row] = []
        results: list[Row] = []
        exam_code, exam_price = EXAM.get(self.fac.level, EXAM_HOSPITAL)
        if not self.inpatient:
            services.append(
                self._service(exam_code, "Khám Nội", exam_price, MA_NHOM="13", NGAY_KQ=self.start)
            )
        else:
            nights = max(1, self._ordinal(self.end) - self._ordinal(self.start))
            services.append(self._service(BED[0], BED[1], BED[2], nights, MA_NHOM="15", MA_GIUONG="H1.01",
                                          NGAY_TH_YL=self.start, NGAY_KQ=self.end, DON_VI_TINH="Ngày"))  # fmt: skip
        for obs in (r for r in self.items if r["resourceType"] == "Observation"):
            loinc = obs["code"]["coding"][0]["code"]
            if loinc not in LAB_SERVICES:
                continue
            code, name, index, price = LAB_SERVICES[loinc]
            done = compact(obs["effectiveDateTime"]) or self.start
            services.append(
                self._service(code, name, price, MA_NHOM="1", NGAY_KQ=done, NGUOI_THUC_HIEN=self.doctor)
            )
            q = obs["valueQuantity"]
            results.append({
                "MA_LK": self.ma_lk, "STT": str(len(results) + 1), "MA_DICH_VU": code, "MA_CHI_SO": index,
                "TEN_CHI_SO": obs["code"]["text"], "GIA_TRI": num(q["value"]), "DON_VI_DO": q["unit"],
                "KET_LUAN": {"H": "Tăng", "L": "Giảm"}.get(obs.get("interpretation", [{}])[0].get("coding", [{}])[0].get("code", "")) if obs.get("interpretation") else None,
                "NGAY_KQ": done, "MA_BS_DOC_KQ": self.doctor,
            })  # fmt: skip
        for proc in (r for r in self.items if r["resourceType"] == "Procedure"):
            snomed = proc["code"]["coding"][0]["code"]
            if snomed not in DELIVERY:
                continue
            code, name, icd9, price = DELIVERY[snomed]
            performer = self.c.r.certificate(ref_id(proc["performer"][0]["actor"]))
            services.append(self._service(code, name, price, MA_NHOM="8", MA_PTTT_QT=icd9, NGUOI_THUC_HIEN=performer,
                                          NGAY_TH_YL=compact(proc["performedDateTime"]), PP_VO_CAM="2" if icd9 == "74.1" else None,
                                          NGAY_KQ=compact(proc["performedDateTime"])))  # fmt: skip
        for n, row in enumerate(services, start=1):
            row["STT"] = str(n)
        return services, results

    def xml5(self) -> list[Row]:
        if not (self.inpatient or self.chronic):
            return []
        bp = next((r for r in self.items if r["resourceType"] == "Observation" and "component" in r), None)
        rows: list[Row] = []
        if self.chronic:
            text = "Người bệnh tỉnh, không đau đầu, không phù. Tiếp tục điều trị theo đơn."
            if bp:
                s, d = (c["valueQuantity"]["value"] for c in bp["component"])
                text += f" CSST<M{70 + int(self.rng.random() * 20)}_HA{s}/{d}>"
            rows.append({"MA_LK": self.ma_lk, "STT": "1", "DIEN_BIEN_LS": text, "THOI_DIEM_DBLS": self.start,
                         "NGUOI_THUC_HIEN": self.doctor})  # fmt: skip
            return rows
        days = max(1, self._ordinal(self.end) - self._ordinal(self.start))
        for k in range(days):
            stamp = f"{iso(self._ordinal(self.start) + k).replace('-', '')}0800" if k else self.start
            pulse, temp = (
                70 + int(self.rng.random() * 25),
                round(36.5 + self.rng.random() * (1.8 if k == 0 else 0.8), 1),
            )
            sbp = 105 + int(self.rng.random() * 35)
            text = (
                f"Ngày điều trị thứ {k + 1}: người bệnh tỉnh, tiếp xúc tốt. "
                f"CSST<M{pulse}_T{temp}_HA{sbp}/{int(sbp * 0.62)}_NT{16 + int(self.rng.random() * 6)}_HL3>"
            )
            rows.append({"MA_LK": self.ma_lk, "STT": str(k + 1), "DIEN_BIEN_LS": text, "THOI_DIEM_DBLS": stamp,
                         "NGUOI_THUC_HIEN": self.doctor,
                         "PHAU_THUAT": "Mổ lấy thai, gây tê tủy sống" if k == 0 and self._caesarean() else None})  # fmt: skip
        return rows

    def _caesarean(self) -> bool:
        return any(
            r["resourceType"] == "Procedure" and r["code"]["coding"][0]["code"] == "11466000"
            for r in self.items
        )

    def xml7(self, main: str, others: list[str]) -> Row:
        name = self.c.r.staff.get(ref_id(self.enc["participant"][0]["individual"]), (None, "", ""))[2]
        return {
            "MA_LK": self.ma_lk, "SO_LUU_TRU": "LT" + self.ma_lk[:8], "MA_YTE": "YT" + self.p.cccd[-8:],
            "MA_KHOA_RV": self.department, "NGAY_VAO": self.start, "NGAY_RA": self.end,
            "CHAN_DOAN_RV": "; ".join(CODES[c].name for c in [main, *others] if c in CODES),
            "PP_DIEUTRI": "Phẫu thuật" if self._caesarean() else "Điều trị nội khoa",
            "GHI_CHU": "Tái khám theo hẹn", "MA_TTDV": self.c.r.head(self.fac), "MA_BS": self.doctor,
            "TEN_BS": name, "NGAY_CT": self.end[:8], "TUOI_THAI": "39" if self._children() else None,
        }  # fmt: skip

    def xml8(self, main: str, others: list[str]) -> Row:
        labs = [
            r
            for r in self.items
            if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] in LAB_SERVICES
        ]
        summary = "; ".join(
            f"{o['code']['text']} {num(o['valueQuantity']['value'])} {o['valueQuantity']['unit']}"
            for o in labs
        )
        return {
            "MA_LK": self.ma_lk, "MA_LOAI_KCB": self.kind, "DON_VI": None, "NGAY_VAO": self.start,
            "NGAY_RA": self.end, "CHAN_DOAN_VAO": CODES[main].name if main in CODES else None,
            "CHAN_DOAN_RV": "; ".join(CODES[c].name for c in [main, *others] if c in CODES),
            "QT_BENHLY": f"Người bệnh vào viện vì {self.enc['type'][0]['text'].lower()}.",
            "TOMTAT_KQ": summary or "Không có gì đặc biệt", "PP_DIEUTRI": "Phẫu thuật" if self._caesarean() else "Điều trị nội khoa",
            "KET_QUA_DTRI": "2", "NGAY_CT": self.end[:8], "MA_TTDV": self.c.r.head(self.fac),
        }  # fmt: skip

    def xml9(self) -> list[Row]:
        rows: list[Row] = []
        p = self.p
        for n, (child, record) in enumerate(self._children(), start=1):
            order = sorted(p.births).index(child.birth) + 1
            rows.append({
                "MA_LK": self.ma_lk, "MA_BHXH_NND": p.bhyt[5:] if p.bhyt else None, "MA_THE_NND": p.bhyt,
                "HO_TEN_NND": p.name.text, "NGAYSINH_NND": iso(p.birth).replace("-", ""), "MA_DANTOC_NND": ETHNIC.get(p.group, "01"),
                "SO_CCCD_NND": p.cccd, "NGAYCAP_CCCD_NND": f"{max(2021, int(iso(p.birth)[:4]) + 14)}0710",
                "NOICAP_CCCD_NND": "Cục Cảnh sát quản lý hành chính về trật tự xã hội", "NOI_CU_TRU_NND": p.address["text"],
                "MATINH_CU_TRU": p.province.code, "MAXA_CU_TRU": p.commune.code,
                "MA_THE_TAM": child.bhyt if child.bhyt and child.bhyt.startswith("TE") else None,
                "HO_TEN_CON": child.name.text, "GIOI_TINH_CON": "1" if child.gender == "male" else "2", "SO_CON": "1",
                "LAN_SINH": str(order), "SO_CON_SONG": str(order), "CAN_NANG_CON": birth_weight(record),
                "NGAY_SINH_CON": self.start[:8] + f"{6 + int(self.rng.random() * 14):02d}{int(self.rng.random() * 60):02d}",
                "NOI_SINH_CON": self.fac.name, "TINH_TRANG_CON": "Khỏe mạnh",
                "SINHCON_PHAUTHUAT": "1" if self._caesarean() else "0", "SINHCON_DUOI32TUAN": "0",
                "NGUOI_DO_DE": self.c.r.staff.get(ref_id(self.enc["participant"][0]["individual"]), (None, "", ""))[2],
                "NGUOI_GHI_PHIEU": self.fac.name, "NGAY_CT": self.end[:8], "SO": f"{n:02d}{self.ma_lk[:6]}",
                "QUYEN_SO": self.start[:4], "MA_TTDV": self.c.r.head(self.fac),
            })  # fmt: skip
        return rows

    def xml13(self, main: str, others: list[str]) -> list[Row]:
        rows: list[Row] = []
        for sr in (r for r in self.items if r["resourceType"] == "ServiceRequest"):
            dest = self.c.r.facility[ref_id(sr["performer"][0])]
            rows.append({
                "MA_LK": self.ma_lk, "SO_HOSO": "HS" + sr["id"][:8].upper(), "SO_CHUYENTUYEN": self.start[:4] + sr["id"][:4],
                "GIAY_CHUYEN_TUYEN": sr["identifier"][0]["value"], "MA_CSKCB": self.fac.code, "MA_NOI_DEN": dest.code,
                **self.identity(), "NGAY_VAO": self.start, "NGAY_RA": self.end,
                "DAU_HIEU_LS": "Người bệnh tỉnh, sốt nhẹ", "CHAN_DOAN_RV": CODES[main].name if main in CODES else None,
                "QT_BENHLY": f"Bệnh diễn biến, {self.enc['type'][0]['text'].lower()}", "TOMTAT_KQ": "Chưa làm xét nghiệm",
                "PP_DIEUTRI": "Điều trị triệu chứng", "MA_BENH_CHINH": main, "MA_BENH_KT": ";".join(others) or None,
                "MA_LOAI_RV": "2", "MA_LYDO_CT": "2" if dest.level != "trung-uong" else "1",
                "HUONG_DIEU_TRI": f"Chuyển {dest.name} khám và điều trị chuyên khoa",
                "PHUONGTIEN_VC": "Xe cứu thương" if self.enc["class"]["code"] == "EMER" else "Tự túc",
                "MA_BAC_SI": self.c.r.certificate(ref_id(sr["requester"])), "MA_TTDV": self.c.r.head(self.fac),
            })  # fmt: skip
        return rows

    def xml14(self, main: str, others: list[str]) -> list[Row]:
        rows: list[Row] = []
        short = (
            int(self.fac.code[-1]) % 2 == 1
        )  # these facilities write NGAY_HEN_KL with 8 digits (QĐ 3176 tools)
        for appt in self.c.issued.get(self.enc["id"], []):
            when = compact(appt["start"]) or ""
            rows.append({
                "MA_LK": self.ma_lk, "SO_GIAYHEN_KL": _slip(self.c, appt["id"]), "MA_CSKCB": self.fac.code,
                **self.identity(), "NGAY_VAO": self.start, "NGAY_RA": self.end,
                "NGAY_HEN_KL": when[:8] if short else when, "CHAN_DOAN_RV": CODES[main].name if main in CODES else None,
                "MA_BENH_CHINH": main, "MA_BENH_KT": ";".join(others) or None,
                "MA_DOITUONG_KCB": "1" if self.card() else None, "MA_BAC_SI": self.doctor,
                "MA_TTDV": self.c.r.head(self.fac), "NGAY_CT": self.end[:8],
            })  # fmt: skip
        return rows


def _slip(c: Citizen, appointment_id: str) -> str:
    return f"GH-{appointment_id[:8].upper()}"
