"""Search parameters per resource type, from the official R4 SearchParameter definitions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache

from healthbook.fhir.definitions import load_json
from healthbook.fhir.fhirpath import PathEvaluator, Unsupported, compile_path
from healthbook.fhir.fhirpath_general import compile_general

log = logging.getLogger(__name__)

# Parameters answered from the resource table itself, not from index rows.
NATIVE = frozenset({"_id", "_lastUpdated"})
INDEXED_TYPES = frozenset({"token", "string", "reference", "date", "number", "quantity", "uri"})


@dataclass(frozen=True, slots=True)
class ParamDef:
    """One search parameter as it applies to one resource type."""

    code: str
    type: str
    expression: str
    path: PathEvaluator | None
    targets: tuple[str, ...]
    url: str
    documentation: str

    @property
    def indexed(self) -> bool:
        """Whether write-time extraction feeds an index table for it."""
        return self.path is not None and self.type in INDEXED_TYPES and self.code not in NATIVE


def _compile(expression: str, code: str) -> PathEvaluator | None:
    """The compiled subset where it reaches, else the general FHIRPath evaluator; None if neither parses."""
    try:
        return compile_path(expression)
    except Unsupported:
        pass
    try:
        path = compile_general(expression)
    except Exception:  # fhirpathpy's parser raises various errors on invalid FHIRPath
        log.warning("search parameter %s: expression is not valid FHIRPath, not indexed", code)
        return None
    log.info("search parameter %s: general FHIRPath evaluator (outside the compiled subset)", code)
    return path


@cache
def params_for(res_type: str) -> dict[str, ParamDef]:
    """All parameters that apply to `res_type`, keyed by code (common ones included)."""
    out: dict[str, ParamDef] = {}
    for sp in load_json("searchparams.json"):
        bases = sp["base"]
        if res_type not in bases and "Resource" not in bases and "DomainResource" not in bases:
            continue
        expr = sp.get("expression") or ""
        # Keep only the union parts that can apply to this type: faster evaluation, exact semantics.
        parts = [p.strip() for p in expr.split(" | ")]
        mine = [p for p in parts if _applies(p, res_type)]
        expression = " | ".join(mine)
        path = _compile(expression, sp["code"]) if expression else None
        out[sp["code"]] = ParamDef(
            code=sp["code"],
            type=sp["type"],
            expression=expression,
            path=path,
            targets=tuple(sp.get("target", [])),
            url=sp.get("url") or "",
            documentation=f"{sp['type']} search on {expression or '(no expression)'}",
        )
    return out


def _applies(part: str, res_type: str) -> bool:
    head = part.lstrip("(").split(".", 1)[0].split(" ", 1)[0]
    return head in (res_type, "Resource", "DomainResource") or not head[:1].isupper()


@cache
def indexed_params(res_type: str) -> tuple[ParamDef, ...]:
    """The parameters whose values are extracted at write time."""
    return tuple(p for p in params_for(res_type).values() if p.indexed)
