"""The generator: facilities first, then blocks of citizens, each block a pure function of (seed, block)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from healthbook.synth import care, facilities, geo, patient, pregnancy, vaccination
from healthbook.synth.chart import Chart
from healthbook.synth.ids import AS_OF, STREAM_CARE, rng_for
from healthbook.synth.population import BLOCK, Builder, Person

Resource = dict[str, Any]


@dataclass(frozen=True)
class Config:
    """What to generate: how many citizens, from which seed, optionally only in some provinces."""

    citizens: int
    seed: int
    provinces: frozenset[str] | None = None
    years: int = 10  # of care history, ending on AS_OF

    @property
    def start(self) -> int:
        """First day of the care history."""
        return AS_OF.replace(year=AS_OF.year - self.years).toordinal() + 1

    @property
    def blocks(self) -> int:
        """Number of blocks of BLOCK citizens (the last one may be partial)."""
        return -(-self.citizens // BLOCK)

    def block_size(self, block: int) -> int:
        """Citizens in a block."""
        return min(BLOCK, self.citizens - block * BLOCK)


class Generator:
    """Holds what every block needs (admin units, facility network); cheap to call per block."""

    def __init__(self, config: Config) -> None:
        if config.citizens < 0 or config.seed < 0:
            raise ValueError("citizens and seed must not be negative")
        if not 1 <= config.years <= 50:
            raise ValueError("years of history must be between 1 and 50")
        unknown = (config.provinces or frozenset()) - set(geo.by_code())
        if unknown:
            raise ValueError(f"unknown province codes: {', '.join(sorted(unknown))}")
        self.config = config
        self.picker = geo.Picker(config.provinces)
        self.net = facilities.network(config.provinces)
        self.builder = Builder(config.seed, self.picker)

    def facility_resources(self) -> Iterator[Resource]:
        """The payor, organizations, practitioners and roles, written once before the citizens."""
        return facilities.resources(self.net)

    def people(self, block: int) -> list[Person]:
        """The citizens of one block."""
        return self.builder.block(block, self.config.block_size(block))

    def block(self, block: int) -> list[list[Resource]]:
        """Every citizen's resources in one block, one list per citizen with the Patient first."""
        return [record for _, record in self.block_people(block)]

    def block_people(self, block: int) -> list[tuple[Person, list[Resource]]]:
        """The citizens of one block with their records (what the XML130 output is rendered from)."""
        # The records hold no reference cycles, so the cyclic collector only costs time here (half of it).
        collecting = gc.isenabled()
        gc.disable()
        try:
            people = self.people(block)
            children: dict[int, list[Person]] = {}
            for p in people:
                if p.mother is not None:
                    children.setdefault(p.mother.index, []).append(p)
            return [(p, self.citizen(p, children.get(p.index, []))) for p in people]
        finally:
            if collecting:
                gc.enable()

    def citizen(self, person: Person, children: list[Person]) -> list[Resource]:
        """One citizen's record: identity, insurance, vaccinations, visits, chronic care, pregnancies."""
        rng = rng_for(self.config.seed, person.index, STREAM_CARE)
        chart = Chart(person, self.net, rng, self.builder.namespace, self.config.start)
        chart.out.append(patient.patient(chart, children))
        for extra in (patient.mother_of(chart), patient.coverage(chart)):
            if extra is not None:
                chart.out.append(extra)
        pregnancy.birth_weight(chart)
        vaccination.childhood(chart)
        care.acute_visits(chart)
        care.chronic_care(chart)
        if person.births:
            pregnancy.pregnancies(chart, first_child=len(person.births) == 1 or person.age < 28)
        care.blood_donations(chart)
        return chart.out

    def resources(self) -> Iterator[Resource]:
        """The whole output as one stream: facilities, then the citizens in index order."""
        yield from self.facility_resources()
        for b in range(self.config.blocks):
            for record in self.block(b):
                yield from record


# The demo keeps to a few provinces of the north, centre and south, so that its facilities stay few.
DEMO_PROVINCES = frozenset({"01", "46", "79", "14"})
# ... and a shorter history, so that 2,000 citizens load in well under a minute.
DEMO_YEARS = 2


def demo_population(citizens: int, seed: int, years: int = DEMO_YEARS) -> Iterator[dict[str, Any]]:
    """A stream of resources for `healthbook demo` to feed into the bulk importer (facilities first)."""
    return Generator(Config(citizens, seed, DEMO_PROVINCES, years)).resources()
