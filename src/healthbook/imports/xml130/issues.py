"""What the import reports: problems located by file, HOSO, table, row, field and value; OperationOutcomes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MAX_SHOWN = 80  # characters of an offending value quoted in a message
MAX_ISSUES = 2000  # issues in one OperationOutcome; the rest are counted in a final issue


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: an error rejects its episode (or the file), a warning is reported and the data kept."""

    severity: str  # error | warning | information
    code: (
        str  # OperationOutcome IssueType: structure, value, too-long, code-invalid, required, duplicate, ...
    )
    message: str
    table: str | None = None  # LOAIHOSO, e.g. "XML2"
    row: int | None = None  # 1-based row of that table
    field: str | None = None  # element name, e.g. "SO_LUONG"
    value: str | None = None  # the offending value as found
    line: int | None = None  # line in the submitted file

    @property
    def is_error(self) -> bool:
        """Errors reject the episode (or the whole file at wrapper level)."""
        return self.severity in ("error", "fatal")

    def located(self) -> str:
        """'XML2 row 2, SO_LUONG = '1,5': not a number' and the like."""
        where = []
        if self.table:
            where.append(self.table + (f" row {self.row}" if self.row is not None else ""))
        if self.field:
            where.append(self.field + (f" = {shown(self.value)}" if self.value is not None else ""))
        elif self.value is not None:
            where.append(shown(self.value))
        return (", ".join(where) + ": " if where else "") + self.message

    def expression(self) -> str | None:
        """A path into the table: XML2[2].SO_LUONG."""
        if not self.table:
            return None
        out = self.table + (f"[{self.row}]" if self.row is not None else "")
        return out + (f".{self.field}" if self.field else "")


def shown(value: str) -> str:
    """A value quoted for a message, shortened and with control characters made visible."""
    text = value if len(value) <= MAX_SHOWN else value[: MAX_SHOWN - 1] + "…"
    return repr(text) if any(ord(c) < 32 for c in text) else f"'{text}'"


def error(code: str, message: str, **where: Any) -> Problem:
    """An error at a location (table=, row=, field=, value=, line=)."""
    return Problem("error", code, message, **where)


def warning(code: str, message: str, **where: Any) -> Problem:
    """A warning at a location."""
    return Problem("warning", code, message, **where)


@dataclass
class EpisodeReport:
    """The outcome of one HOSO of a file."""

    position: int  # HOSO number in the file, from 1
    line: int | None
    ma_lk: str | None = None
    status: str = "rejected"  # created | updated | unchanged | rejected
    problems: list[Problem] = field(default_factory=list)
    resources: int = 0  # resources written (created or changed) for it, deletions included

    @property
    def rejected(self) -> bool:
        """True when nothing of the episode was stored."""
        return self.status == "rejected"


@dataclass
class FileReport:
    """The outcome of one submitted file."""

    name: str
    macskcb: str | None = None
    refused: bool = False  # the file as a whole was not accepted (not GIAMDINHHS, too large, malformed)
    problems: list[Problem] = field(default_factory=list)  # about the wrapper
    episodes: list[EpisodeReport] = field(default_factory=list)

    def count(self, status: str) -> int:
        """Episodes with that status."""
        return sum(1 for e in self.episodes if e.status == status)

    @property
    def imported(self) -> int:
        """Episodes stored (created, updated or already current)."""
        return sum(1 for e in self.episodes if not e.rejected)

    def summary(self) -> str:
        """One line of counts."""
        if self.refused:
            return f"{self.name}: refused"
        resources = sum(e.resources for e in self.episodes)
        return (
            f"{self.name}: {len(self.episodes)} episodes (MACSKCB {self.macskcb or '?'}): "
            f"{self.count('created')} created, {self.count('updated')} updated, "
            f"{self.count('unchanged')} unchanged, {self.count('rejected')} rejected; "
            f"{resources} resources written"
        )


def _issue(p: Problem, prefix: str, location: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "severity": p.severity,
        "code": p.code,
        "details": {"text": p.located()},
        "diagnostics": prefix + p.located(),
    }
    if location:
        out["location"] = [location]
    expr = p.expression()
    if expr:
        out["expression"] = [expr]
    return out


def _file_prefix(name: str, line: int | None) -> str:
    return f"{name}:{line}: " if line else f"{name}: "


def issues_of(report: FileReport) -> Iterable[dict[str, Any]]:
    """OperationOutcome issues of one file: the summary, wrapper problems, then per-episode problems."""
    if not report.refused:  # a refused file is described by its problem alone
        yield {"severity": "information", "code": "informational", "diagnostics": report.summary()}
    for p in report.problems:
        yield _issue(p, _file_prefix(report.name, p.line), "/GIAMDINHHS")
    for ep in report.episodes:
        what = f"HOSO {ep.position}" + (f" (MA_LK '{ep.ma_lk}')" if ep.ma_lk else "")
        location = f"/GIAMDINHHS/THONGTINHOSO/DANHSACHHOSO/HOSO[{ep.position}]"
        for p in ep.problems:
            yield _issue(p, _file_prefix(report.name, p.line or ep.line) + what + ": ", location)
        if ep.rejected and not any(p.is_error for p in ep.problems):
            yield _issue(Problem("error", "processing", "not imported"), what + ": ", location)


def operation_outcome(reports: list[FileReport]) -> dict[str, Any]:
    """One OperationOutcome for the files of a request or a CLI run."""
    issues: list[dict[str, Any]] = []
    left = 0
    for report in reports:
        for issue in issues_of(report):
            if len(issues) < MAX_ISSUES:
                issues.append(issue)
            else:
                left += 1
    if left:
        issues.append(
            {"severity": "information", "code": "informational",
             "diagnostics": f"{left} more issues are not listed"}
        )  # fmt: skip
    return {"resourceType": "OperationOutcome", "issue": issues}
