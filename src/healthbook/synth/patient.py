"""The Patient, the mother as RelatedPerson, and the BHYT Coverage of one citizen."""

from __future__ import annotations

from typing import Any

from healthbook.identity.ethnicity import ETHNIC_GROUPS, SYNTH_GROUP_CODES
from healthbook.synth import identity
from healthbook.synth import systems as sy
from healthbook.synth.chart import MOTHER, Chart, code_of
from healthbook.synth.facilities import PAYOR_ID
from healthbook.synth.ids import day
from healthbook.synth.population import Person

_PUBLIC_POLICY = code_of(sy.COVERAGE_TYPE, "PUBLICPOL", "public healthcare", "Bảo hiểm y tế")
_SELF = code_of("http://terminology.hl7.org/CodeSystem/subscriber-relationship", "self", "Self")
_VIETNAM = code_of(sy.CS_COUNTRY, "VN", "Viet Nam", "Việt Nam")
_GROUP = SYNTH_GROUP_CODES
_PLAN = code_of("http://terminology.hl7.org/CodeSystem/coverage-class", "plan", "Plan")


def _name(p: Person) -> list[dict[str, Any]]:
    return [{"use": "official", "text": p.name.text, "family": p.name.family, "given": list(p.name.given)}]


def patient(chart: Chart, children: list[Person]) -> dict[str, Any]:
    """The citizen: CCCD and BHYT identifiers, Vietnamese name, address in the 2025 units."""
    p = chart.person
    identifiers: list[dict[str, Any]] = [{"use": "official", "system": sy.CCCD, "value": p.cccd}]
    if p.bhyt is not None:
        start, end = p.bhyt_period
        identifiers.append({"system": sy.BHYT, "value": p.bhyt, "period": {"start": start, "end": end}})
    res: dict[str, Any] = {
        "resourceType": "Patient",
        "id": p.id,
        "meta": {"tag": [sy.SYNTH_TAG]},
        "identifier": identifiers,
        "active": True,
        "name": _name(p),
        "gender": p.gender,
        "birthDate": day(p.birth),
        "address": [p.address],
        "extension": [
            {
                "url": sy.EXT_ETHNICITY,
                "valueCodeableConcept": code_of(
                    sy.CS_ETHNICITY,
                    _GROUP[p.group],
                    ETHNIC_GROUPS[_GROUP[p.group]],
                    ETHNIC_GROUPS[_GROUP[p.group]],
                ),
            },
            {"url": sy.EXT_NATIONALITY, "valueCodeableConcept": _VIETNAM},
        ],
        "generalPractitioner": [{"reference": f"Organization/{chart.station.id}"}],
        "communication": [
            {"language": code_of("urn:ietf:bcp:47", "vi", "Vietnamese", "Tiếng Việt"), "preferred": True}
        ],
    }
    if p.phone is not None:
        res["telecom"] = [{"system": "phone", "value": p.phone, "use": "mobile"}]
    if p.mother is not None:
        m = p.mother
        contact: dict[str, Any] = {"relationship": MOTHER, "name": _name(m)[0], "gender": "female"}
        if m.phone is not None:
            contact["telecom"] = [{"system": "phone", "value": m.phone, "use": "mobile"}]
        res["contact"] = [contact]
    links = [{"other": {"reference": f"RelatedPerson/{c.related_id}"}, "type": "seealso"} for c in children]
    if links:
        res["link"] = links  # the same woman, as the mother of each child
    return res


def mother_of(chart: Chart) -> dict[str, Any] | None:
    """The child's mother as a RelatedPerson, identified by her CCCD (she is a Patient of the output too)."""
    p = chart.person
    m = p.mother
    if m is None or p.related_id is None:
        return None
    res: dict[str, Any] = {
        "resourceType": "RelatedPerson",
        "id": p.related_id,
        "identifier": [{"system": sy.CCCD, "value": m.cccd}],
        "active": True,
        "patient": chart.ref,
        "relationship": MOTHER,
        "name": _name(m),
        "gender": "female",
        "birthDate": day(m.birth),
        "address": [m.address],
    }
    if m.phone is not None:
        res["telecom"] = [{"system": "phone", "value": m.phone, "use": "mobile"}]
    return res


def coverage(chart: Chart) -> dict[str, Any] | None:
    """The BHYT card as a Coverage paid by Vietnam Social Security."""
    p = chart.person
    if p.bhyt is None:
        return None
    start, end = p.bhyt_period
    category = p.bhyt_category
    return {
        "resourceType": "Coverage",
        "id": chart.new_id("Coverage"),
        "identifier": [{"system": sy.BHYT, "value": p.bhyt}],
        "status": "active",
        "type": _PUBLIC_POLICY,
        "subscriberId": p.bhyt,
        "beneficiary": chart.ref,
        "relationship": _SELF,
        "period": {"start": start, "end": end},
        "payor": [{"reference": f"Organization/{PAYOR_ID}"}],
        "class": [
            {
                "type": _PLAN,
                "value": f"{category}{identity.CATEGORY_LEVEL[category]}",
                "name": f"{identity.CATEGORY_NAMES[category]}, mức hưởng {identity.CATEGORY_LEVEL[category]}",
            }
        ],
    }
