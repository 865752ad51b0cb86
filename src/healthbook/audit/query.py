"""The search parameters of the audit trail (AuditEvent): parsing, checking, page positions."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

from healthbook.audit.resource import ACTIONS, OPERATIONS
from healthbook.errors import BadRequest
from healthbook.fhir import jsonio
from healthbook.fhir.search.values import date_range
from healthbook.fhir.service import check_id

DEFAULT_COUNT = 50
MAX_COUNT = 1000
MAX_VALUES = 100  # values of one parameter (OR list)
PARAMS = ("patient", "date", "action", "outcome", "subtype", "_count", "_page")
OUTCOMES = ("0", "4", "8", "12")


def cursor(position: tuple[int, str, int]) -> str:
    return base64.urlsafe_b64encode(jsonio.dumps(list(position))).decode().rstrip("=")


def uncursor(text: str) -> tuple[int, str, int]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        rec, key, seq = jsonio.loads(raw)
        if not (isinstance(rec, int) and isinstance(key, str) and isinstance(seq, int)):
            raise ValueError
        return rec, key, seq
    except Exception:
        raise BadRequest("_page is not a page position this server gave", expression="_page") from None


@dataclass(slots=True)
class Query:
    patients: list[str] | None = None
    since: int | None = None
    before: int | None = None
    actions: list[str] | None = None
    outcomes: list[str] | None = None
    subtypes: list[str] | None = None
    count: int = DEFAULT_COUNT
    after: tuple[int, str, int] | None = None
    ignored: set[str] = field(default_factory=set)


def _values(name: str, value: str) -> list[str]:
    values = [v.strip() for v in value.split(",") if v.strip()]
    if not values:
        raise BadRequest(f"{name} needs a value", expression=name)
    if len(values) > MAX_VALUES:
        raise BadRequest(f"{name} takes at most {MAX_VALUES} values", expression=name)
    return values


def parse(pairs: list[tuple[str, str]], *, strict: bool) -> Query:
    q = Query()
    for name, value in pairs:
        if name == "patient":
            ids = [v.removeprefix("Patient/") for v in _values(name, value)]
            for pid in ids:
                check_id(pid)
            q.patients = ids if q.patients is None else [p for p in q.patients if p in ids]
        elif name == "date":
            _date(q, value)
        elif name == "action":
            q.actions = _codes(name, value, ("C", "R", "U", "D", "E"))
        elif name == "outcome":
            q.outcomes = _codes(name, value, OUTCOMES)
        elif name == "subtype":
            q.subtypes = sorted({i for v in _values(name, value) for i in _interactions(v)})
        elif name in ("_format", "_pretty"):
            continue  # answered by the HTTP layer
        elif name == "_count":
            if not value.isdigit():
                raise BadRequest("_count must be a whole number", expression="_count")
            q.count = min(int(value), MAX_COUNT)
        elif name == "_page":
            q.after = uncursor(value)
        elif strict:
            raise BadRequest(f"Unknown search parameter '{name[:64]}' for AuditEvent", expression=name[:64])
        else:
            q.ignored.add(name[:64])
    return q


def _interactions(value: str) -> list[str]:
    """The recorded interactions a subtype token names: a restful-interaction code (`operation`: every
    operation), `$name`, or an operation's canonical URL (the codes AuditEvent.subtype carries)."""
    code = value.rpartition("|")[2]  # system|code; an operation's URL holds no "|"
    if code == "operation":
        return [i for i in ACTIONS if i.startswith("$")]
    by_url = [i for i, url in OPERATIONS.items() if url == code]
    if by_url:
        return by_url
    if code in ACTIONS:
        return [code]
    raise BadRequest(f"subtype '{code[:60]}' is not an interaction this server records", expression="subtype")


def _codes(name: str, value: str, allowed: Sequence[str]) -> list[str]:
    codes = _values(name, value)
    for code in codes:
        if code not in allowed:
            raise BadRequest(f"{name} must be one of {', '.join(allowed)}", expression=name)
    return codes


def _date(q: Query, value: str) -> None:
    prefix, text = (value[:2], value[2:]) if value[:2] in ("eq", "ge", "gt", "le", "lt") else ("eq", value)
    try:
        low, high = date_range(text)
    except ValueError as exc:
        raise BadRequest(str(exc)[:200], expression="date") from None
    if prefix in ("eq", "ge"):
        q.since = max(q.since or low, low)
    if prefix == "gt":
        q.since = max(q.since or high + 1, high + 1)
    if prefix in ("eq", "le"):
        q.before = min(q.before or high + 1, high + 1)
    if prefix == "lt":
        q.before = min(q.before or low, low)
