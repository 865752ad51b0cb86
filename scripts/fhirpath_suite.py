"""Run the official FHIRPath R4 test suite against fhirpathpy and against our compiled subset.

Usage: python scripts/fhirpath_suite.py [SUITE_DIR] [--failures FILE]

SUITE_DIR defaults to ../shared/test-material/fhirpath-r4 beside the repository (tests-fhir-r4.xml and the
resource files it names). XML inputs are converted to FHIR JSON here, following the FHIR XML -> JSON rules
with the element tables of the vendored R4 definitions (healthbook.fhir.validation): `value` attributes
become the property value typed by the element's primitive type (boolean, integer, decimal as JSON numbers),
elements whose maximum cardinality is above 1 become arrays (even with one occurrence), `id`/`extension` of
a primitive go to the `_name` companion, contained resources become objects with `resourceType` from their
element name, and the xhtml `div` becomes its serialised XML string.

Outcome per test and engine:

* pass: the result equals the expected outputs in order (see `_matches` for how values compare), or the test
  expects an error (`invalid=...`) and the engine raised one;
* fail: a result that differs, or a result where an error was expected;
* error: the engine raised on a test that expects a result;
* not supported (our subset only): `compile_path` raised Unsupported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import signal
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SUITE = ROOT.parent / "shared" / "test-material" / "fhirpath-r4"
FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
TIMEOUT_S = 10

# ---- FHIR XML -> JSON -------------------------------------------------------------------------------------

_INT_TYPES = frozenset({"integer", "positiveInt", "unsignedInt", "integer64"})


def _local(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return "", tag


def _primitive(text: str, type_: str | None) -> Any:
    if type_ == "boolean":
        return text == "true"
    if type_ in _INT_TYPES:
        try:
            return int(text)
        except ValueError:
            return text
    if type_ == "decimal":
        try:
            return json.loads(text)  # as a JSON parser would read the number
        except ValueError:
            return text
    return text


class XmlToJson:
    """Generic FHIR XML -> JSON conversion driven by the R4 element tables (cardinality and types)."""

    def __init__(self) -> None:
        from healthbook.fhir.validation import load_model

        self.model = load_model()
        ET.register_namespace("", XHTML_NS)

    def resource(self, elem: ET.Element) -> dict[str, Any]:
        """A resource element (the root, or the child of contained / entry.resource)."""
        _, rtype = _local(elem.tag)
        out: dict[str, Any] = {"resourceType": rtype}
        table = self.model.resources.get(rtype)
        self._fill(out, elem, table)
        return out

    def _fill(self, out: dict[str, Any], elem: ET.Element, table: Any) -> None:
        for attr, value in elem.attrib.items():  # id on elements, url on Extension
            if attr != "value" and not attr.startswith("{"):
                out[attr] = value
        groups: dict[str, list[ET.Element]] = {}
        for child in elem:
            if not isinstance(child.tag, str):  # comments, processing instructions
                continue
            ns, name = _local(child.tag)
            if ns == XHTML_NS:
                groups.setdefault("div", []).append(child)
            else:
                groups.setdefault(name, []).append(child)
        for name, children in groups.items():
            el = table.elements.get(name) if table is not None else None
            self._element(out, name, children, el)

    def _element(self, out: dict[str, Any], name: str, children: list[ET.Element], el: Any) -> None:
        from healthbook.fhir.validation.model import K_COMPLEX, K_PRIMITIVE, K_RESOURCE

        is_array = el.is_array if el is not None else len(children) > 1
        if (el is not None and el.type == "xhtml") or _local(children[0].tag)[0] == XHTML_NS:
            values: list[Any] = [ET.tostring(c, encoding="unicode").strip() for c in children]
            out[name] = values if is_array else values[0]
            return
        if el is not None and el.kind == K_RESOURCE:
            res = [self.resource(next(iter(c))) for c in children if len(c)]
            out[name] = res if is_array else res[0]
            return
        primitive = (el is not None and el.kind == K_PRIMITIVE) or (
            el is None and all("value" in c.attrib for c in children)
        )
        if primitive:
            vals: list[Any] = []
            extras: list[dict[str, Any] | None] = []
            for c in children:
                vals.append(
                    _primitive(c.attrib["value"], el.type if el else None) if "value" in c.attrib else None
                )
                extra: dict[str, Any] = {}
                if "id" in c.attrib:
                    extra["id"] = c.attrib["id"]
                exts = [
                    self._complex(e, self.model.tables.get("Extension"))
                    for e in c
                    if _is_named(e, "extension")
                ]
                if exts:
                    extra["extension"] = exts
                extras.append(extra or None)
            if any(v is not None for v in vals):
                out[name] = vals if is_array else vals[0]
            if any(e is not None for e in extras):
                out["_" + name] = extras if is_array else extras[0]
            return
        table = el.table if el is not None and el.kind == K_COMPLEX else None
        objs = [self._complex(c, table) for c in children]
        out[name] = objs if is_array else objs[0]

    def _complex(self, elem: ET.Element, table: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        self._fill(out, elem, table)
        return out


def _is_named(elem: ET.Element, name: str) -> bool:
    return isinstance(elem.tag, str) and _local(elem.tag)[1] == name


# ---- the suite --------------------------------------------------------------------------------------------


@dataclass
class Case:
    group: str
    name: str
    expression: str
    inputfile: str | None
    invalid: str | None
    predicate: bool
    mode: str | None
    version: str | None
    outputs: list[tuple[str | None, str]] = field(default_factory=list)


def load_cases(suite: Path) -> list[Case]:
    """Every <test> of tests-fhir-r4.xml (those inside XML comments are not tests)."""
    root = ET.parse(suite / "tests-fhir-r4.xml").getroot()
    cases = []
    for group in root.iter("group"):
        for test in group.iter("test"):
            expr = test.find("expression")
            assert expr is not None
            cases.append(
                Case(
                    group=group.get("name", ""),
                    name=test.get("name", ""),
                    expression=expr.text or "",
                    inputfile=test.get("inputfile"),
                    invalid=expr.get("invalid"),
                    predicate=test.get("predicate") == "true",
                    mode=expr.get("mode") or test.get("mode"),
                    version=test.get("version"),
                    outputs=[(o.get("type"), o.text or "") for o in test.findall("output")],
                )
            )
    return cases


def load_inputs(suite: Path, cases: list[Case]) -> dict[str, dict[str, Any]]:
    """Every input file named by a case, as FHIR JSON."""
    conv = XmlToJson()
    out: dict[str, dict[str, Any]] = {}
    for name in sorted({c.inputfile for c in cases if c.inputfile}):
        path = suite / name
        if name.endswith(".json"):
            out[name] = json.loads(path.read_text(encoding="utf-8"))
        else:
            out[name] = conv.resource(ET.parse(path).getroot())
    return out


# ---- comparing results ------------------------------------------------------------------------------------

_TEMPORAL = re.compile(
    r"^@?(?:(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?)?(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?)?"
    r"(Z|[+-]\d{2}:\d{2})?$"
)
_QUANTITY = re.compile(r"^(-?\d+(?:\.\d+)?)\s*(?:'([^']*)'|([a-zA-Z]+))$")
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")


def _temporal_key(text: str) -> tuple[Any, ...] | None:
    m = _TEMPORAL.match(text.strip())
    if not m or not any(m.groups()[:6]):
        return None
    year, month, day, hour, minute, second, frac, tz = m.groups()
    ms = int((frac or "0")[:3].ljust(3, "0")) if second is not None else None  # 10:00:00 == 10:00:00.000
    tz = "+00:00" if tz == "Z" else tz
    if day is not None and second is not None and tz is not None:
        # A full dateTime with an offset is an instant: FHIRPath '=' compares the moments, not the offsets.
        when = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            (ms or 0) * 1000,
            tzinfo=dt.datetime.fromisoformat("2000-01-01T00:00:00" + tz).tzinfo,
        )
        return ("instant", when.astimezone(dt.UTC).isoformat())
    return (year, month, day, hour, minute, second, ms, tz)


def _actual_temporal(value: Any) -> list[tuple[Any, ...]]:
    texts = []
    if isinstance(value, str):
        texts.append(value)
    else:
        for attr in ("asStr",):
            if isinstance(getattr(value, attr, None), str):
                texts.append(getattr(value, attr))
        texts.append(str(value))
    keys = []
    for t in texts:
        t = t if t.startswith(("T", "@")) or not re.match(r"^\d{2}:", t) else "T" + t
        key = _temporal_key(t)
        if key is not None:
            keys.append(key)
    return keys


def _num(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    return None


def _quantity_parts(value: Any) -> tuple[Decimal, str] | None:
    v = getattr(value, "value", None)
    u = getattr(value, "unit", None)
    if v is not None and u is not None and not isinstance(value, dict):
        num = _num(v)
        return (num, str(u).strip("'")) if num is not None else None
    if isinstance(value, dict) and "value" in value:
        num = _num(value["value"])
        unit = value.get("code") or value.get("unit")
        return (num, str(unit)) if num is not None and unit is not None else None
    return None


_UNIT_WORDS = {"day": "d", "days": "d", "week": "wk", "weeks": "wk", "year": "a", "years": "a"}


def _one_matches(actual: Any, type_: str | None, text: str) -> bool:
    if type_ is None:
        if text in ("true", "false"):
            type_ = "boolean"
        elif text.startswith("@"):
            type_ = "dateTime"
        elif _NUMBER.match(text):
            type_ = "decimal"
        elif _QUANTITY.match(text):
            type_ = "Quantity"
        else:
            type_ = "string"
    if type_ == "boolean":
        return isinstance(actual, bool) and actual == (text == "true")
    if type_ == "integer":
        return isinstance(actual, int) and not isinstance(actual, bool) and actual == int(text)
    if type_ == "decimal":
        num = _num(actual)
        try:
            return num is not None and num == Decimal(text)
        except InvalidOperation:
            return False
    if type_ in ("date", "dateTime", "time", "instant"):
        want = _temporal_key(text)
        return want is not None and want in _actual_temporal(actual)
    if type_ == "Quantity":
        m = _QUANTITY.match(text)
        parts = _quantity_parts(actual)
        if not m or parts is None:
            return False
        unit = m.group(2) if m.group(2) is not None else m.group(3)
        return parts[0] == Decimal(m.group(1)) and _UNIT_WORDS.get(parts[1], parts[1]) == _UNIT_WORDS.get(
            unit, unit
        )
    # string, code, id, uri, ...: compare the text form
    return isinstance(actual, str) and actual == text


def _matches(actual: list[Any], outputs: list[tuple[str | None, str]]) -> bool:
    """Same length, and each item equal to the expected output at the same position."""
    return len(actual) == len(outputs) and all(
        _one_matches(a, t, text) for a, (t, text) in zip(actual, outputs, strict=True)
    )


def _as_predicate(result: list[Any]) -> list[Any]:
    if len(result) == 1 and isinstance(result[0], bool):
        return result
    return [bool(result)]


# ---- engines ----------------------------------------------------------------------------------------------


class NotSupported(Exception):
    """The engine does not implement the expression (our compiled subset)."""


class TimedOut(Exception):
    """The evaluation took longer than TIMEOUT_S."""


Engine = Callable[[str, dict[str, Any] | None], list[Any]]


def _no_trace(_label: str, _value: Any) -> None:
    return None


def fhirpathpy_engine() -> tuple[str, Engine]:
    import fhirpathpy
    from fhirpathpy.models import models

    def run(expr: str, res: dict[str, Any] | None) -> list[Any]:
        doc = json.loads(json.dumps(res)) if res else {}
        result = fhirpathpy.evaluate(doc, expr, model=models["r4"], options={"traceFn": _no_trace})
        return list(result)

    return f"fhirpathpy {fhirpathpy.__version__}", run


def subset_engine() -> tuple[str, Engine]:
    from healthbook.fhir.fhirpath import Unsupported, compile_path

    def run(expr: str, res: dict[str, Any] | None) -> list[Any]:
        try:
            path = compile_path(expr)
        except Unsupported as exc:
            raise NotSupported(str(exc)) from None
        return [n.value for n in path.evaluate(res or {})]

    return "healthbook compiled subset (healthbook.fhir.fhirpath.compile_path)", run


def _alarm(_sig: int, _frame: Any) -> None:
    raise TimedOut


def run_case(engine: Engine, case: Case, inputs: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """(outcome, detail) with outcome one of pass, fail, error, unsupported."""
    res = inputs.get(case.inputfile) if case.inputfile else None
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT_S)
    try:
        result = engine(case.expression, res)
    except NotSupported as exc:
        return "unsupported", str(exc)
    except TimedOut:
        if case.invalid:
            return "pass", "timeout (error expected)"
        return "error", f"timeout after {TIMEOUT_S}s"
    except Exception as exc:  # the engines raise anything for invalid input
        if case.invalid:
            return "pass", f"raised {type(exc).__name__}"
        return "error", f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        signal.alarm(0)
    if case.invalid:
        return "fail", f"expected a {case.invalid} error, got {_show(result)}"
    if case.predicate:
        result = _as_predicate(result)
    if _matches(result, case.outputs):
        return "pass", ""
    return "fail", f"expected {case.outputs}, got {_show(result)}"


def _show(result: list[Any]) -> str:
    return repr([str(r) if not isinstance(r, str | bool | int | float | dict) else r for r in result])[:300]


def _say(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("suite", nargs="?", type=Path, default=DEFAULT_SUITE)
    ap.add_argument("--failures", type=Path, help="write every non-passing test (per engine) to this file")
    args = ap.parse_args()
    cases = load_cases(args.suite)
    inputs = load_inputs(args.suite, cases)
    on_xml = sum(1 for c in cases if c.inputfile and c.inputfile.endswith(".xml"))
    _say(
        f"FHIRPath R4 suite: {len(cases)} tests ({on_xml} on XML inputs converted to JSON), {dt.date.today()}"
    )
    _say(f"python {sys.version.split()[0]}")
    report: list[str] = []
    for label, engine in (fhirpathpy_engine(), subset_engine()):
        counts: Counter[str] = Counter()
        v21: Counter[str] = Counter()
        start = time.perf_counter()
        for case in cases:
            outcome, detail = run_case(engine, case, inputs)
            counts[outcome] += 1
            if case.version == "2.1.0":
                v21[outcome] += 1
            if outcome != "pass":
                expr = case.expression.strip()
                report.append(f"[{label}] {outcome} {case.group}/{case.name}: {expr!r} {detail}")
        took = time.perf_counter() - start
        total = len(cases)
        supported = total - counts["unsupported"]
        rate = f"pass rate {100 * counts['pass'] / total:.1f}% of all tests"
        if counts["unsupported"]:
            rate += f"; {100 * counts['pass'] / supported:.1f}% of the {supported} it compiles"
        _say(f"\n{label}  ({took:.1f} s)")
        _say(
            f"  pass {counts['pass']}  fail {counts['fail']}  error {counts['error']}"
            f"  not supported {counts['unsupported']}  total {total}"
        )
        _say(f"  {rate}")
        _say(f"  of which FHIRPath 2.1.0 tests ({sum(v21.values())}): pass {v21['pass']}")
    if args.failures:
        args.failures.write_text("\n".join(report) + "\n", encoding="utf-8")
        _say(f"\nnon-passing tests written to {args.failures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
