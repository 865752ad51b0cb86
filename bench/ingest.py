"""Ingest benchmark: transaction bundles, bulk NDJSON import vs raw COPY, $export, $everything, scaling.

Run `.venv/bin/python bench/ingest.py` (full run, about 30 minutes on 2 cores) or add `--quick`
(a few minutes); `--scenario tx,import,export,everything,scale,profile` picks parts and
`--markdown bench/RESULTS.md` records the run in its own section. Everything runs on a throw-away
PostgreSQL (TempPostgres) and talks to 127.0.0.1 only; servers, helpers, databases and temporary files
are removed on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import datetime as dt
import http.client
import io
import json
import math
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import ingest_cpu as cpu  # noqa: E402
import ingest_data as data  # noqa: E402
import ingest_env as env  # noqa: E402
import ingest_fill as fill  # noqa: E402

SECTION = "## Ingest (bench/ingest.py)"
SYNTH_SECTION = "## Ingest on healthbook synth data (bench/ingest.py --data synth)"
SCENARIOS = ("tx", "import", "export", "everything", "scale", "profile")
PG_SETTINGS = {"shared_buffers": "1GB", "max_wal_size": "4GB", "checkpoint_timeout": "30min"}
TARGETS = {
    "tx": 2500.0,
    "import": 15000.0,
    "ratio": 0.15,
    "export": 50000.0,
    "everything_p50_ms": 30.0,
    "scale_drop": 0.20,
}


@dataclass(frozen=True, slots=True)
class Plan:
    """Sizes of one run (full or quick)."""

    tx_bundles: int  # 0: all 102
    import_clones: int
    import_limit: int | None
    scale_sizes: tuple[int, ...]
    scale_batch: int
    profile_lines: int
    everything_calls: int


FULL = Plan(0, 3, 100_000, (0, 1_000_000), 20_000, 20_000, 100)
QUICK = Plan(30, 1, 20_000, (0, 100_000), 10_000, 5_000, 60)
SMOKE = Plan(6, 1, 2_000, (0, 5_000), 1_000, 1_000, 10)  # checks that every part works, in about a minute
SYNTH_TX_CITIZENS = 600  # --data synth, full run: about 60,000 resources in 600 citizen bundles + facilities


@dataclass
class Figure:
    """One printed result line: what, value, unit, target, verdict."""

    name: str
    value: float | None
    unit: str
    target: str = ""
    ok: bool | None = None
    note: str = ""


@dataclass
class Run:
    """State shared by the scenarios of one run."""

    plan: Plan
    work: Path
    pg_url: str
    admin_url: str
    create_db: Callable[[str], str]
    pg_pid: int
    tpls: list[data.Template] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profile_text: str = ""
    main_loaded: int = 0
    server: env.Server | None = None
    source: str = "synthea"  # or "synth": healthbook synth output for the tx and import scenarios
    import_workers: int = -1  # import_lines(workers=...): -1 is the product's default, one per CPU

    def add(self, fig: Figure) -> None:
        """Record and print a figure at once."""
        self.figures.append(fig)
        value = "—" if fig.value is None else _fmt(fig.value)
        verdict = "" if fig.ok is None else ("  OK" if fig.ok else "  MISSED")
        target = f"  (target {fig.target})" if fig.target else ""
        note = f"  [{fig.note}]" if fig.note else ""
        log(f"  => {fig.name}: {value} {fig.unit}{target}{verdict}{note}")

    def meter(self, **roots: int) -> cpu.CpuMeter:
        """A started CPU meter over PostgreSQL and the given process trees."""
        return cpu.CpuMeter({**roots, "postgres": self.pg_pid}).start()

    def templates(self) -> list[data.Template]:
        """The Synthea lines split for cloning (built once)."""
        if not self.tpls:
            t0 = time.perf_counter()
            self.tpls = data.templates(data.synthea_lines())
            log(
                f"prepared {len(self.tpls)} Synthea resources as NDJSON templates"
                f" in {time.perf_counter() - t0:.1f} s"
            )
        return self.tpls


def _fmt(v: float) -> str:
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def log(msg: str) -> None:
    """A time-stamped progress line."""
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {msg}", flush=True)  # noqa: T201


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# ---- services in this process ------------------------------------------------------------------


def services(url: str) -> Any:
    """healthbook's services on a database (migrated if new)."""
    from healthbook.app import build_services
    from healthbook.config import Settings
    from healthbook.db.migrate import current_revision, head_revision, upgrade

    svc = build_services(Settings(database_url=url, bulk_dir=str(Path(tempfile.gettempdir()) / "unused")))
    if current_revision(svc.fhir.db) != head_revision():
        upgrade(svc.fhir.db)
    return svc


