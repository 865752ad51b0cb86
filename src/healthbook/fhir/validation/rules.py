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


def document_problems(bundle: dict[Any, Any], path: str) -> list[Problem]:
    """bdl-9, bdl-10 and bdl-11: a document Bundle has an identifier, a timestamp and a Composition first."""
    if bundle.get("type") != "document":
        return []
    problems: list[Problem] = []
    ident = bundle.get("identifier")
    if type(ident) is not dict or "system" not in ident or "value" not in ident:
        message = "A document must have an identifier with a system and a value (bdl-9)"
        problems.append(("invariant", message, path + ".identifier"))
    if "timestamp" not in bundle:
        problems.append(("invariant", "A document must have a date (bdl-10)", path + ".timestamp"))
    entries = bundle.get("entry")
    first = entries[0] if type(entries) is list and entries else None
    resource = first.get("resource") if type(first) is dict else None
    if type(resource) is not dict or resource.get("resourceType") != "Composition":
        message = "A document must have a Composition as the first resource (bdl-11)"
        problems.append(("invariant", message, path + ".entry[0].resource"))
    return problems


def section_problems(composition: dict[Any, Any], path: str) -> list[Problem]:
    """cmp-1 and cmp-2 on every (nested) Composition.section."""
    problems: list[Problem] = []
    todo: list[tuple[Any, str]] = [(composition.get("section"), path + ".section")]
    while todo:
        sections, where = todo.pop()
        for i, sec in enumerate(sections if type(sections) is list else []):
            if type(sec) is not dict:
                continue
            at = f"{where}[{i}]"
            if not any(k in sec for k in ("text", "entry", "section")):
                message = "A section must contain at least one of text, entries, or sub-sections (cmp-1)"
                problems.append(("invariant", message, at))
            if "emptyReason" in sec and "entry" in sec:
                message = "A section can only have an emptyReason if it is empty (cmp-2)"
                problems.append(("invariant", message, at + ".emptyReason"))
            todo.append((sec.get("section"), at + ".section"))
    return problems
