"""A hand-written XML130 episode that fills every mapped table, for tests (the generator makes bulk data)."""

from __future__ import annotations

import copy
from typing import Any

from healthbook.imports.xml130 import render

Rows = dict[str, list[dict[str, Any]]]

PATIENT = {
    "HO_TEN": "Nguyễn Thị Hoa",
    "SO_CCCD": "001190123456",
    "NGAY_SINH": "199001020000",
    "GIOI_TINH": "2",
    "MA_THE_BHYT": "DN4010123456789",
    "DIA_CHI": "Số 12 đường Lê Lợi, Phường Hoàn Kiếm, Thành phố Hà Nội",
}
SLIP = {k: v for k, v in PATIENT.items() if k != "SO_CCCD"}  # XML13 and XML14 carry no SO_CCCD


def episode_rows(ma_lk: str = "LK0001", facility: str = "01001") -> Rows:
    """The rows of one inpatient delivery episode with drugs, labs, notes, papers, referral and appointment."""
    x1 = {
        "MA_LK": ma_lk, "STT": "1", "MA_BN": "BN0001", **PATIENT, "NHOM_MAU": "O+", "MA_QUOCTICH": "000",
        "MA_DANTOC": "01", "MA_NGHE_NGHIEP": "00000", "MATINH_CU_TRU": "01", "MAXA_CU_TRU": "00070",
        "DIEN_THOAI": "0912345678", "MA_DKBD": "01100", "GT_THE_TU": "20260101", "GT_THE_DEN": "20261231",
        "LY_DO_VV": "Chuyển dạ", "CHAN_DOAN_VAO": "Thai 39 tuần chuyển dạ",
        "CHAN_DOAN_RV": "Mổ lấy thai chủ động; thiếu máu", "MA_BENH_CHINH": "O82.0", "MA_BENH_KT": "O99.0;D50.9",
        "MA_PTTT_QT": "74.1", "MA_DOITUONG_KCB": "1", "MA_NOI_DI": "01100", "MA_NOI_DEN": "01904",
        "NGAY_VAO": "202606010830", "NGAY_VAO_NOI_TRU": "202606010845", "NGAY_RA": "202606041000",
        "GIAY_CHUYEN_TUYEN": "CT-01100-0001", "SO_NGAY_DTRI": "4", "KET_QUA_DTRI": "2", "MA_LOAI_RV": "2",
        "NGAY_TTOAN": "202606041000", "T_THUOC": "18000", "T_TONGCHI_BV": "3000000", "MA_LOAI_KCB": "03",
        "MA_KHOA": "K25", "MA_CSKCB": facility, "CAN_NANG": "62.50", "CAN_NANG_CON": "3100",
        "NGAY_TAI_KHAM": "20260611;20260711", "MA_HSBA": "BA0001", "MA_TTDV": "0112345678",
    }  # fmt: skip
    return {
        "XML1": [x1],
        "XML2": [
            {"MA_LK": ma_lk, "STT": "1", "MA_THUOC": "40.822", "TEN_THUOC": "Sắt fumarat + acid folic",
             "DON_VI_TINH": "viên", "DUONG_DUNG": "1.01", "LIEU_DUNG": "1 viên/lần * 1 lần/ngày * 30 ngày [1 viên/ngày]",
             "CACH_DUNG": "Uống sau ăn sáng", "SO_LUONG": "30", "DON_GIA": "600", "MA_BAC_SI": "01001/CCHN-0001",
             "NGAY_YL": "202606011000", "NGAY_TH_YL": "202606011030", "MA_NHOM": "4"},
            {"MA_LK": ma_lk, "STT": "2", "MA_THUOC": "VM.01904", "TEN_THUOC": "Vận chuyển máu", "SO_LUONG": "1",
             "DON_GIA": "150000", "NGAY_YL": "202606011000", "MA_NHOM": "7"},
        ],
        "XML3": [
            {"MA_LK": ma_lk, "STT": "1", "MA_DICH_VU": "K03.1917", "TEN_DICH_VU": "Giường Sản khoa",
             "MA_GIUONG": "H1.01", "MA_NHOM": "15", "SO_LUONG": "3", "DON_GIA_BV": "221000", "NGAY_YL": "202606010900"},
            {"MA_LK": ma_lk, "STT": "2", "MA_DICH_VU": "12.0297.0591", "TEN_DICH_VU": "Phẫu thuật lấy thai lần đầu",
             "MA_PTTT_QT": "74.1", "MA_NHOM": "8", "SO_LUONG": "1", "DON_GIA_BV": "2700000",
             "NGUOI_THUC_HIEN": "01001/CCHN-0003;01001/CCHN-0005", "MA_BENH": "O82.0",
             "NGAY_TH_YL": "202606011100", "NGAY_KQ": "202606011200", "MA_BAC_SI": "01001/CCHN-0001"},
            {"MA_LK": ma_lk, "STT": "3", "MA_DICH_VU": "22.0120.1370", "TEN_DICH_VU": "Định lượng huyết sắc tố",
             "MA_NHOM": "1", "SO_LUONG": "1", "DON_GIA_BV": "40000", "NGAY_YL": "202606010900",
             "NGAY_KQ": "202606011000"},
            {"MA_LK": ma_lk, "STT": "4", "MA_VAT_TU": "N07.01.010", "TEN_VAT_TU": "Chỉ tiêu tổng hợp",
             "MA_NHOM": "10", "SO_LUONG": "2", "DON_GIA_BV": "35000", "NGAY_YL": "202606011100"},
        ],
        "XML4": [
            {"MA_LK": ma_lk, "STT": "1", "MA_DICH_VU": "22.0120.1370", "MA_CHI_SO": "HGB",
             "TEN_CHI_SO": "Huyết sắc tố", "GIA_TRI": "98", "DON_VI_DO": "g/L", "KET_LUAN": "Thiếu máu nhẹ",
             "NGAY_KQ": "202606011000", "MA_BS_DOC_KQ": "01001/CCHN-0007"},
            {"MA_LK": ma_lk, "STT": "2", "MA_DICH_VU": "22.0120.1370", "MA_CHI_SO": "WBC",
             "TEN_CHI_SO": "Số lượng bạch cầu", "GIA_TRI": "<15.5", "DON_VI_DO": "G/L", "NGAY_KQ": "202606011000"},
        ],
        "XML5": [
            {"MA_LK": ma_lk, "STT": "1", "DIEN_BIEN_LS": "Sản phụ tỉnh. CSST<M88_T37.2_HA120/75_NT18_SP98_HL2>",
             "THOI_DIEM_DBLS": "202606010900", "NGUOI_THUC_HIEN": "01001/CCHN-0001"},
            {"MA_LK": ma_lk, "STT": "2", "PHAU_THUAT": "Mổ lấy thai, gây tê tủy sống",
             "THOI_DIEM_DBLS": "202606011100", "NGUOI_THUC_HIEN": "01001/CCHN-0003"},
        ],
        "XML7": [
            {"MA_LK": ma_lk, "SO_LUU_TRU": "LT-0001", "MA_YTE": "YT01", "MA_KHOA_RV": "K25",
             "NGAY_VAO": "202606010830", "NGAY_RA": "202606041000", "CHAN_DOAN_RV": "Mổ lấy thai chủ động",
             "PP_DIEUTRI": "Phẫu thuật", "GHI_CHU": "Tái khám sau 1 tuần", "MA_BS": "01001/CCHN-0001",
             "TEN_BS": "Trần Văn Bình", "NGAY_CT": "20260604", "TUOI_THAI": "39", "MA_TTDV": "0112345678"},
        ],
        "XML8": [
            {"MA_LK": ma_lk, "MA_LOAI_KCB": "03", "NGAY_VAO": "202606010830", "NGAY_RA": "202606041000",
             "CHAN_DOAN_VAO": "Thai 39 tuần", "CHAN_DOAN_RV": "Mổ lấy thai chủ động", "QT_BENHLY": "Chuyển dạ",
             "TOMTAT_KQ": "Hb 98 g/L", "PP_DIEUTRI": "Phẫu thuật", "KET_QUA_DTRI": "2", "NGAY_CT": "20260604"},
        ],
        "XML9": [
            {"MA_LK": ma_lk, "MA_BHXH_NND": "0123456789", "MA_THE_NND": "DN4010123456789",
             "HO_TEN_NND": PATIENT["HO_TEN"], "NGAYSINH_NND": "19900102", "MA_DANTOC_NND": "01",
             "SO_CCCD_NND": PATIENT["SO_CCCD"], "NOI_CU_TRU_NND": PATIENT["DIA_CHI"], "MATINH_CU_TRU": "01",
             "MAXA_CU_TRU": "00070", "HO_TEN_CHA": "Lê Văn Nam", "MA_THE_TAM": "TE1010999888777",
             "HO_TEN_CON": "Lê Minh Khôi", "GIOI_TINH_CON": "1", "SO_CON": "1", "LAN_SINH": "1",
             "SO_CON_SONG": "1", "CAN_NANG_CON": "3100", "NGAY_SINH_CON": "202606011130",
             "NOI_SINH_CON": "Bệnh viện Phụ sản", "TINH_TRANG_CON": "Khỏe mạnh", "SINHCON_PHAUTHUAT": "1",
             "SINHCON_DUOI32TUAN": "0", "NGUOI_DO_DE": "Trần Văn Bình", "NGAY_CT": "20260604", "SO": "123",
             "QUYEN_SO": "2026"},
        ],
        "XML13": [
            {"MA_LK": ma_lk, "SO_HOSO": "HS-01", "SO_CHUYENTUYEN": "SCT-01", "GIAY_CHUYEN_TUYEN": "CT-01001-0009",
             "MA_CSKCB": facility, "MA_NOI_DEN": "01904", **SLIP, "NGAY_VAO": "202606010830",
             "NGAY_RA": "202606041000", "DAU_HIEU_LS": "Thiếu máu", "MA_BENH_CHINH": "D50.9", "MA_BENH_KT": "O99.0",
             "MA_LOAI_RV": "2", "MA_LYDO_CT": "2", "HUONG_DIEU_TRI": "Điều trị thiếu máu",
             "PHUONGTIEN_VC": "Xe cứu thương", "MA_BAC_SI": "01001/CCHN-0001"},
        ],
        "XML14": [
            {"MA_LK": ma_lk, "SO_GIAYHEN_KL": "GH-0001", "MA_CSKCB": facility, **SLIP,
             "NGAY_VAO": "202606010830", "NGAY_RA": "202606041000", "NGAY_HEN_KL": "202606110800",
             "CHAN_DOAN_RV": "Sau mổ lấy thai", "MA_BENH_CHINH": "O82.0", "MA_BAC_SI": "01001/CCHN-0001",
             "NGAY_CT": "20260604"},
        ],
        "XML15": [{"MA_LK": ma_lk, "STT": "1", "PHANLOAI_LAO_VITRI": "1", "MA_CSKCB": facility}],
    }  # fmt: skip


def tables(rows: Rows) -> list[tuple[str, bytes]]:
    """Each table as its document (one document per row for the single-row tables)."""
    out: list[tuple[str, bytes]] = []
    for name, table_rows in rows.items():
        if name in ("XML1", "XML7", "XML8", "XML13", "XML14"):
            out.extend((name, render.table_document(name, [r])) for r in table_rows)
        else:
            out.append((name, render.table_document(name, table_rows)))
    return out


def submission(*episodes: Rows | bytes, facility: str = "01001") -> bytes:
    """A GIAMDINHHS file of episodes given as rows (or as ready HOSO elements)."""
    return render.submission(
        facility,
        [e if isinstance(e, bytes) else render.hoso(tables(e)) for e in episodes],
        ngaylap="20260605",
    )


def variant(rows: Rows, table: str, row: int = 0, **values: Any) -> Rows:
    """A copy with some values of one row changed (None removes the field)."""
    out = copy.deepcopy(rows)
    for k, v in values.items():
        if v is None:
            out[table][row].pop(k, None)
        else:
            out[table][row][k] = v
    return out