def import_file(
    run: Run, url: str, path: Path, profile: cProfile.Profile | None = None
) -> tuple[int, int, float, cpu.CpuMeter]:
    """Import an NDJSON file with import_lines; returns (lines, errors, seconds, CPU meter).

    Under a profile the lines are prepared in this process (workers=0), so that cProfile sees all of it.
    """
    from healthbook.auth.subject import Caller
    from healthbook.fhir.bulk.ndjson_import import import_lines, lines_of

    svc = services(url)
    errors: list[dict[str, Any]] = []
    try:
        with path.open("rb") as handle:
            meter = run.meter(importer=os.getpid())
            t0 = time.perf_counter()
            if profile is not None:
                profile.enable()
            try:
                stats = import_lines(
                    svc.fhir,
                    Caller.system("bench"),
                    lines_of(path.name, handle),
                    errors=errors.append,
                    workers=0 if profile is not None else run.import_workers,
                )
            finally:
                if profile is not None:
                    profile.disable()
            seconds = time.perf_counter() - t0
            meter.stop()
    finally:
        svc.fhir.db.dispose()
    if errors:
        log(f"  {len(errors)} invalid lines, first: {json.dumps(errors[0])[:300]}")
    return stats.lines, stats.errors, seconds, meter


def workers_text(run: Run) -> str:
    """How many processes prepared the lines, for the figures' details."""
    from healthbook.fhir.bulk.prepare import default_workers

    n = default_workers() if run.import_workers < 0 else run.import_workers
    return f"{n} preparing workers" if n else "no preparing workers"


def count_resources(url: str) -> int:
    """Rows in the current-resource table."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM resource").fetchone()
    return int(row[0]) if row else 0


def checkpoint(url: str) -> None:
    """Write dirty buffers out so that the next measurement does not pay for the previous step."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


# ---- scenario 1: transaction bundles over HTTP ------------------------------------------------


def ensure_server(run: Run) -> env.Server:
    """The `healthbook serve --workers 2` of the main database."""
    if run.server is None:
        run.server = env.Server(run.pg_url, workers=2, work_dir=run.work)
        run.server.start()
        log(f"server up on {run.server.base}")
    return run.server


