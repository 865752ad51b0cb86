"""General FHIRPath (fhirpathpy, R4 model) behind the interface of the compiled subset's CompiledPath.

Used for search-parameter expressions that fall outside healthbook.fhir.fhirpath's compiled subset. The
subset covers every R4 definition (`Patient.deceased.exists() and Patient.deceased != false` through a
special form), so this carries expressions beyond R4's own. Each expression is parsed once; every
evaluation runs on the stored JSON as it is. An evaluation that raises returns no nodes (logged at debug
level, without any resource content), so one odd resource can never break a write.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any

import fhirpathpy
from antlr4 import CommonTokenStream, InputStream  # type: ignore[import-untyped]
from antlr4.error.ErrorListener import ErrorListener  # type: ignore[import-untyped]
from fhirpathpy.engine.nodes import FP_Quantity, FP_TimeBase, ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from healthbook.fhir.fhirpath import Node

log = logging.getLogger(__name__)

MODEL: dict[str, Any] = models["r4"]
_CHOICES: dict[str, Any] = MODEL["choiceTypePaths"]
_ELSEWHERE: dict[str, str] = MODEL["pathsDefinedElsewhere"]
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`")
_ROOT = re.compile(r"(?<![\w.%$])([A-Z][A-Za-z0-9]*)\s*\.")
_INDEX = re.compile(r"\[\d+\]")
_ANY_ROOT = frozenset({"Resource", "DomainResource"})
_UCUM = "http://unitsofmeasure.org"


class FHIRPathSyntaxError(ValueError):
    """The expression is not valid FHIRPath (fhirpathpy itself recovers from syntax errors silently)."""


class _Raise(ErrorListener):  # type: ignore[misc]
    def syntaxError(self, _r: Any, _sym: Any, line: int, column: int, msg: str, _e: Any) -> None:
        raise FHIRPathSyntaxError(f"{line}:{column}: {msg}")


def check_syntax(expression: str) -> None:
    """Parse the whole expression with the FHIRPath grammar; raise FHIRPathSyntaxError on any error."""
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(_Raise())
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(_Raise())
    parser.entireExpression()  # type: ignore[no-untyped-call]


def no_trace(_label: str, _value: Any) -> None:
    """trace() in an expression must not print from inside the server."""


def _roots(expression: str) -> frozenset[str] | None:
    """Resource types the expression navigates from (Patient.x), or None when it may apply to any type."""
    bare = _STRING.sub("''", expression)
    names = frozenset(_ROOT.findall(bare))
    if not names or names & _ANY_ROOT:
        return None
    return names


def _choice_suffix(node: ResourceNode) -> str | None:
    """'Quantity' for a node reached through Observation.value[x] as valueQuantity, else None."""
    prop = node.propName
    if not isinstance(prop, str) or not isinstance(node.path, str):
        return None
    parts = _INDEX.sub("", prop).split(".")
    path = parts[0]
    for part in parts[1:]:
        path = _ELSEWHERE.get(f"{path}.{part}", f"{path}.{part}")
    if path not in _CHOICES:
        return None
    type_name = node.path.removeprefix("System.")
    return type_name[:1].upper() + type_name[1:] if type_name else None


def _plain(value: Any) -> Any:
    """Engine values as JSON-like Python values, the form the index extraction expects."""
    if isinstance(value, bool | str | int | float):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, FP_Quantity):
        unit = str(value.unit).strip("'")
        return {"value": _plain(value.value), "unit": unit, "system": _UCUM, "code": unit}
    if isinstance(value, FP_TimeBase):
        text = getattr(value, "asStr", None)
        return text if isinstance(text, str) else str(value)
    return value


class GeneralPath:
    """One FHIRPath expression evaluated by fhirpathpy: evaluate() and applies_to() as in CompiledPath."""

    __slots__ = ("_fn", "_roots", "expression")

    def __init__(self, expression: str) -> None:
        check_syntax(expression)
        self.expression = expression
        options = {"returnRawData": True, "traceFn": no_trace}
        self._fn: Callable[..., list[Any]] = fhirpathpy.compile(expression, model=MODEL, options=options)
        self._roots = _roots(expression)

    def evaluate(self, resource: dict[str, Any]) -> list[Node]:
        """All nodes the expression selects in `resource`; [] if the evaluation fails."""
        rtype = resource.get("resourceType")
        if isinstance(rtype, str) and not self.applies_to(rtype):
            return []
        try:
            raw = self._fn(resource, None)
        except Exception as exc:  # any engine failure: index nothing for this parameter, keep the write
            log.debug("FHIRPath %r failed on a %s: %s", self.expression, rtype, type(exc).__name__)
            return []
        out: list[Node] = []
        for item in raw if isinstance(raw, list) else [raw]:
            if isinstance(item, ResourceNode):
                data = item.data
                if data is None or (isinstance(data, dict) and list(data) == ["extension"]):
                    continue  # the _name companion of a primitive without a value
                out.append(Node(data, _choice_suffix(item)))
            elif item is not None:
                out.append(Node(_plain(item)))
        return out

    def applies_to(self, resource_type: str) -> bool:
        """Whether the expression can select something in this resource type."""
        return self._roots is None or resource_type in self._roots


@lru_cache(maxsize=1024)
def compile_general(expression: str) -> GeneralPath:
    """Parse once; raises FHIRPathSyntaxError if the expression is not valid FHIRPath."""
    return GeneralPath(expression)
