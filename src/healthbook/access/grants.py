"""Grants kept in step with the records, inside the write transaction (see derive for the rules)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.engine import Connection

from healthbook.access import derive
from healthbook.access import repository as repo
from healthbook.db.engine import transaction_state
from healthbook.fhir import jsonio
from healthbook.fhir.compartment import NO_PATIENT_PREFIX
from healthbook.fhir.store import sql_repository as store
from healthbook.fhir.store.batch import queued
from healthbook.fhir.store.sql_repository import StoredVersion
from healthbook.fhir.timeutil import parse_instant_us
from healthbook.identity import systems

ADULT_AGE = 18  # a parent acts for a child until then (Bộ luật Dân sự 2015, art. 20–21)


def _content(conn: Connection, ref: str) -> dict[str, Any] | None:
    rtype, _, rid = ref.partition("/")
    if not rtype or not rid or "/" in rid:
        return None
    found, text = queued(conn, rtype, rid)  # written earlier in the same batch: no flush needed
    if found:
        return jsonio.loads(text) if text is not None else None
    key = rid if rtype == "Patient" else store.locate(conn, rtype, rid)
    cur = store.current(conn, key, rtype, rid) if key else None
    if cur is None or cur.deleted or cur.content is None:
        return None
    return jsonio.loads(cur.content)  # type: ignore[no-any-return]


# Facility code per Organization reference: every Encounter written needs one, and there are few
# facilities. Dropped when an Organization is written here; another process re-coding a facility is seen
# once this one restarts (or after `healthbook access rebuild`).
_CODES: dict[str, str] = {}
_CODES_MAX = 50_000
# Organizations found without a code are remembered for the current transaction only (a bulk chunk's
# many Encounters at foreign facilities): a code added later, here or by another process, is seen next time.
_NO_CODE = "organizations_without_facility_code"


def facility_of(conn: Connection, ref: str | None, inline: str | None = None) -> str | None:
    """The facility code of an Organization reference (or the code given inline in the Reference)."""
    if inline:
        return inline
    if not ref or not ref.startswith("Organization/"):
        return None
    code = _CODES.get(ref)
    if code is not None:
        return code
    without: set[str] = transaction_state(conn).setdefault(_NO_CODE, set())
    if ref in without:
        return None
    org = _content(conn, ref)
    code = derive.identifier(org, systems.FACILITY_CODE) if org else None
    if code is None:
        if org is not None:
            without.add(ref)
        return None
    if len(_CODES) >= _CODES_MAX:
        _CODES.clear()
    _CODES[ref] = code
    return code


def encounter_facility(conn: Connection, encounter: dict[str, Any]) -> str | None:
    """The code of the facility that provided an Encounter."""
    ref, inline = derive.service_provider(encounter)
    return facility_of(conn, ref, inline)


def _grant(key: str, grantee: str, grant_id: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "patient_key": key,
        "grantee": grantee,
        "grant_id": grant_id,
        "res_type": "*",
        "sees_hidden": False,
        "valid_from": None,
        "valid_to": None,
        "data_from": None,
        "data_to": None,
        "purpose": None,
    }
    row.update(extra)
    return row


def _put(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """put_grants, skipping rows this transaction has put already (a book's many encounters at a station)."""
    done: set[tuple[Any, ...]] = transaction_state(conn).setdefault("grants_put", set())
    fresh = [r for r in rows if tuple(r.values()) not in done]
    repo.put_grants(conn, fresh)
    done.update(tuple(r.values()) for r in fresh)


def _drop(conn: Connection, keys: list[str], grant_id: str, *, prefix: bool = False) -> None:
    """drop_grants; what this transaction put is forgotten too, so that putting it again writes it."""
    repo.drop_grants(conn, keys, grant_id, prefix=prefix)
    transaction_state(conn).pop("grants_put", None)


def _hidden_encounters(conn: Connection, book: str) -> dict[str, list[str]]:
    """A book's hidden Encounters, read once per transaction (consents written in it reset this)."""
    cache: dict[str, dict[str, list[str]]] = transaction_state(conn).setdefault("hidden_encounters", {})
    if book not in cache:
        cache[book] = repo.hidden_encounters(conn, book)
    return cache[book]


def _keys(stored: StoredVersion, prev_key: str | None) -> list[str]:
    return sorted({stored.patient_key, *([prev_key] if prev_key else [])})


def on_write(
    conn: Connection, stored: StoredVersion, doc: dict[str, Any] | None, prev_key: str | None
) -> None:
    """The write hook: derive the grants and hidings a written (or deleted) resource makes or ends."""
    rtype = stored.res_type
    if rtype == "Organization":
        _CODES.pop(f"Organization/{stored.res_id}", None)
        transaction_state(conn).get(_NO_CODE, set()).discard(f"Organization/{stored.res_id}")
    elif rtype == "Patient":
        _own_book(conn, stored, doc)
    elif rtype == "RelatedPerson":
        _guardian(conn, stored, doc, prev_key)
    elif rtype == "Encounter":
        _encounter(conn, stored, doc, prev_key)
    elif rtype == "Consent":
        _consent(conn, stored, doc, prev_key)
    if doc is not None and not stored.patient_key.startswith(NO_PATIENT_PREFIX) and rtype != "Encounter":
        _inherit_hiding(conn, stored, doc)


def _own_book(conn: Connection, stored: StoredVersion, doc: dict[str, Any] | None) -> None:
    _drop(conn, [stored.patient_key], "self")
    cccd = derive.identifier(doc, systems.CCCD) if doc else None
    if cccd is not None:
        _put(conn, [_grant(stored.patient_key, f"cccd:{cccd}", "self", sees_hidden=True)])


def _guardian(conn: Connection, stored: StoredVersion, doc: dict[str, Any] | None, prev: str | None) -> None:
    grant_id = f"guardian:{stored.res_id}"
    _drop(conn, _keys(stored, prev), grant_id)
    found = derive.guardian(doc) if doc else None
    if found is None or stored.patient_key.startswith(NO_PATIENT_PREFIX):
        return
    cccd, lo, hi = found
    child = _content(conn, f"Patient/{stored.patient_key}")
    born = child.get("birthDate") if child else None
    if isinstance(born, str) and len(born) == 10:
        year, month, day = (int(x) for x in born.split("-"))
        adult = dt.date(year + ADULT_AGE, month, 28 if (month, day) == (2, 29) else day)
        adult_us = parse_instant_us(f"{adult.isoformat()}T00:00:00+07:00")
        hi = adult_us if hi is None else min(hi, adult_us)
    repo.put_grants(
        conn,
        [_grant(stored.patient_key, f"cccd:{cccd}", grant_id, sees_hidden=True, valid_from=lo, valid_to=hi)],
    )


def _encounter(conn: Connection, stored: StoredVersion, doc: dict[str, Any] | None, prev: str | None) -> None:
    """A new Encounter adds its facility; a changed or deleted one makes the book's facilities recomputed."""
    if stored.version_id == 1 and doc is not None:
        code = encounter_facility(conn, doc)
        if code is not None:
            _put(conn, [_grant(stored.patient_key, f"facility:{code}", "encounter")])
        return
    for key in _keys(stored, prev):
        if key.startswith(NO_PATIENT_PREFIX):
            continue
        owners = [(key, t, i) for t, i in store.keys_of_patient(conn, key) if t == "Encounter"]
        codes = set()
        for row in store.current_by_owner(conn, owners):
            code = encounter_facility(conn, jsonio.loads(row[4])) if row[4] else None
            if code is not None:
                codes.add(code)
        _drop(conn, [key], "encounter")
        _put(conn, [_grant(key, f"facility:{c}", "encounter") for c in sorted(codes)])


def resolve_actor(conn: Connection, actor: derive.Actor) -> str | None:
    """The grantee name of a consent actor; None when it names no known facility or person."""
    if actor.facility:
        return f"facility:{actor.facility}"
    if actor.cccd:
        return f"cccd:{actor.cccd}"
    ref = actor.reference or ""
    target = _content(conn, ref)
    if target is None:
        return None
    if ref.startswith("Organization/"):
        code = derive.identifier(target, systems.FACILITY_CODE)
        return f"facility:{code}" if code else None
    cccd = derive.identifier(target, systems.CCCD)
    return f"cccd:{cccd}" if cccd else None


def _consent(conn: Connection, stored: StoredVersion, doc: dict[str, Any] | None, prev: str | None) -> None:
    keys = _keys(stored, prev)
    _drop(conn, keys, f"consent:{stored.res_id}:", prefix=True)
    repo.unhide(conn, keys, stored.res_id)
    transaction_state(conn).pop("hidden_encounters", None)  # what is hidden changes with this consent
    if doc is None or stored.patient_key.startswith(NO_PATIENT_PREFIX):
        return
    rules = derive.consent_rules(doc)
    rows = []
    for n, permit in enumerate(rules.permits):
        for actor in permit.actors:
            grantee = resolve_actor(conn, actor)
            if grantee is None:
                continue  # an actor unknown here opens nothing
            for rtype in permit.types:
                rows.append(
                    _grant(
                        stored.patient_key,
                        grantee,
                        f"consent:{stored.res_id}:{n}",
                        res_type=rtype,
                        valid_from=permit.valid_from,
                        valid_to=permit.valid_to,
                        data_from=permit.data_from,
                        data_to=permit.data_to,
                        purpose=permit.purpose,
                    )
                )
    _put(conn, rows)
    # Only the book's own records can be hidden by its consent; a consent that hides records is hidden
    # with them (it names what it hides).
    own = [
        (t, i)
        for t, i in rules.hidden
        if (i if t == "Patient" else store.locate(conn, t, i)) == stored.patient_key
    ]
    hidden = [*own, ("Consent", stored.res_id)] if own else []
    for rtype, rid in own:
        if rtype == "Encounter":
            hidden += [
                (t, i) for k, t, i in store.referencing(conn, "Encounter", rid) if k == stored.patient_key
            ]
    repo.hide(conn, stored.patient_key, list(dict.fromkeys(hidden)), stored.res_id)


def _inherit_hiding(conn: Connection, stored: StoredVersion, doc: dict[str, Any]) -> None:
    """A record of a hidden Encounter is hidden with it (by the same consents)."""
    ids = derive.encounter_ids(doc)
    if not ids:
        return
    hidden = _hidden_encounters(conn, stored.patient_key)
    for consent_id in sorted({c for i in ids for c in hidden.get(i, [])}):
        repo.hide(conn, stored.patient_key, [(stored.res_type, stored.res_id)], consent_id)
