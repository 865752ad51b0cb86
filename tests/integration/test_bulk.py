"""Bulk Data (Bulk Data Access IG v2 $export, NDJSON $import, CLI import/export) on both databases."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from healthbook.app import build_services, create_app
from healthbook.config import Settings
from healthbook.db.engine import Database
from healthbook.db.migrate import upgrade
from healthbook.fhir.store.schema import resource, resource_version

from .conftest import outcome
from .test_everything import Loaded, in_compartment, load_bundle, load_patients
from .test_transaction import FHIR_JSON, SYNTHEA, rewrite

HEALTHBOOK = Path(sys.executable).with_name("healthbook")
PATIENT_FILES = (
    "Fannie_Waelchi_8666cd40-7af9-48c6-a1a6-86a161195542.json.gz",
    "Dwain_McGlynn_7515d14b-843b-4210-8b6b-a33ab253d560.json.gz",
    "Wm_Bergstrom_c536dee9-9ef6-4807-ae20-9f1045c9c7d6.json.gz",
)
KICK_OFF = {"accept": "application/fhir+json", "prefer": "respond-async"}
HEIGHT = "http://loinc.org|8302-2"
WEIGHT = "http://loinc.org|29463-7"

ResourceKey = tuple[str, str]


# ---- helpers ----------------------------------------------------------------------------------


def comparable(content: str) -> dict[str, Any]:
    """A stored resource without meta.versionId and meta.lastUpdated."""
    doc: dict[str, Any] = json.loads(content)
    meta = {k: v for k, v in (doc.pop("meta", None) or {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        doc["meta"] = meta
    return doc


def dump(url: str) -> dict[ResourceKey, dict[str, Any]]:
    """Every current resource of a database, for comparison."""
    db = Database(Settings(database_url=url))
    try:
        with db.read() as conn:
            rows = conn.execute(
                select(resource.c.res_type, resource.c.res_id, resource.c.content).where(
                    resource.c.deleted.is_(False)
                )
            ).all()
    finally:
        db.dispose()
    return {(r[0], r[1]): comparable(r[2]) for r in rows}


def version_ids(url: str) -> dict[ResourceKey, list[int]]:
    """All version numbers of every resource."""
    db = Database(Settings(database_url=url))
    try:
        with db.read() as conn:
            rows = conn.execute(
                select(resource_version.c.res_type, resource_version.c.res_id, resource_version.c.version_id)
            ).all()
    finally:
        db.dispose()
    out: dict[ResourceKey, list[int]] = {}
    for r in rows:
        out.setdefault((r[0], r[1]), []).append(int(r[2]))
    return {k: sorted(v) for k, v in out.items()}


def local(url: str) -> str:
    """An absolute URL of the test server as a path."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def kick_off(
    client: TestClient, path: str, params: dict[str, str] | list[tuple[str, str]] | None = None
) -> str:
    """Start an export; returns the status URL (Content-Location)."""
    resp = client.get(path, params=params, headers=KICK_OFF)
    assert resp.status_code == 202, resp.text[:1000]
    return str(resp.headers["content-location"])


def wait_done(client: TestClient, status_url: str, timeout: float = 120.0) -> dict[str, Any]:
    """Poll a bulk status URL until it answers 200; returns the manifest."""
    deadline = time.monotonic() + timeout
    while True:
        resp = client.get(local(status_url), headers={"accept": "application/json"})
        if resp.status_code == 200:
            assert resp.headers["content-type"].startswith("application/json")
            manifest: dict[str, Any] = resp.json()
            return manifest
        assert resp.status_code == 202, (resp.status_code, resp.text[:1000])
        assert time.monotonic() < deadline, "the bulk job did not finish"
        time.sleep(0.1)


def check_manifest(manifest: dict[str, Any], request_path: str) -> None:
    """The required fields of a completed export (Bulk Data IG v2, 'Response - Complete Status')."""
    assert set(manifest) >= {"transactionTime", "request", "requiresAccessToken", "output", "error"}
    datetime.fromisoformat(manifest["transactionTime"].replace("Z", "+00:00"))
    assert request_path in manifest["request"]
    assert isinstance(manifest["requiresAccessToken"], bool)
    assert isinstance(manifest["error"], list)
    for item in manifest["output"]:
        assert set(item) >= {"type", "url"}


