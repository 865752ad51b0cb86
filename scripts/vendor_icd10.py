"""Vendor the ICD-10 list of QĐ 4469/QĐ-BYT into src/healthbook/terminology/data (code, names, sex rule).

Run `python scripts/vendor_icd10.py [SHARED_DATA_DIR]` (default ../shared/data next to the repository).
The source and its legal status are recorded in src/healthbook/terminology/data/SOURCES.md.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "healthbook" / "terminology" / "data" / "icd10-vn-qd4469.csv.gz"


def main() -> None:
    """Keep the columns the server needs, in the source's order."""
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
    rows = list(csv.DictReader((src / "icd10-vn-qd4469.csv").open(encoding="utf-8", newline="")))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["code", "marker", "name_vi", "name_en", "sex_only", "not_principal"])
    for row in rows:
        writer.writerow(
            [
                row["code_base"],
                row["marker"],
                row["name_vi"],
                row["name_en"],
                row["sex_only"],
                row["not_principal"],
            ]
        )
    OUT.write_bytes(gzip.compress(buf.getvalue().encode("utf-8"), mtime=0))
    sys.stdout.write(f"{len(rows)} codes -> {OUT.relative_to(ROOT)}\n")


if __name__ == "__main__":
    main()
