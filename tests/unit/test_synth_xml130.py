"""`healthbook synth --format xml130`: reproducible GIAMDINHHS files that pass every check of the importer."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from healthbook.fhir.outcomes import has_errors
from healthbook.fhir.validation import validate_resource
from healthbook.imports.xml130.episode import assemble
from healthbook.imports.xml130.mappers import Refs, map_episode, needs
from healthbook.imports.xml130.mappers.summary import person
from healthbook.imports.xml130.source import Limits, Submission
from healthbook.synth import writer
from healthbook.synth.generate import Config

CITIZENS = 150
# Warnings the synthetic record is expected to raise: it codes antenatal, postpartum and routine visits with
# Z34/Z39.2/Z00, which appendix A2 of QĐ 4469 lists as codes not to be used as the principal diagnosis.
EXPECTED = re.compile(r"^(Z34\.\d|Z39\.2|Z00\.\d) may not be the principal diagnosis")


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("xml130")
    writer.prepare(out, False)
    writer.write_xml130(Config(CITIZENS, 5, years=4), out, 1)
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.xml"))}


def test_the_same_seed_gives_the_same_files_whatever_the_workers(output: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    writer.prepare(again, False)
    summary = writer.write_xml130(Config(CITIZENS, 5, years=4), again, 2)
    assert _files(again) == _files(output)
    assert summary.by_type["files"] == len(_files(output)) and summary.by_type["HOSO"] > CITIZENS


def test_every_generated_episode_passes_the_field_checks(output: Path) -> None:
    tables: Counter[str] = Counter()
    forms: Counter[int] = Counter()
    warnings: Counter[str] = Counter()
    for path in sorted(output.rglob("*.xml")):
        sub = Submission(path, Limits(10**9, 10**8), path.name)
        header = sub.check()
        assert header.problems == [] and header.macskcb == path.stem
        for hoso in sub.episodes():
            episode, _, problems = assemble(hoso, header.macskcb)
            assert episode is not None, problems
            assert all(not p.is_error for p in problems)
            warnings.update(p.message for p in problems if not EXPECTED.match(p.message))
            tables.update(d.table or "" for d in hoso.files)
            forms.update(len(r.values["NGAY_HEN_KL"]) for r in episode.table("XML14"))
    assert warnings == Counter()
    assert set(tables) == {"XML1", "XML2", "XML3", "XML4", "XML5", "XML7", "XML8", "XML9", "XML13", "XML14"}
    assert set(forms) == {8, 12}  # some facilities write NGAY_HEN_KL as QĐ 3176-era tools do


def test_generated_episodes_map_to_valid_fhir(output: Path) -> None:
    checked = 0
    for path in sorted(output.rglob("*.xml"))[:40]:
        sub = Submission(path, Limits(10**9, 10**8), path.name)
        header = sub.check()
        for hoso in sub.episodes():
            episode, _, _ = assemble(hoso, header.macskcb)
            assert episode is not None
            who, _ = person(episode)
            n = needs(episode, who)
            refs = Refs("p", {c: f"o{c}" for c in n.facilities}, {c: f"s{i}" for i, c in enumerate(n.staff)},
                        {r: f"c{r}" for r in n.children})  # fmt: skip
            ctx = map_episode(episode, refs)
            for res in ctx.out:
                assert not has_errors(validate_resource(res)), res
            checked += 1
    assert checked > 50