def download(client: TestClient, manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Type -> resources of every output file of a manifest."""
    out: dict[str, list[dict[str, Any]]] = {}
    for item in manifest["output"]:
        resp = client.get(local(item["url"]), headers={"accept": "application/fhir+ndjson"})
        assert resp.status_code == 200, resp.text[:500]
        assert resp.headers["content-type"].startswith("application/fhir+ndjson")
        lines = [json.loads(line) for line in resp.text.splitlines() if line.strip()]
        if "count" in item:
            assert item["count"] == len(lines)
        assert all(r["resourceType"] == item["type"] for r in lines)
        out.setdefault(item["type"], []).extend(lines)
    return out


def export(
    client: TestClient, path: str, params: dict[str, str] | list[tuple[str, str]] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Kick off, wait, download: Type -> resources."""
    manifest = wait_done(client, kick_off(client, path, params))
    check_manifest(manifest, path.split("/fhir", 1)[1])
    return download(client, manifest)


def keys(files: dict[str, list[dict[str, Any]]]) -> set[str]:
    """Type/id of every exported resource (and no resource twice)."""
    refs = [f"{r['resourceType']}/{r['id']}" for rs in files.values() for r in rs]
    assert len(refs) == len(set(refs)), "a resource exported twice"
    return set(refs)


def cli(args: list[str], url: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the healthbook command on a database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHBOOK_")}
    env["HEALTHBOOK_DATABASE_URL"] = url
    env["COLUMNS"] = "200"
    return subprocess.run(
        [str(HEALTHBOOK), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def has_code(resource: dict[str, Any], token: str) -> bool:
    """Whether a resource's code has the system|code coding."""
    system, code = token.split("|")
    return any(
        c.get("system") == system and c.get("code") == code
        for c in resource.get("code", {}).get("coding", [])
    )


# ---- fixtures ---------------------------------------------------------------------------------


def make_client(url: str, bulk_dir: Path) -> tuple[TestClient, Any]:
    settings = Settings(database_url=url, pool_size=5, bulk_dir=str(bulk_dir))
    services = build_services(settings)
    return TestClient(create_app(settings, services)), services


@pytest.fixture
def bulk_client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """An API client on the (empty) database under test, with its bulk files in tmp_path."""
    client, services = make_client(db_url, tmp_path / "bulk")
    with client:
        yield client
    services.fhir.db.dispose()


@dataclass
class Source:
    """A module database with three Synthea patients, two Groups and 203 unreferenced Organizations."""

    url: str
    client: TestClient
    patients: dict[str, Loaded]
    resources: dict[str, dict[str, Any]]  # Type/id -> resource with server references
    groups: dict[str, tuple[str, ...]]  # Group id -> member patient ids

    def compartment(self, pid: str) -> set[str]:
        """Type/id of everything in one patient's compartment, computed from the content."""
        ref = f"Patient/{pid}"
        return {k for k, r in self.resources.items() if k == ref or in_compartment(r, {ref})}

    def of_types(self, *types: str) -> set[str]:
        """Type/id of every resource of these types."""
        return {k for k in self.resources if k.split("/")[0] in types}


@pytest.fixture(scope="module")
def source(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    client, services = make_client(module_db_url, tmp_path_factory.mktemp("bulk-source"))
    with client:
        patients = load_patients(client, PATIENT_FILES)
        resources: dict[str, dict[str, Any]] = {}
        for p in patients.values():
            for ref, submitted in p.resources.items():
                resources[ref] = rewrite(submitted, p.by_full_url)
        doc, mapping = load_bundle(client, "hospitalInformation1588766256867.json.gz")
        for e in doc["entry"]:
            resources[mapping[e["fullUrl"]]] = e["resource"]
        a, b, c = (patients[n].patient_id for n in PATIENT_FILES)
        groups: dict[str, tuple[str, ...]] = {}
        for members in ((a, b), (c, a)):  # the second Group is filed under c but is in a's compartment too
            group = synthea_group([f"Patient/{m}" for m in members])
            resp = client.post("/fhir/Group", content=json.dumps(group), headers=FHIR_JSON)
            assert resp.status_code == 201, resp.text
            gid = resp.json()["id"]
            groups[gid] = members
            resources[f"Group/{gid}"] = group
        yield Source(module_db_url, client, patients, resources, groups)
    services.fhir.db.dispose()


def synthea_group(members: list[str]) -> dict[str, Any]:
    """The Synthea Group of the material with its members replaced (it names urn:uuid patients)."""
    doc: dict[str, Any] = json.loads(
        gzip.decompress((SYNTHEA / "groupInformation1588766256867.json.gz").read_bytes())
    )
    doc.pop("id", None)
    doc["member"] = [{"entity": {"reference": m}} for m in members]
    doc["quantity"] = len(members)
    return doc


@pytest.fixture
def target_url(module_db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database (no schema yet) on the same backend as the source."""
    if module_db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'target.db'}"
        return
    server = request.getfixturevalue("pg_server")
    name = f"hb_target_{uuid.uuid4().hex[:12]}"
    url = str(server.create_database(name))
    yield url
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # a name made above


def migrate(url: str) -> None:
    """Create the schema of an empty database."""
    db = Database(Settings(database_url=url))
    try:
        upgrade(db)
    finally:
        db.dispose()


# ---- round trips --------------------------------------------------------------------------------


def test_the_source_database_holds_what_was_loaded(source: Source) -> None:
    stored = dump(source.url)
    assert {f"{t}/{i}" for t, i in stored} == set(source.resources)
    assert len(source.resources) == 28 + 96 + 106 + 203 + 2


def test_export_then_import_over_http_reproduces_every_resource(
    source: Source, target_url: str, tmp_path: Path
) -> None:
    before = dump(source.url)
    files = export(source.client, "/fhir/$export")
    assert keys(files) == {f"{t}/{i}" for t, i in before}
    migrate(target_url)
    assert dump(target_url) == {}
    body = "".join(json.dumps(r) + "\n" for rs in files.values() for r in rs)
    target, services = make_client(target_url, tmp_path / "bulk-target")
    with target:
        resp = target.post(
            "/fhir/$import", content=body.encode(), headers={"content-type": "application/fhir+ndjson"}
        )
        assert resp.status_code == 202, resp.text
        manifest = wait_done(target, resp.headers["content-location"])
    services.fhir.db.dispose()
    assert manifest["error"] == []
    counts = {item["type"]: item["count"] for item in manifest["output"]}
    assert counts == {t: len(rs) for t, rs in files.items()}
    after = dump(target_url)
    assert after.keys() == before.keys()
    for key, doc in before.items():
        assert after[key] == doc, key
    assert all(v == [1] for v in version_ids(target_url).values())


def test_export_then_import_with_the_cli_reproduces_every_resource(
    source: Source, target_url: str, tmp_path: Path
) -> None:
    before = dump(source.url)
    out = tmp_path / "export"
    done = cli(["export", "ndjson", str(out)], source.url, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted(out.iterdir())
    by_type = {t for t, _ in before}
    assert {f.name for f in files} == {f"{t}.ndjson" for t in by_type}
    for f in files:
        lines = [json.loads(line) for line in f.read_text().splitlines()]
        assert {r["resourceType"] for r in lines} == {f.name.split(".")[0]}
        assert len(lines) == sum(1 for t, _ in before if t == f.name.split(".")[0])
    done = cli(["db", "upgrade"], target_url, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    errors = tmp_path / "errors.ndjson"
    done = cli(["import", "ndjson", *map(str, files), "--errors", str(errors)], target_url, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not errors.exists() or errors.read_text() == ""
    after = dump(target_url)
    assert after.keys() == before.keys()
    for key, doc in before.items():
        assert after[key] == doc, key
    assert all(v == [1] for v in version_ids(target_url).values())
    # the search indexes were built: a search on the target finds what it finds on the source
    pid = source.patients[PATIENT_FILES[1]].patient_id
    target, services = make_client(target_url, tmp_path / "bulk-target")
    with target:
        for query in (
            f"Observation?subject=Patient/{pid}",
            f"Observation?code={HEIGHT}",
            "Patient?gender=female",
        ):
            want = source.client.get(f"/fhir/{query}&_summary=count").json()["total"]
            assert target.get(f"/fhir/{query}&_summary=count").json()["total"] == want, query
    services.fhir.db.dispose()


def test_cli_export_with_type_and_since(source: Source, tmp_path: Path) -> None:
    out = tmp_path / "typed"
    done = cli(["export", "ndjson", str(out), "--type", "Patient,Condition"], source.url, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    got = {
        f"{json.loads(line)['resourceType']}/{json.loads(line)['id']}"
        for f in out.iterdir()
        for line in f.read_text().splitlines()
    }
    assert got == source.of_types("Patient", "Condition")
    future = tmp_path / "future"
    done = cli(["export", "ndjson", str(future), "--since", "2999-01-01T00:00:00Z"], source.url, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not future.exists() or list(future.iterdir()) == []


# ---- export parameters ---------------------------------------------------------------------------


def test_type_restricts_the_export(source: Source) -> None:
    files = export(source.client, "/fhir/$export", {"_type": "Patient,Condition,Organization"})
    assert set(files) <= {"Patient", "Condition", "Organization"}
    assert keys(files) == source.of_types("Patient", "Condition", "Organization")


def test_type_filter_restricts_its_type_only(source: Source) -> None:
    files = export(
        source.client,
        "/fhir/$export",
        [("_type", "Observation,Patient"), ("_typeFilter", f"Observation?code={HEIGHT}")],
    )
    heights = {
        k for k, r in source.resources.items() if r["resourceType"] == "Observation" and has_code(r, HEIGHT)
    }
    assert heights
    assert keys(files) == heights | source.of_types("Patient")
    both = export(
        source.client,
        "/fhir/$export",
        [
            ("_type", "Observation"),
            ("_typeFilter", f"Observation?code={HEIGHT}"),
            ("_typeFilter", f"Observation?code={WEIGHT}"),
        ],
    )
    weights = {
        k for k, r in source.resources.items() if r["resourceType"] == "Observation" and has_code(r, WEIGHT)
    }
    assert weights
    assert keys(both) == heights | weights
    # several queries in one _typeFilter value, comma-separated (Bulk Data IG)
    combined = export(
        source.client,
        "/fhir/$export",
        [("_type", "Observation"), ("_typeFilter", f"Observation?code={HEIGHT},Observation?code={WEIGHT}")],
    )
    assert keys(combined) == heights | weights
    # a filter on one type leaves the other types whole, and an AND of two criteria narrows
    final_heights = export(
        source.client,
        "/fhir/$export",
        [("_type", "Observation,Condition"), ("_typeFilter", f"Observation?code={HEIGHT}&status=final")],
    )
    assert keys(final_heights) == {
        k for k in heights if source.resources[k]["status"] == "final"
    } | source.of_types("Condition")


def test_since_exports_only_what_changed(source: Source) -> None:
    obs = sorted(source.of_types("Observation"))[0]
    time.sleep(0.01)
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    time.sleep(0.01)
    assert keys(export(source.client, "/fhir/$export", {"_since": since})) == set()
    doc = source.client.get(f"/fhir/{obs}", headers=FHIR_JSON).json()
    doc["status"] = "amended"
    assert source.client.put(f"/fhir/{obs}", content=json.dumps(doc), headers=FHIR_JSON).status_code == 200
    source.resources[obs]["status"] = "amended"
    assert keys(export(source.client, "/fhir/$export", {"_since": since})) == {obs}
    assert keys(export(source.client, "/fhir/Patient/$export", {"_since": since})) == {obs}
    assert keys(export(source.client, "/fhir/$export", {"_since": since, "_type": "Patient"})) == set()
    assert keys(export(source.client, "/fhir/$export", {"_since": "2000-01-01T00:00:00Z"})) == set(
        source.resources
    )


def test_patient_level_export_is_every_patient_compartment(source: Source) -> None:
    expected = set().union(*(source.compartment(p.patient_id) for p in source.patients.values()))
    assert not {k for k in expected if k.startswith(("Organization/", "Practitioner/"))}
    assert keys(export(source.client, "/fhir/Patient/$export")) == expected
    typed = export(source.client, "/fhir/Patient/$export", {"_type": "Encounter,Group"})
    assert keys(typed) == {k for k in expected if k.split("/")[0] in ("Encounter", "Group")}


@pytest.mark.parametrize("which", [0, 1])
def test_group_export_is_the_members_compartments(source: Source, which: int) -> None:
    gid = sorted(source.groups, key=lambda g: source.groups[g])[which]
    members = source.groups[gid]
    expected = set().union(*(source.compartment(pid) for pid in members))
    assert f"Group/{gid}" in expected
    got = keys(export(source.client, f"/fhir/Group/{gid}/$export"))
    others = [p.patient_id for p in source.patients.values() if p.patient_id not in members]
    for pid in others:
        assert f"Patient/{pid}" not in got
    assert got == expected


def test_group_export_of_an_unknown_group_is_404(source: Source) -> None:
    resp = source.client.get("/fhir/Group/no-such-group/$export", headers=KICK_OFF)
    outcome(resp, 404)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/fhir/$export", {"_type": "NotAType"}),
        ("/fhir/Patient/$export", {"_type": "Patient,Obsrvation"}),
        ("/fhir/$export", {"_since": "last tuesday"}),
        ("/fhir/$export", {"_outputFormat": "text/csv"}),
        ("/fhir/$export", {"_typeFilter": "Observation?no-such-param=1"}),
        ("/fhir/$export", {"_typeFilter": "code=1"}),
        ("/fhir/Group/bad id!/$export", {}),
    ],
)
def test_bad_kick_off_parameters_are_rejected(source: Source, path: str, params: dict[str, str]) -> None:
    outcome(source.client.get(path, params=params, headers=KICK_OFF), {400, 404})


def test_output_format_abbreviations_are_accepted(source: Source) -> None:
    for fmt in ("application/fhir+ndjson", "application/ndjson", "ndjson"):
        files = export(source.client, "/fhir/$export", {"_type": "Patient", "_outputFormat": fmt})
        assert keys(files) == source.of_types("Patient")


# ---- job management -------------------------------------------------------------------------------


def test_cancel_then_status_is_404(source: Source) -> None:
    status = kick_off(source.client, "/fhir/$export")
    resp = source.client.delete(local(status))
    assert resp.status_code == 202, resp.text
    outcome(source.client.get(local(status), headers={"accept": "application/json"}), 404)
    time.sleep(0.5)  # a job that was still running stops and stays cancelled
    outcome(source.client.get(local(status), headers={"accept": "application/json"}), 404)
    job = status.rsplit("/", 1)[1]
    outcome(source.client.get(f"/fhir/$export-file/{job}/Patient.ndjson"), 404)


def test_a_completed_job_can_be_deleted(source: Source) -> None:
    status = kick_off(source.client, "/fhir/$export", {"_type": "Patient"})
    manifest = wait_done(source.client, status)
    (item,) = manifest["output"]
    assert source.client.get(local(item["url"])).status_code == 200
    assert source.client.delete(local(status)).status_code == 202
    outcome(source.client.get(local(status)), 404)
    outcome(source.client.get(local(item["url"])), 404)


def test_unknown_jobs_are_404(source: Source) -> None:
    for path in (
        "/fhir/$export-status/no-such-job",
        f"/fhir/$export-status/{uuid.uuid4()}",
        f"/fhir/$import-status/{uuid.uuid4()}",
        f"/fhir/$export-file/{uuid.uuid4()}/Patient.ndjson",
    ):
        outcome(source.client.get(path), 404)
    outcome(source.client.delete(f"/fhir/$export-status/{uuid.uuid4()}"), 404)


def test_files_outside_the_job_are_not_served(source: Source) -> None:
    manifest = wait_done(source.client, kick_off(source.client, "/fhir/$export", {"_type": "Patient"}))
    job = manifest["output"][0]["url"].split("/")[-2]
    for name in ("..%2F..%2Fetc%2Fpasswd", ".hidden", "%2E%2E", "input.ndjson", "Nope.ndjson"):
        assert source.client.get(f"/fhir/$export-file/{job}/{name}").status_code == 404, name


# ---- import ---------------------------------------------------------------------------------------


def valid_patient(rid: str, family: str = "Import") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": rid, "name": [{"family": family}], "gender": "female"}


def import_lines() -> tuple[list[str], dict[int, str], set[str]]:
    """NDJSON lines with invalid ones among them -> (lines, {bad line number: why}, good Type/ids)."""
    obs = {
        "resourceType": "Observation",
        "id": "imp-obs-1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "subject": {"reference": "Patient/imp-1"},
    }
    rows: list[tuple[str, str | None]] = [
        (json.dumps(valid_patient("imp-1")), None),  # 1
        ('{"resourceType": "Patient", "id": "imp-x", ', "not JSON"),  # 2
        (json.dumps({**valid_patient("imp-bad-date"), "birthDate": "yesterday"}), "invalid birthDate"),  # 3
        ("", None),  # 4 blank
        (json.dumps(obs), None),  # 5
        ('["an", "array"]', "not an object"),  # 6
        (json.dumps({"resourceType": "NotAType", "id": "x"}), "unknown type"),  # 7
        (json.dumps(valid_patient("bad id!")), "bad id"),  # 8
        (json.dumps(valid_patient("imp-2", "Zweite")), None),  # 9
        (json.dumps({"id": "no-type"}), "no resourceType"),  # 10
        (json.dumps({**valid_patient("imp-unknown-element"), "colour": "blue"}), "unknown element"),  # 11
        (json.dumps(valid_patient("imp-3", "Nguyễn")), None),  # 12
    ]
    lines = [r[0] for r in rows]
    bad = {n: why for n, (_, why) in enumerate(rows, start=1) if why}
    return lines, bad, {"Patient/imp-1", "Observation/imp-obs-1", "Patient/imp-2", "Patient/imp-3"}


def line_numbers(outcomes: list[dict[str, Any]]) -> list[int]:
    """The line number each error OperationOutcome names (':N:' or 'line N')."""
    out = []
    for oo in outcomes:
        assert oo["resourceType"] == "OperationOutcome"
        text = " ".join(i.get("diagnostics", "") for i in oo["issue"])
        found = re.search(r":(\d+):|line (\d+)", text)
        assert found, text
        out.append(int(found.group(1) or found.group(2)))
    return out


def stored_keys(url: str) -> set[str]:
    return {f"{t}/{i}" for t, i in dump(url)}


def test_cli_import_reports_invalid_lines_and_goes_on(db_url: str, tmp_path: Path) -> None:
    lines, bad, good = import_lines()
    data = tmp_path / "mixed.ndjson"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    errors = tmp_path / "errors.ndjson"
    done = cli(["import", "ndjson", str(data), "--errors", str(errors)], db_url, tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode >= 0
    assert stored_keys(db_url) == good
    reported = [json.loads(line) for line in errors.read_text().splitlines()]
    assert sorted(line_numbers(reported)) == sorted(bad)
    for oo in reported:
        assert "mixed.ndjson" in json.dumps(oo)
    assert all(v == [1] for v in version_ids(db_url).values())
    # the same file again: nothing new, no new versions, the same errors
    done = cli(["import", "ndjson", str(data), "--errors", str(errors)], db_url, tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert stored_keys(db_url) == good
    assert all(v == [1] for v in version_ids(db_url).values())
    assert sorted(line_numbers([json.loads(x) for x in errors.read_text().splitlines()])) == sorted(bad)


def test_a_bad_setting_is_named_not_a_traceback(db_url: str, tmp_path: Path) -> None:
    data = tmp_path / "one.ndjson"
    data.write_text(json.dumps(valid_patient("bad-setting")) + "\n")
    env = {**os.environ, "HEALTHBOOK_DATABASE_URL": db_url, "HEALTHBOOK_IMPORT_WORKERS": "9"}
    done = subprocess.run(
        [str(HEALTHBOOK), "import", "ndjson", str(data)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "HEALTHBOOK_IMPORT_WORKERS" in done.stdout + done.stderr
    assert stored_keys(db_url) == set()  # nothing written


def test_cli_import_of_gzip_and_several_files(db_url: str, tmp_path: Path) -> None:
    one = tmp_path / "one.ndjson.gz"
    one.write_bytes(
        gzip.compress(b"".join(json.dumps(valid_patient(f"gz-{i}")).encode() + b"\n" for i in range(30)))
    )
    two = tmp_path / "two.ndjson"
    two.write_text("".join(json.dumps(valid_patient(f"plain-{i}")) + "\n" for i in range(20)))
    done = cli(["import", "ndjson", str(one), str(two)], db_url, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert stored_keys(db_url) == {f"Patient/gz-{i}" for i in range(30)} | {
        f"Patient/plain-{i}" for i in range(20)
    }
    assert cli(["import", "ndjson", str(tmp_path / "missing.ndjson")], db_url, tmp_path).returncode != 0


def test_http_import_reports_invalid_lines_and_goes_on(bulk_client: TestClient, db_url: str) -> None:
    lines, bad, good = import_lines()
    body = ("\n".join(lines) + "\n").encode()
    for attempt in range(2):
        resp = bulk_client.post(
            "/fhir/$import", content=body, headers={"content-type": "application/fhir+ndjson"}
        )
        assert resp.status_code == 202, resp.text
        assert "$import-status/" in resp.headers["content-location"]
        manifest = wait_done(bulk_client, resp.headers["content-location"])
        assert stored_keys(db_url) == good, attempt
        assert all(v == [1] for v in version_ids(db_url).values()), attempt
        (err,) = manifest["error"]
        assert err["type"] == "OperationOutcome"
        got = bulk_client.get(local(err["url"]))
        assert got.status_code == 200
        reported = [json.loads(line) for line in got.text.splitlines() if line.strip()]
        assert sorted(line_numbers(reported)) == sorted(bad)
    patient = bulk_client.get("/fhir/Patient/imp-3", headers=FHIR_JSON).json()
    assert patient["name"][0]["family"] == "Nguyễn"
    assert bulk_client.get("/fhir/Patient?family=nguyen&_summary=count").json()["total"] == 1
    obs = bulk_client.get("/fhir/Observation?subject=Patient/imp-1&_summary=count").json()
    assert obs["total"] == 1


def test_reimport_of_changed_content_makes_a_new_version(bulk_client: TestClient, db_url: str) -> None:
    def run(docs: list[dict[str, Any]]) -> dict[str, Any]:
        body = "".join(json.dumps(d) + "\n" for d in docs).encode()
        resp = bulk_client.post(
            "/fhir/$import", content=body, headers={"content-type": "application/fhir+ndjson"}
        )
        assert resp.status_code == 202, resp.text
        return wait_done(bulk_client, resp.headers["content-location"])

    run([valid_patient("re-1"), valid_patient("re-2")])
    run([valid_patient("re-1"), valid_patient("re-2", "Changed")])
    assert version_ids(db_url) == {("Patient", "re-1"): [1], ("Patient", "re-2"): [1, 2]}
    assert bulk_client.get("/fhir/Patient/re-2").json()["name"][0]["family"] == "Changed"
    # key order and whitespace do not make a change
    run([{"gender": "female", "name": [{"family": "Import"}], "id": "re-1", "resourceType": "Patient"}])
    assert version_ids(db_url)[("Patient", "re-1")] == [1]


def test_import_needs_an_ndjson_body(bulk_client: TestClient) -> None:
    outcome(
        bulk_client.post("/fhir/$import", content=b"{}", headers={"content-type": "application/json"}), 415
    )
    outcome(
        bulk_client.post("/fhir/$import", content=b"", headers={"content-type": "application/fhir+ndjson"}),
        400,
    )
