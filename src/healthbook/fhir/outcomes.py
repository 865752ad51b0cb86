"""OperationOutcome building blocks shared by validation, storage and the HTTP layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in a request, in the vocabulary of OperationOutcome.issue."""

    severity: str  # fatal | error | warning | information
    code: str  # IssueType code: invalid, structure, required, value, code-invalid, not-found, ...
    diagnostics: str
    expression: str | None = None  # FHIRPath of the offending element, e.g. "Patient.name[0].given[1]"

    def to_json(self) -> dict[str, Any]:
        """Render as an OperationOutcome.issue element."""
        out: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            out["expression"] = [self.expression]
        return out


def operation_outcome(issues: Sequence[Issue]) -> dict[str, Any]:
    """Build an OperationOutcome resource; an empty list yields a single 'informational' issue."""
    if not issues:
        issues = [Issue("information", "informational", "All OK")]
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


def has_errors(issues: Sequence[Issue]) -> bool:
    """True when any issue should make the server reject the request."""
    return any(i.severity in ("error", "fatal") for i in issues)
