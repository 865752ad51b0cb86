"""Households and people: ages and sexes following Vietnam's pyramid, mothers living with their children."""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import random
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from healthbook.synth import geo, identity, names, systems
from healthbook.synth.ids import AS_OF, STREAM_HOUSEHOLD, rng_for, seed_namespace, uuid5

# Vietnam's population by 5-year age band (0-4 ... 75-79, 80+) in % of the total, males then females:
# approximate, from the GSO 2019 census projected to 2024 (docs/synth.md); 99.2 males per 100 females.
PYRAMID_MALE = (3.7, 4.1, 4.2, 3.6, 3.5, 3.8, 4.2, 4.1, 3.7, 3.3, 2.9, 2.6, 2.2, 1.7, 1.1, 0.6, 0.5)
PYRAMID_FEMALE = (3.3, 3.8, 3.9, 3.4, 3.3, 3.7, 4.2, 4.1, 3.7, 3.3, 3.1, 2.8, 2.4, 2.0, 1.4, 0.8, 1.0)
MAX_AGE = 100
BLOCK = 1000  # citizens per block: the unit of determinism, streaming and parallel work


def _yearly(bands: tuple[float, ...]) -> list[float]:
    """Spread 5-year bands over single years; the open 80+ band decays by 15% a year up to 100."""
    out: list[float] = []
    for b in bands[:-1]:
        out += [b / 5] * 5
    tail = [0.85**k for k in range(MAX_AGE - 80 + 1)]
    out += [bands[-1] * t / sum(tail) for t in tail]
    return out


MALE_BY_AGE = _yearly(PYRAMID_MALE)
FEMALE_BY_AGE = _yearly(PYRAMID_FEMALE)


class AgeTable:
    """Draws an age within [lo, hi] in proportion to single-year weights."""

    __slots__ = ("cum",)

    def __init__(self, weights: list[float]) -> None:
        self.cum = list(itertools.accumulate(weights))

    def draw(self, rng: random.Random, lo: int, hi: int) -> int:
        low = self.cum[lo - 1] if lo > 0 else 0.0
        return bisect.bisect_left(self.cum, low + rng.random() * (self.cum[hi] - low))


_FEMALE = AgeTable(FEMALE_BY_AGE)
_MALE = AgeTable(MALE_BY_AGE)
_BOTH = AgeTable([m + f for m, f in zip(MALE_BY_AGE, FEMALE_BY_AGE, strict=True)])


def _sex_at(rng: random.Random, age: int) -> str:
    m, f = MALE_BY_AGE[age], FEMALE_BY_AGE[age]
    return "male" if rng.random() * (m + f) < m else "female"


# A member spec: role, gender, age at AS_OF, and the position of the member's mother in the household.
Spec = tuple[str, str, int, int | None]


_MOTHER_ACCEPT = {4: 0.45, 5: 0.9, 6: 1.0, 7: 1.0, 8: 1.0, 9: 0.8, 10: 0.6}


