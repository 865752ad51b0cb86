"""SIGKILL the real server in the middle of a stream of writes: every acknowledged write survives,
and nothing is half-written (versions, locator and search index agree with the current resources)."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from healthbook.config import Settings
from healthbook.db.engine import Database
from healthbook.fhir.store.schema import idx_token, resource, resource_locator, resource_version

from .conftest import ServerProcess, free_port

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("crash")]

SYSTEM = "urn:healthbook:crash"


@dataclass(frozen=True, slots=True)
class Ack:
    """A write the server answered with 2xx: what was sent and what it said was stored."""

    res_id: str
    version: int
    marker: str
    status: int


@dataclass(slots=True)
class Stream:
    """What the writer thread did."""

    acks: list[Ack] = field(default_factory=list)
    in_flight: tuple[str | None, str] | None = None  # (id for an update / None for a create, marker)
    error: BaseException | None = None


def body(marker: str, res_id: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": marker}],
        "name": [{"family": f"Family {marker}", "given": ["Crash"]}],
        "birthDate": "1990-01-01",
    }
    if res_id is not None:
        doc["id"] = res_id
    return doc


def writer(base: str, stream: Stream, stop: threading.Event) -> None:
    """Creates and updates (a third are updates of earlier resources) until the server dies."""
    rng = random.Random(7)
    n = 0
    try:
        with httpx.Client(base_url=base, timeout=20) as http:
            while not stop.is_set():
                n += 1
                marker = f"w{n}"
                target = rng.choice(stream.acks).res_id if stream.acks and n % 3 == 0 else None
                stream.in_flight = (target, marker)
                try:
                    if target is None:
                        resp = http.post("/Patient", json=body(marker))
                    else:
                        resp = http.put(f"/Patient/{target}", json=body(marker, target))
                except httpx.TransportError:
                    return  # the server is gone; this write is unacknowledged
                if resp.status_code not in (200, 201):
                    raise AssertionError(f"write {marker} answered {resp.status_code}: {resp.text[:300]}")
                stored = resp.json()
                stream.acks.append(
                    Ack(stored["id"], int(stored["meta"]["versionId"]), marker, resp.status_code)
                )
                stream.in_flight = None
    except BaseException as exc:
        stream.error = exc


def marker_of(doc: dict[str, Any]) -> str:
    value: str = doc["identifier"][0]["value"]
    assert doc["name"][0]["family"] == f"Family {value}"
    return value


def search_ids(http: httpx.Client, identifier: str) -> list[str]:
    resp = http.get("/Patient", params={"identifier": identifier, "_count": "1000"})
    assert resp.status_code == 200, resp.text
    return sorted(e["resource"]["id"] for e in resp.json().get("entry", []) if e["search"]["mode"] == "match")


def check_store(url: str) -> None:
    """Direct look at the tables: every current resource has all its versions, its locator and index rows."""
    db = Database(Settings(database_url=url))
    try:
        with db.read() as conn:
            current = conn.execute(
                select(resource.c.patient_key, resource.c.res_id, resource.c.version_id, resource.c.content)
            ).all()
            versions: dict[tuple[str, str], dict[int, str | None]] = {}
            for pk, rid, vid, content in conn.execute(
                select(
                    resource_version.c.patient_key,
                    resource_version.c.res_id,
                    resource_version.c.version_id,
                    resource_version.c.content,
                )
            ):
                versions.setdefault((pk, rid), {})[vid] = content
            locators = {
                rid: pk
                for rid, pk in conn.execute(select(resource_locator.c.res_id, resource_locator.c.patient_key))
            }
            tokens: dict[str, set[str]] = {}
            for rid, code in conn.execute(
                select(idx_token.c.res_id, idx_token.c.code).where(
                    idx_token.c.param == "identifier", idx_token.c.system == SYSTEM
                )
            ):
                tokens.setdefault(rid, set()).add(code)
    finally:
        db.dispose()
    assert len(current) == len(versions) == len(locators)
    for pk, rid, vid, content in current:
        assert locators[rid] == pk
        assert set(versions[(pk, rid)]) == set(range(1, vid + 1)), (
            f"{rid}: versions {sorted(versions[(pk, rid)])}"
        )
        assert versions[(pk, rid)][vid] == content, f"{rid}: current row differs from its version row"
        assert tokens.get(rid) == {marker_of(json.loads(content))}, f"{rid}: index rows {tokens.get(rid)}"
    assert set(tokens) <= {rid for _, rid, _, _ in current}, "index rows of resources that do not exist"


def test_acknowledged_writes_survive_sigkill(server_url: str, tmp_path: Path) -> None:
    server = ServerProcess(server_url, tmp_path)
    server.start()
    stream, stop = Stream(), threading.Event()
    thread = threading.Thread(target=writer, args=(server.base, stream, stop), daemon=True)
    try:
        thread.start()
        deadline = time.monotonic() + 20
        wanted = random.Random().randint(40, 120)  # a different moment on every run
        while len(stream.acks) < wanted and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert stream.error is None, stream.error
        assert len(stream.acks) >= 20, f"only {len(stream.acks)} writes in 20 s"
        server.kill()
        thread.join(20)
        assert not thread.is_alive()
        assert stream.error is None, stream.error
        assert any(a.status == 200 for a in stream.acks), "no update was acknowledged before the kill"

        server.port = free_port()
        server.start()
        latest: dict[str, Ack] = {}
        for ack in stream.acks:
            latest[ack.res_id] = ack
        in_flight = stream.in_flight
        with httpx.Client(base_url=server.base, timeout=20) as http:
            # Every acknowledged version is stored with what was sent.
            for ack in stream.acks:
                resp = http.get(f"/Patient/{ack.res_id}/_history/{ack.version}")
                assert resp.status_code == 200, (ack, resp.status_code)
                assert marker_of(resp.json()) == ack.marker, ack
            # The current version is the last acknowledged one, or the unacknowledged write after it.
            extra_versions = 0
            for rid, ack in latest.items():
                resp = http.get(f"/Patient/{rid}")
                assert resp.status_code == 200, (ack, resp.status_code)
                doc = resp.json()
                vid = int(doc["meta"]["versionId"])
                if vid == ack.version:
                    assert marker_of(doc) == ack.marker
                else:
                    assert in_flight is not None
                    assert in_flight[0] == rid, (rid, vid, ack)
                    assert vid == ack.version + 1
                    assert marker_of(doc) == in_flight[1]
                    extra_versions += 1
                history = http.get(f"/Patient/{rid}/_history").json()
                assert history["total"] == vid
            # The search index agrees: each current marker finds its resource, superseded markers nothing.
            current_marker = {}
            for rid in latest:
                current_marker[rid] = marker_of(http.get(f"/Patient/{rid}").json())
                assert search_ids(http, f"{SYSTEM}|{current_marker[rid]}") == [rid]
            for ack in stream.acks:
                if current_marker[ack.res_id] != ack.marker:
                    assert search_ids(http, f"{SYSTEM}|{ack.marker}") == [], ack
            everyone = search_ids(http, f"{SYSTEM}|")
            unacked_create = set(everyone) - set(latest)
            assert set(latest) <= set(everyone)
            assert len(unacked_create) <= (1 if in_flight is not None and in_flight[0] is None else 0)
            for rid in unacked_create:
                assert in_flight is not None
                assert marker_of(http.get(f"/Patient/{rid}").json()) == in_flight[1]
            total_versions = http.get("/_history", params={"_count": "0"}).json()["total"]
            assert total_versions == len(stream.acks) + extra_versions + len(unacked_create)
            # The restarted server takes writes again.
            assert http.post("/Patient", json=body("after-restart")).status_code == 201
    finally:
        stop.set()
        server.stop()
    check_store(server_url)
