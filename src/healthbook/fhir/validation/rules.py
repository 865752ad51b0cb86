"""The few cheap invariants and binding rules that element tables cannot express."""

from __future__ import annotations

from typing import Any

from healthbook.fhir.validation.primitives import show

Problem = tuple[str, str, str]  # (OperationOutcome issue code, diagnostics, expression)


def contained_problems(resource: dict[Any, Any], path: str) -> list[Problem]:
    """dom-2 and dom-4: a contained resource has no contained resources, versionId or lastUpdated."""
    problems: list[Problem] = []
    if "contained" in resource:
        message = "A contained resource must not contain resources itself (dom-2)"
        problems.append(("invariant", message, path + ".contained"))
    meta = resource.get("meta")
    if type(meta) is dict:
        for name in ("versionId", "lastUpdated"):
            if name in meta:
                message = f"A contained resource must not have meta.{name} (dom-4)"
                problems.append(("invariant", message, f"{path}.meta.{name}"))
    return problems


def extension_problem(extension: dict[Any, Any], path: str, has_value: bool) -> Problem | None:
    """ext-1: an extension has either a value or nested extensions, not both and not neither."""
    has_nested = "extension" in extension
    if has_value and has_nested:
        return "invariant", f"Extension {path} has both a value and nested extensions (ext-1)", path
    if not has_value and not has_nested:
        return "invariant", f"Extension {path} has neither a value nor nested extensions (ext-1)", path
    return None


def coding_problem(
    coding: dict[Any, Any], codes: dict[str, frozenset[str]], value_set: str | None, path: str
) -> Problem | None:
    """A coding from a code system of a required value set must use one of that value set's codes."""
    system = coding.get("system")
    code = coding.get("code")
    if type(system) is not str or type(code) is not str:
        return None
    allowed = codes.get(system)
    if allowed is None or code in allowed:
        return None
    message = (
        f"Element '{path}.code' has value {show(code)} ({system}) that is not in the required value set "
        f"{value_set}"
    )
    return "code-invalid", message, path + ".code"