def _family(rng: random.Random) -> list[Spec]:
    """A mother, usually a father, her children at home, sometimes grandparents."""
    m_age = _FEMALE.draw(rng, 20, 54)
    while rng.random() > _MOTHER_ACCEPT[m_age // 5]:  # many women under 25 or over 45 have no child at home
        m_age = _FEMALE.draw(rng, 20, 54)
    out: list[Spec] = [("mother", "female", m_age, None)]
    if rng.random() < 0.88:
        f_age = min(MAX_AGE, max(20, m_age - 3, m_age + round(rng.gauss(3, 3))))
        out.append(("father", "male", f_age, None))
    k = rng.choices((0, 1, 2, 3, 4), (5, 28, 47, 16, 4))[0]
    for _ in range(k):
        age = m_age - min(42, max(18, round(rng.gauss(27, 5))))  # her age at this birth gives the child's age
        if age < 0 or age > 24 or (age >= 18 and rng.random() < 0.5):
            continue  # not born yet, or grown up and left home
        out.append(("child", _sex_at(rng, age), age, 0))
    if rng.random() < 0.28:
        lo, hi = max(m_age + 18, 45), min(MAX_AGE, m_age + 45)
        age = _BOTH.draw(rng, lo, hi)
        if rng.random() < 0.45:
            out.append(("grandparent", "male", age, None))
            out.append(("grandparent", "female", max(lo, age - rng.randint(0, 5)), None))
        else:
            out.append(("grandparent", _sex_at(rng, age), age, None))
    return out


def _elderly(rng: random.Random) -> list[Spec]:
    """One or two people of 60 and over."""
    if rng.random() < 0.5:
        age = _MALE.draw(rng, 60, MAX_AGE)
        return [("adult", "male", age, None), ("adult", "female", max(60, age - rng.randint(0, 6)), None)]
    age = _BOTH.draw(rng, 60, MAX_AGE)
    return [("adult", _sex_at(rng, age), age, None)]


P_ELDERLY = 0.12  # share of elderly households among family and elderly households


@dataclass(frozen=True)
class Calibration:
    """The residual age-sex distribution filled by 'other' households, and how often they occur."""

    p_other: float
    male: AgeTable
    female: AgeTable
    male_share: list[float]  # by age: share of males in the residual


@lru_cache(maxsize=1)
def calibration() -> Calibration:
    """Simulate family and elderly households once; other households make up the rest of the pyramid."""
    rng = random.Random(20250701)
    count = {"male": [0.0] * (MAX_AGE + 1), "female": [0.0] * (MAX_AGE + 1)}
    households = 20_000
    for _ in range(households):
        specs = _elderly(rng) if rng.random() < P_ELDERLY else _family(rng)
        for _, gender, age, _ in specs:
            count[gender][age] += 1
    persons = sum(sum(v) for v in count.values())
    target = {"male": [w / 100 for w in MALE_BY_AGE], "female": [w / 100 for w in FEMALE_BY_AGE]}
    bands = [
        sum(target[g][a] for a in range(lo, lo + 5)) * persons / sum(count[g][a] for a in range(lo, lo + 5))
        for g in count
        for lo in range(0, 80, 5)
        if sum(count[g][a] for a in range(lo, lo + 5)) > 0
    ]
    share = 0.97 * min(1.0, min(bands))  # of people living in family and elderly households
    resid = {
        g: [max(0.0, target[g][a] - share * count[g][a] / persons) for a in range(MAX_AGE + 1)] for g in count
    }
    m_fe = persons / households
    m_other = 1.8
    p_other = m_fe * (1 - share) / (m_fe * (1 - share) + m_other * share)
    male_share = [
        resid["male"][a] / (resid["male"][a] + resid["female"][a])
        if resid["male"][a] + resid["female"][a]
        else 0.5
        for a in range(MAX_AGE + 1)
    ]
    return Calibration(p_other, AgeTable(resid["male"]), AgeTable(resid["female"]), male_share)


def _diff(t: AgeTable) -> list[float]:
    return [c - (t.cum[i - 1] if i else 0.0) for i, c in enumerate(t.cum)]


@lru_cache(maxsize=1)
def _other_table() -> AgeTable:
    cal = calibration()
    return AgeTable([m + f for m, f in zip(_diff(cal.male), _diff(cal.female), strict=True)])


def household_specs(rng: random.Random) -> list[Spec]:
    """The members of one household."""
    cal = calibration()
    u = rng.random()
    if u < cal.p_other:
        size = rng.choices((1, 2, 3), (4, 4, 2))[0]
        out: list[Spec] = []
        for _ in range(size):
            age = _other_table().draw(rng, 0, MAX_AGE)
            out.append(("adult", "male" if rng.random() < cal.male_share[age] else "female", age, None))
        return out
    return _elderly(rng) if rng.random() < P_ELDERLY else _family(rng)


@dataclass(slots=True, eq=False)
class Person:
    """One citizen and what the care generator needs to know about them."""

    index: int
    id: str
    gender: str
    birth: int  # day ordinal
    age: int  # completed years on AS_OF
    name: names.Name
    group: str
    province: geo.Province
    commune: geo.Commune
    address: dict[str, Any]
    cccd: str
    bhyt: str | None
    bhyt_category: str
    bhyt_period: tuple[str, str]
    phone: str | None
    household: str
    mother: Person | None = None
    births: list[int] = field(default_factory=list)  # birth days of her children in the household
    related_id: str | None = None  # the RelatedPerson (mother of this child) in this person's output


_STREETS = (
    "Lê Lợi", "Trần Hưng Đạo", "Nguyễn Trãi", "Quang Trung", "Hai Bà Trưng", "Lý Thường Kiệt", "Nguyễn Huệ",
    "Hùng Vương", "Lê Duẩn", "Điện Biên Phủ", "Võ Thị Sáu", "Phan Chu Trinh", "Phan Bội Châu", "Trần Phú",
    "Hoàng Văn Thụ", "Lê Thánh Tông", "Nguyễn Du", "Bà Triệu", "Nguyễn Thị Minh Khai", "Ngô Quyền",
    "Lý Thái Tổ", "Đinh Tiên Hoàng", "Tôn Đức Thắng", "Trường Chinh", "Lạc Long Quân", "Âu Cơ",
    "Cách Mạng Tháng Tám", "Nguyễn Văn Cừ", "Lê Hồng Phong", "Chu Văn An",
)  # fmt: skip
_HAMLETS = ("Đông", "Tây", "Nam", "Bắc", "Thượng", "Hạ", "Trung", "Tân Lập", "Tân Hòa", "An Phú", "Phú Mỹ",
            "Hòa Bình", "Thành Công", "Quyết Tiến", "Đoàn Kết", "Bình An", "Long Hưng", "Mỹ Lợi")  # fmt: skip


def _address_line(rng: random.Random, province: geo.Province, commune: geo.Commune, group: str) -> str:
    if commune.kind == "Phường":
        if province.region == "north" and rng.random() < 0.5:
            return f"Số {rng.randint(1, 120)}, ngõ {rng.randint(1, 300)}, phố {rng.choice(_STREETS)}"
        return f"Số {rng.randint(1, 400)} đường {rng.choice(_STREETS)}, tổ dân phố {rng.randint(1, 25)}"
    if group in ("hmong", "thai", "tay"):
        return f"Bản {rng.choice(_HAMLETS)}"
    if group == "ede":
        return f"Buôn {rng.choice(('Ko Tam', 'Ea Nao', 'Kmrông', 'Ea Kao', 'Dham', 'Ea Tu'))}"
    if province.region == "south":
        return f"Ấp {rng.choice((str(rng.randint(1, 12)), *_HAMLETS))}"
    return f"Thôn {rng.choice((str(rng.randint(1, 15)), *_HAMLETS))}"


def address(rng: random.Random, province: geo.Province, commune: geo.Commune, group: str) -> dict[str, Any]:
    """A home address in the 2025 units: line, commune (city), province (state), with their codes."""
    line = _address_line(rng, province, commune, group)
    return {
        "extension": [
            {"url": systems.EXT_PROVINCE, "valueCode": province.code},
            {"url": systems.EXT_COMMUNE, "valueCode": commune.code},
        ],
        "use": "home",
        "type": "physical",
        "text": f"{line}, {commune.name}, {province.name}",
        "line": [line],
        "city": commune.name,
        "state": province.name,
        "country": "VN",
    }


class Builder:
    """Builds the people of one block of citizens from (seed, block) alone."""

    def __init__(self, seed: int, picker: geo.Picker) -> None:
        self.seed = seed
        self.picker = picker
        self.namespace = _namespace(seed)

    def block(self, block: int, count: int) -> list[Person]:
        """The first `count` citizens of block `block` (count < BLOCK only for the last block)."""
        rng = rng_for(self.seed, block, STREAM_HOUSEHOLD)
        people: list[Person] = []
        base = block * BLOCK
        h = 0
        while len(people) < count:
            specs = household_specs(rng)[: count - len(people)]
            self._household(rng, f"{block}-{h}", specs, base + len(people), people)
            h += 1
        return people

    def _household(
        self, rng: random.Random, key: str, specs: list[Spec], first: int, out: list[Person]
    ) -> None:
        province = self.picker.province(rng)
        commune = self.picker.commune(rng, province)
        group = names.ethnic_group(rng, province.code)
        addr = address(rng, province, commune, group)
        father_family = names.family_name(rng, province.region, group)
        poor = 0.18 if province.code in geo.MOUNTAIN else 0.05
        members: list[Person] = []
        for n, (role, gender, age, mother_pos) in enumerate(specs):
            index = first + n
            birth = _birth_day(rng, age)
            year = dt.date.fromordinal(birth).year
            family = (
                father_family
                if role in ("father", "child") or (role == "grandparent" and gender == "male")
                else (names.family_name(rng, province.region, group))
            )
            if role == "adult" and n > 0 and rng.random() < 0.5:
                family = members[0].name.family
            name = names.person_name(rng, family, gender, year, group)
            province3 = identity.birth_province_code(rng, birth, province, self.picker)
            number = identity.cccd(self.seed, index, province3, year, gender == "female")
            category, card, period = "", None, ("", "")
            if rng.random() < _insured_share(age):
                category = identity.bhyt_category(rng, age, poor)
                card = identity.bhyt_card(
                    category, province.code, identity.social_insurance_number(self.seed, index, province.code)
                )
                period = _card_period(category, birth)
            person = Person(
                index=index,
                id=uuid5(self.namespace, f"{index}:Patient"),
                gender=gender,
                birth=birth,
                age=age,
                name=name,
                group=group,
                province=province,
                commune=commune,
                address=addr,
                cccd=number,
                bhyt=card,
                bhyt_category=category,
                bhyt_period=period,
                phone=identity.phone(rng) if age >= 15 else None,
                household=key,
            )
            if mother_pos is not None and mother_pos < len(members):
                mother = members[mother_pos]
                person.mother = mother
                person.related_id = uuid5(self.namespace, f"{index}:RelatedPerson")
                mother.births.append(birth)
            members.append(person)
        out.extend(members)


@lru_cache(maxsize=8)
def _namespace(seed: int) -> bytes:
    return seed_namespace(seed)


def _birth_day(rng: random.Random, age: int) -> int:
    """A birthday giving exactly `age` completed years on AS_OF."""
    latest = AS_OF.replace(year=AS_OF.year - age).toordinal()
    earliest = AS_OF.replace(year=AS_OF.year - age - 1).toordinal() + 1
    return earliest + rng.randrange(latest - earliest + 1)


def _insured_share(age: int) -> float:
    """Share of people with a BHYT card by age: about 93% overall (BHXH reports 93-94% for 2024-2025)."""
    if age < 6:
        return 0.99
    if age < 18:
        return 0.96
    if age >= 60:
        return 0.95
    return 0.905


def _card_period(category: str, birth: int) -> tuple[str, str]:
    """Validity of the card held on AS_OF: the calendar year, or up to the 6th birthday for children."""
    start = max(dt.date(AS_OF.year, 1, 1), dt.date.fromordinal(birth))
    if category == "TE":
        b = dt.date.fromordinal(birth)
        end = dt.date(b.year + 6, b.month, min(b.day, 28)) - dt.timedelta(days=1)
    else:
        end = dt.date(AS_OF.year, 12, 31)
    return start.isoformat(), end.isoformat()
