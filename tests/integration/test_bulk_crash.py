"""SIGKILL `healthbook import ndjson` after some chunks were committed, run it again: the result is
exactly the file, every resource has one version, and the store equals a clean import of the same file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select

from healthbook.config import Settings
from healthbook.db.engine import Database
from healthbook.db.migrate import upgrade
from healthbook.fhir.store.schema import metadata, resource, resource_locator, resource_version

from .conftest import table_counts

pytestmark = pytest.mark.slow

HEALTHBOOK = Path(sys.executable).with_name("healthbook")
PATIENTS, OBSERVATIONS, CONDITIONS = 400, 3200, 400
CHUNK = 200
KILL_AFTER = 3 * CHUNK  # resources committed before the kill


def write_big_file(path: Path) -> Counter[str]:
    """A deterministic NDJSON file of a few thousand resources; returns the count by type."""
    lines = []
    for i in range(PATIENTS):
        lines.append(
            {
                "resourceType": "Patient",
                "id": f"kill-p{i}",
                "identifier": [{"system": "urn:healthbook:kill", "value": str(i)}],
                "name": [{"family": f"Kill{i}", "given": ["Test"]}],
                "gender": "female" if i % 2 else "male",
                "birthDate": f"19{50 + i % 50}-0{1 + i % 9}-1{i % 9}",
            }
        )
    for i in range(OBSERVATIONS):
        lines.append(
            {
                "resourceType": "Observation",
                "id": f"kill-o{i}",
                "status": "final",
                "code": {
                    "coding": [{"system": "http://loinc.org", "code": "8302-2" if i % 2 else "29463-7"}]
                },
                "subject": {"reference": f"Patient/kill-p{i % PATIENTS}"},
                "effectiveDateTime": f"2020-0{1 + i % 9}-1{i % 9}T10:00:00Z",
                "valueQuantity": {
                    "value": 100 + i % 80,
                    "unit": "cm",
                    "system": "http://unitsofmeasure.org",
                    "code": "cm",
                },
            }
        )
    for i in range(CONDITIONS):
        lines.append(
            {
                "resourceType": "Condition",
                "id": f"kill-c{i}",
                "subject": {"reference": f"Patient/kill-p{i}"},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
                "onsetDateTime": "2019-05-01",
            }
        )
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return Counter(str(line["resourceType"]) for line in lines)


def env_for(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHBOOK_")}
    env["HEALTHBOOK_DATABASE_URL"] = url
    env["HEALTHBOOK_IMPORT_WORKERS"] = "2"  # a pool even on one core: a kill must not orphan it
    return env


def import_cmd(path: Path, errors: Path) -> list[str]:
    return [str(HEALTHBOOK), "import", "ndjson", str(path), "--chunk", str(CHUNK), "--errors", str(errors)]


def stored(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(resource)).scalar_one())


@pytest.fixture
def clean_url(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A second empty, migrated database on the same backend, for the reference import."""
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'clean.db'}"
        server = None
        name = ""
    else:
        server = request.getfixturevalue("pg_server")
        name = f"hb_clean_{uuid.uuid4().hex[:12]}"
        url = str(server.create_database(name))
    db = Database(Settings(database_url=url))
    upgrade(db)
    db.dispose()
    yield url
    if server is not None:
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # a name made above


def children(pid: int) -> set[int]:
    """The processes whose parent is pid (from /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def alive(pids: set[int]) -> set[int]:
    """Those of pids still running (not zombies)."""
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def test_killed_import_rerun_gives_exactly_the_file(db_url: str, clean_url: str, tmp_path: Path) -> None:
    big = tmp_path / "big.ndjson"
    expected = write_big_file(big)
    total = sum(expected.values())
    errors = tmp_path / "errors.ndjson"
    db = Database(Settings(database_url=db_url))
    try:
        proc = subprocess.Popen(
            import_cmd(big, errors), cwd=tmp_path, env=env_for(db_url),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            while stored(db) < KILL_AFTER:
                assert proc.poll() is None, (
                    f"the import ended before the kill: {proc.stderr.read() if proc.stderr else ''}"
                )
                assert time.monotonic() < deadline, "the import did not get going"
                time.sleep(0.02)
            workers = children(proc.pid)
            assert workers, "the import runs without worker processes: the test would not see them"
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            gone = time.monotonic() + 30
            while alive(workers) and time.monotonic() < gone:
                time.sleep(0.05)
            assert not alive(workers), f"the killed import left its workers behind: {alive(workers)}"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
        after_kill = table_counts(db)
        partial = after_kill[resource.name]
        assert KILL_AFTER <= partial < total, partial
        assert partial % CHUNK == 0, f"a chunk was half committed: {partial} resources"
        assert after_kill[resource_version.name] == partial
        assert after_kill[resource_locator.name] == partial

        done = subprocess.run(
            import_cmd(big, errors), cwd=tmp_path, env=env_for(db_url), capture_output=True, text=True,
            timeout=600, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert f"{total - partial} created" in done.stdout.replace("\n", " "), done.stdout[-1000:]
        with db.read() as conn:
            by_type = Counter(
                dict(
                    conn.execute(
                        select(resource.c.res_type, func.count()).group_by(resource.c.res_type)
                    ).all()
                )
            )
            max_version = conn.execute(select(func.max(resource_version.c.version_id))).scalar_one()
            current_versions = {r[0] for r in conn.execute(select(resource.c.version_id).distinct())}
        assert by_type == expected
        assert max_version == 1
        assert current_versions == {1}
        counts = table_counts(db)
        assert counts[resource_version.name] == total
        assert counts[resource_locator.name] == total
    finally:
        db.dispose()

    # A clean, uninterrupted import of the same file leaves the same rows in every table.
    clean_run = subprocess.run(
        import_cmd(big, tmp_path / "clean-errors.ndjson"), cwd=tmp_path, env=env_for(clean_url),
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert clean_run.returncode == 0, clean_run.stderr[-2000:]
    clean_db = Database(Settings(database_url=clean_url))
    crashed_db = Database(Settings(database_url=db_url))
    try:
        skip = {"bulk_job", "maintenance_state"}
        want = {k: v for k, v in table_counts(clean_db).items() if k not in skip}
        got = {k: v for k, v in table_counts(crashed_db).items() if k not in skip}
        assert got == want
        assert set(got) == {t.name for t in metadata.sorted_tables} - skip
    finally:
        clean_db.dispose()
        crashed_db.dispose()