def scenario_tx(run: Run) -> None:
    """POST the Synthea transaction bundles from 20 concurrent clients (separate process)."""
    server = ensure_server(run)
    if run.source == "synth":
        citizens = run.plan.tx_bundles or SYNTH_TX_CITIZENS
        files = data.synth_bundle_files(data.synth(run.work / "synth-bundles", citizens, "bundles"))
        log(f"tx: healthbook synth, {citizens} citizens: {len(files)} bundles (facilities first)")
    else:
        files = data.bundle_files()
        if run.plan.tx_bundles:
            files = files[:: max(1, len(files) // run.plan.tx_bundles)][: run.plan.tx_bundles]
    log(f"tx: {len(files)} bundles, 20 clients, server --workers 2 (load {loadavg()})")
    assert server.proc is not None
    meter = run.meter(server=server.proc.pid, ours=os.getpid())
    t0 = time.perf_counter()
    out = env.run_child(
        [sys.executable, str(BENCH / "ingest_loadgen.py"), "--port", str(server.port), "--concurrency", "20",
         *map(str, files)],
        timeout=3600,
    )  # fmt: skip
    used = meter.stop()
    elapsed = time.perf_counter() - t0
    used["client"] = max(0.0, used.pop("ours") - used["server"])
    res = json.loads(out.strip().splitlines()[-1])
    if "error" in res:
        raise RuntimeError(f"tx load generator: {res['error']}")
    rate = res["resources"] / res["wall_s"]
    note = f"{res['resources']:,} resources in {res['requests']} bundles, {res['wall_s']:.1f} s"
    note += f", bundle p50 {res['p50_s']:.2f} s, max {res['max_s']:.2f} s"
    note += f"; {meter.summary(elapsed)} (over the whole load-generator run, {elapsed:.0f} s with warm-up)"
    if res["failed"]:
        note += f", {res['failed']} FAILED: {res['failures'][0][:200]}"
    run.main_loaded += res["resources"] + res["warmup_resources"]
    run.add(Figure("transaction bundles (20 clients, 2 workers)", rate, "resources/s", "≥ 2,500",
                   rate >= TARGETS["tx"] and not res["failed"], note))  # fmt: skip
    total = res["resources"] + res["warmup_resources"]
    server_cpu = used["server"] + used["postgres"]
    cpu_note = (
        f"{total:,} resources (warm-up included) over {server_cpu:.0f} CPU-s; 2 workers can use 2 cores"
    )
    run.add(Figure("  same, per CPU-second (server + PostgreSQL)", total / server_cpu, "resources/CPU-s",
                   "", None, cpu_note))  # fmt: skip


# ---- scenario 2: bulk import vs raw COPY -------------------------------------------------------


def import_source(run: Run) -> Path:
    """The NDJSON file of the import scenario: Synthea clones (or a synth population) plus the large patient."""
    path = run.work / "import.ndjson"
    if not path.exists():
        if run.source == "synth":
            wanted = (run.plan.import_limit or 100_000) * run.plan.import_clones
            citizens = data.synth_citizens(wanted)
            log(f"import: healthbook synth, {citizens} citizens")
            n = data.synth_ndjson(data.synth(run.work / "synth-ndjson", citizens, "ndjson"), path)
        else:
            n = data.write_ndjson(
                path, run.templates(), range(1, 1 + run.plan.import_clones), run.plan.import_limit
            )
        with path.open("ab") as out:
            for line in data.big_patient_lines():
                out.write(line + b"\n")
                n += 1
        log(f"wrote {n:,} NDJSON lines ({path.stat().st_size / 1e6:.0f} MB)")
    return path


def raw_copy(url: str, path: Path) -> tuple[int, float]:
    """COPY the same lines into a bare table raw(doc jsonb) with psycopg's cursor.copy; (rows, seconds)."""
    with psycopg.connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS raw")
        conn.execute("CREATE TABLE raw (doc jsonb)")
        conn.commit()
        rows = 0
        t0 = time.perf_counter()
        with path.open("rb") as handle, conn.cursor() as cur, cur.copy("COPY raw (doc) FROM STDIN") as copy:
            for line in handle:
                text = line.strip()
                if text:
                    copy.write_row((text.decode(),))
                    rows += 1
        conn.commit()
        seconds = time.perf_counter() - t0
        conn.execute("DROP TABLE raw")
        conn.commit()
    return rows, seconds


def scenario_import(run: Run, *, measured: bool = True) -> None:
    """import_lines over ≥ 100k resources, then a raw COPY of the same lines, and their ratio."""
    path = import_source(run)
    checkpoint(run.pg_url)
    log(f"import: import_lines of {path.name} (load {loadavg()})")
    lines, errors, seconds, meter = import_file(run, run.pg_url, path)
    usage = meter.summary(seconds)
    rate = lines / seconds
    run.main_loaded += lines - errors
    if not measured:
        log(f"  setup import: {lines:,} lines in {seconds:.1f} s ({rate:,.0f}/s)")
        return
    note = f"{lines:,} lines, {errors} invalid, {seconds:.1f} s, {workers_text(run)}; {usage}"
    run.add(Figure("bulk import (import_lines, validated + indexed)", rate, "resources/s", "≥ 15,000",
                   rate >= TARGETS["import"] and errors == 0, note))  # fmt: skip
    per_cpu = lines / meter.cpu_seconds()
    run.add(Figure("  same, per CPU-second (importer + PostgreSQL)", per_cpu, "resources/CPU-s", "", None,
                   "about what one core would sustain with the machine to itself"))  # fmt: skip
    checkpoint(run.pg_url)
    meter = run.meter(client=os.getpid())
    rows, raw_seconds = raw_copy(run.pg_url, path)
    meter.stop()
    raw_rate = rows / raw_seconds
    run.add(Figure("raw COPY into raw(doc jsonb) (baseline)", raw_rate, "resources/s", "", None,
                   f"{rows:,} rows, {raw_seconds:.1f} s; {meter.summary(raw_seconds)}"))  # fmt: skip
    ratio = rate / raw_rate
    run.add(
        Figure("ratio import / raw COPY", ratio, "", "≥ 0.15 (heading for 0.3)", ratio >= TARGETS["ratio"])
    )


# ---- scenario 3: $export -----------------------------------------------------------------------


def http_get(
    conn: http.client.HTTPConnection, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One GET on a keep-alive connection."""
    conn.request("GET", path, headers={"Accept": "application/fhir+json", **(headers or {})})
    resp = conn.getresponse()
    body = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def ensure_main_data(run: Run) -> None:
    """Export and $everything need data: load the import set unmeasured if the import scenario did not."""
    if run.main_loaded == 0:
        scenario_import(run, measured=False)


def scenario_export(run: Run) -> None:
    """System-level $export over HTTP: kick-off to completed manifest, polled every 50 ms."""
    ensure_main_data(run)
    server = ensure_server(run)
    expected = count_resources(run.pg_url)
    checkpoint(run.pg_url)
    conn = http.client.HTTPConnection(env.HOST, server.port, timeout=600)
    try:
        log(f"export: system $export of {expected:,} resources (load {loadavg()})")
        assert server.proc is not None
        meter = run.meter(server=server.proc.pid)
        t0 = time.perf_counter()
        status, headers, body = http_get(conn, "/fhir/$export", {"Prefer": "respond-async"})
        if status != 202:
            raise RuntimeError(f"$export kick-off answered {status}: {body[:300]!r}")
        location = headers["content-location"]
        poll = location[location.index("/fhir/") :]
        polls = 0
        while True:
            status, headers, body = http_get(conn, poll)
            polls += 1
            if status == 200:
                break
            if status != 202:
                raise RuntimeError(f"$export status answered {status}: {body[:300]!r}")
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
        meter.stop()
    finally:
        conn.close()
    manifest = json.loads(body)
    exported = sum(int(o["count"]) for o in manifest["output"])
    job_dir = run.work / "bulk-data" / poll.rsplit("/", 1)[1]
    files = list(job_dir.glob("*.ndjson"))
    size = sum(f.stat().st_size for f in files)
    rate = exported / seconds
    note = f"{exported:,} resources (database {expected:,}), {len(manifest['output'])} files"
    note += f", {size / 1e6:.0f} MB"
    note += f", {seconds:.2f} s, {polls} polls; {meter.summary(seconds)}"
    run.add(Figure("$export (system, kick-off to manifest)", rate, "resources/s", "≥ 50,000",
                   rate >= TARGETS["export"] and exported == expected, note))  # fmt: skip
    shutil.rmtree(job_dir, ignore_errors=True)


# ---- scenario 4: $everything -------------------------------------------------------------------


def scenario_everything(run: Run) -> None:
    """Patient/$everything of the 1,000-resource patient, sequential calls on one keep-alive connection."""
    ensure_main_data(run)
    server = ensure_server(run)
    path = f"/fhir/Patient/{data.BIG_PATIENT}/$everything"
    conn = http.client.HTTPConnection(env.HOST, server.port, timeout=120)
    times: list[float] = []
    try:
        for _ in range(3):  # warm-up
            status, _, body = http_get(conn, path)
            if status != 200:
                raise RuntimeError(f"$everything answered {status}: {body[:300]!r}")
        doc = json.loads(body)
        log(f"everything: {run.plan.everything_calls} calls, total {doc.get('total')} (load {loadavg()})")
        assert server.proc is not None
        meter = run.meter(server=server.proc.pid)
        t_all = time.perf_counter()
        for _ in range(run.plan.everything_calls):
            t0 = time.perf_counter()
            status, _, body = http_get(conn, path)
            times.append(time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"$everything answered {status}")
        meter.stop()
        elapsed = time.perf_counter() - t_all
    finally:
        conn.close()
    times.sort()
    p50 = times[len(times) // 2] * 1000
    p99 = times[min(len(times) - 1, math.ceil(len(times) * 0.99) - 1)] * 1000
    entries = len(doc.get("entry", []))
    note = f"{len(times)} calls, {entries} entries per response ({len(body) / 1e6:.1f} MB)"
    note += f", total {doc.get('total')}; {meter.summary(elapsed)}"
    run.add(
        Figure(
            "$everything p50 (1,000-resource patient)",
            p50,
            "ms",
            "< 30 ms",
            p50 < TARGETS["everything_p50_ms"],
            note,
        )
    )
    run.add(Figure("$everything p99", p99, "ms", "", None))


# ---- scenario 5: ingest rate against database size ---------------------------------------------


def batch_file(run: Run, clone: int, size: int) -> Path:
    """The fixed batch: the first `size` lines of one clone (same content, fresh ids)."""
    path = run.work / f"batch-{clone:x}.ndjson"
    data.write_ndjson(path, run.templates(), range(clone, clone + 1), size)
    return path


def scenario_scale(run: Run, fill_mode: str) -> None:
    """Import the same-size batch at each database size; fill between sizes (SQL clone or import)."""
    url = run.create_db("bench_scale")
    services(url).fhir.db.dispose()  # migrate
    rates: dict[int, float] = {}
    cpu_rates: dict[int, float] = {}
    source_clone = 0xA0000000
    next_copy = fill.FIRST_CLONE
    for n, size in enumerate(run.plan.scale_sizes):
        have = count_resources(url)
        if size > have:
            log(f"scale: filling {have:,} -> {size:,} resources ({fill_mode}) (load {loadavg()})")
            t0 = time.perf_counter()
            if fill_mode == "sql":
                next_copy += fill.sql_clone(
                    url,
                    data.clone_prefix(source_clone).decode(),
                    size,
                    first_clone=next_copy,
                    on_progress=log,
                )
            else:
                fill_by_import(run, url, size)
            seconds = time.perf_counter() - t0
            now = count_resources(url)
            run.notes.append(
                f"Filling the scaling database from {have:,} to {now:,} resources ({fill_mode}) took "
                f"{seconds / 60:.1f} min ({(now - have) / seconds:,.0f} resources/s)."
            )
            log(f"  filled to {now:,} in {seconds:.0f} s")
        fill.analyze(url)
        checkpoint(url)
        clone = source_clone + n
        path = batch_file(run, clone, run.plan.scale_batch)
        have = count_resources(url)
        log(
            f"scale: importing a {run.plan.scale_batch:,}-resource batch at {have:,} stored"
            f" (load {loadavg()})"
        )
        lines, errors, seconds, meter = import_file(run, url, path)
        usage = meter.summary(seconds)
        rates[size] = lines / seconds
        cpu_rates[size] = lines / meter.cpu_seconds()
        path.unlink()
        base = rates[run.plan.scale_sizes[0]]
        drop = 1 - rates[size] / base
        ok = None if n == 0 else drop <= TARGETS["scale_drop"]
        note = f"{lines:,} lines, {errors} invalid, {seconds:.1f} s, {have:,} stored before; {usage}"
        if n:
            note += f", change {-drop:+.0%} vs {run.plan.scale_sizes[0]:,}"
        run.add(Figure(f"import rate at {size:,} stored", rates[size], "resources/s",
                       "" if n == 0 else "≤ 20% below size 0", ok, note))  # fmt: skip
        first = run.plan.scale_sizes[0]
        cpu_drop = 1 - cpu_rates[size] / cpu_rates[first]
        cpu_note = "importer + PostgreSQL CPU, independent of other work on the machine"
        if n:
            cpu_note += f"; change {-cpu_drop:+.0%} vs {first:,}"
        run.add(Figure(f"  same, per CPU-second at {size:,} stored", cpu_rates[size], "resources/CPU-s",
                       "" if n == 0 else "≤ 20% below size 0",
                       None if n == 0 else cpu_drop <= TARGETS["scale_drop"], cpu_note))  # fmt: skip


def fill_by_import(run: Run, url: str, size: int) -> None:
    """Fill with the bulk import itself (honest but slow: about 17 min per million on 2 cores)."""
    clone = 0x10000000
    while count_resources(url) < size:
        need = size - count_resources(url)
        path = run.work / "fill.ndjson"
        data.write_ndjson(path, run.templates(), range(clone, clone + 1), min(need, len(run.templates())))
        lines, _, seconds, _ = import_file(run, url, path)
        log(f"  fill: +{lines:,} in {seconds:.0f} s")
        path.unlink()
        clone += 1


# ---- profile -----------------------------------------------------------------------------------


def scenario_profile(run: Run) -> None:
    """cProfile of import_lines on a fresh database: top functions by own and cumulative time."""
    url = run.create_db("bench_profile")
    services(url).fhir.db.dispose()
    path = batch_file(run, 0xB0000000, run.plan.profile_lines)
    prof = cProfile.Profile()
    log(f"profile: import_lines of {run.plan.profile_lines:,} lines under cProfile (load {loadavg()})")
    lines, _, seconds, _ = import_file(run, url, path, prof)
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    text = out.getvalue().replace(str(Path(sys.prefix)) + "/lib/python3.11/site-packages/", "")
    text = text.replace(str(BENCH.parent) + "/", "")
    run.profile_text = _by_file(stats) + "\n" + text
    log(f"  {lines:,} lines in {seconds:.1f} s under cProfile")
    print(run.profile_text)  # noqa: T201


def _by_file(stats: pstats.Stats) -> str:
    """Own time summed per source file (the shape of the cost)."""
    per: dict[str, float] = {}
    total = 0.0
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    for (filename, _, _), (_, _, tottime, _, _) in raw.items():
        name = filename.replace(str(BENCH.parent) + "/", "")
        name = name.split("site-packages/")[-1].split("/")[0] if "site-packages/" in name else name
        name = "(built-in functions: orjson, re, dict, list, ...)" if name == "~" else name
        per[name] = per.get(name, 0.0) + tottime
        total += tottime
    lines = ["own time by file:"]
    for name, t in sorted(per.items(), key=lambda kv: -kv[1])[:20]:
        lines.append(f"  {t:7.2f} s {t / total:6.1%}  {name}")
    return "\n".join(lines)


# ---- report ------------------------------------------------------------------------------------


def table(run: Run) -> str:
    """The figures as a Markdown table."""
    rows = ["| figure | value | target | verdict | details |", "| --- | ---: | --- | --- | --- |"]
    for f in run.figures:
        value = "—" if f.value is None else f"{_fmt(f.value)} {f.unit}".strip()
        verdict = "" if f.ok is None else ("met" if f.ok else "**missed**")
        rows.append(f"| {f.name} | {value} | {f.target} | {verdict} | {f.note} |")
    return "\n".join(rows)


def section(run: Run, info: dict[str, str], started: str, wall: float, argv: list[str]) -> str:
    """The Ingest section of bench/RESULTS.md."""
    settings = ", ".join(f"{k}={v}" for k, v in PG_SETTINGS.items())
    parts = [
        SYNTH_SECTION if run.source == "synth" else SECTION,
        "",
        f"Run {started}, `{' '.join(['.venv/bin/python bench/ingest.py', *argv])}`,"
        f" {wall / 60:.1f} min in all"
        " (regenerate with `--markdown bench/RESULTS.md`).",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} memory, Linux {info['kernel']}, "
        f"Python {info['python']}, PostgreSQL {info['postgresql']} (TempPostgres, fsync and"
        " synchronous_commit on, "
        f"{settings}). Load average at start {info['load_start']}, at end {info['load_end']}."
        f" Code: commit {info['commit']}.",
        "",
        table(run),
        "",
    ]
    if run.notes:
        parts += [*(f"- {n}" for n in run.notes), ""]
    if run.profile_text:
        parts += [
            "Profile of the bulk import (cProfile, own time first):",
            "",
            "```text",
            run.profile_text.strip(),
            "```",
            "",
        ]
    return "\n".join(parts)


# ---- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="Smaller sizes (a few minutes).")
    ap.add_argument("--smoke", action="store_true", help="Tiny sizes: only checks that everything works.")
    ap.add_argument(
        "--scenario", default=",".join(SCENARIOS), help=f"Comma-separated subset of {','.join(SCENARIOS)}."
    )
    ap.add_argument("--markdown", type=Path, help="Write the results into this file's Ingest section.")
    ap.add_argument("--sizes", help="Database sizes of the scale scenario, e.g. 0,1000000,5000000.")
    ap.add_argument("--batch", type=int, help="Resources per measured batch of the scale scenario.")
    ap.add_argument("--fill", choices=("sql", "import"), default="sql",
                    help="How the scale scenario fills the database between sizes.")  # fmt: skip
    ap.add_argument("--data", choices=("synthea", "synth"), default="synthea",
                    help="Data of the tx and import scenarios: the Synthea bundles and their clones (default, "
                    "comparable with earlier runs) or `healthbook synth` output.")  # fmt: skip
    ap.add_argument("--import-workers", type=int, default=-1,
                    help="Processes that prepare NDJSON lines ahead of the writer (-1: one per CPU, the "
                    "product default; 0: none).")  # fmt: skip
    ap.add_argument("--wait-quiet", type=float, default=0.0,
                    help="Wait up to this long (s) for the 1-min load average to drop below 1.")  # fmt: skip
    return ap.parse_args(argv)


def wait_quiet(limit: float) -> None:
    """Give other work on the machine a chance to finish before measuring."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and float(loadavg().split()[0]) >= 1.0:
        time.sleep(10)


def main(argv: list[str]) -> int:
    """Run the selected scenarios, print the table, optionally record it."""
    args = parse_args(argv)
    chosen = [s.strip() for s in args.scenario.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(unknown)}")
    plan = SMOKE if args.smoke else QUICK if args.quick else FULL
    if args.sizes:
        plan = dataclasses.replace(plan, scale_sizes=tuple(int(s) for s in args.sizes.split(",")))
    if args.batch:
        plan = dataclasses.replace(plan, scale_batch=args.batch, profile_lines=args.batch)
    env.install_signal_handlers()
    from healthbook.testing.postgres import TempPostgres

    wait_quiet(args.wait_quiet)
    started = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    load_start = loadavg()
    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="healthbook-ingest-"))
    pg: TempPostgres | None = None
    run: Run | None = None
    try:
        pg = TempPostgres(PG_SETTINGS)
        url = pg.start()
        log(f"PostgreSQL on 127.0.0.1:{pg.port}; work dir {work}")
        services(url).fhir.db.dispose()  # healthbook db upgrade
        pg_pid = int((pg.data / "postmaster.pid").read_text().split()[0])
        run = Run(
            plan, work, url, pg.admin_url, pg.create_database, pg_pid, source=args.data,
            import_workers=args.import_workers,
        )  # fmt: skip
        info = env.machine(url)
        for name in chosen:
            if name == "tx":
                scenario_tx(run)
            elif name == "import":
                scenario_import(run)
            elif name == "export":
                scenario_export(run)
            elif name == "everything":
                scenario_everything(run)
            elif name == "scale":
                if run.server is not None:
                    run.server.stop()
                    run.server = None
                scenario_scale(run, args.fill)
            elif name == "profile":
                scenario_profile(run)
        if "scale" in chosen and max(plan.scale_sizes) < 5_000_000:
            run.notes.append(
                "5,000,000 stored was not measured in this run (the fill to 5M takes about 20 more minutes"
                " on 2 cores); `--sizes 0,1000000,5000000` runs it."
            )
        info["load_start"], info["load_end"] = load_start, loadavg()
        wall = time.perf_counter() - t_start
        print("\n" + table(run) + "\n")  # noqa: T201
        for n in run.notes:
            print(f"- {n}")  # noqa: T201
        if args.markdown:
            title = SYNTH_SECTION if run.source == "synth" else SECTION
            env.write_section(args.markdown, title, section(run, info, started, wall, argv))
            log(f"wrote the Ingest section of {args.markdown}")
        return 0
    except (KeyboardInterrupt, env.Interrupted) as exc:
        log(f"interrupted ({exc or 'Ctrl-C'}): cleaning up")
        return 130
    finally:
        if run is not None and run.server is not None:
            if run.server.proc is not None and run.server.proc.poll() is not None:
                log(f"server log: {run.server.log_tail()}")
            run.server.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
