"""XML130 import benchmark: episodes/s on PostgreSQL, as a ratio to a raw NDJSON import of the same resources.

Run `.venv/bin/python bench/xml130.py` (about 10 minutes on 2 cores; `--citizens N` sets the size, `--quick`
makes it small) and add `--markdown bench/RESULTS.md` to record the run in its own section. Steps, all on a
throw-away PostgreSQL (TempPostgres, as bench/ingest.py) and through the CLI, each in a fresh database:

1. `healthbook synth --format xml130` of the population (one GIAMDINHHS file per facility and block);
2. `healthbook import xml130` of every file (one process; then `--jobs 2` into a second database);
3. the same XML files again (nothing changed: the idempotent path);
4. the baseline: the resources the XML import stored, exported with `healthbook export ndjson` and loaded
   with `healthbook import ndjson` into a third database.

CPU seconds of the importer (its process tree) and of PostgreSQL are measured beside the wall clock, so that
runs on a busy machine can still be compared per CPU-second.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import ingest_cpu as cpu  # noqa: E402
import ingest_env as env  # noqa: E402

SECTION = "## XML130 import (bench/xml130.py)"
TARGET_EPS = 300.0  # episodes per second on this machine (issue 6)
PG_SETTINGS = {"shared_buffers": "1GB", "max_wal_size": "4GB", "checkpoint_timeout": "30min"}
HEALTHBOOK = [str(env.VENV_BIN / "python"), "-m", "healthbook"]


def log(msg: str) -> None:
    """Progress on stderr with a timestamp."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)  # noqa: T201


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Step:
    """One measured command: wall seconds, CPU seconds of the command and of PostgreSQL, machine share."""

    name: str
    wall: float
    cpu_client: float
    cpu_postgres: float
    machine: float
    load: str


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(name: str, args: list[str], *, db_url: str, pg_pid: int, timeout: float = 7200) -> Step:
    """Run a healthbook command against a database and meter it."""
    environ = {**os.environ, "HEALTHBOOK_DATABASE_URL": db_url, "PYTHONPATH": str(BENCH.parent / "src")}
    before_child, before_pg = _children_cpu(), cpu.tree_seconds(pg_pid)
    before_machine, started = cpu.machine_busy_seconds(), time.perf_counter()
    proc = subprocess.Popen([*HEALTHBOOK, *args], env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    except BaseException:
        env.stop_process(proc, timeout=5)
        raise
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):  # 1: some episodes rejected, reported in the output
        raise RuntimeError(f"{' '.join(args[:2])} exited with {proc.returncode}: {out.decode()[-3000:]}")
    step = Step(name, wall, _children_cpu() - before_child, cpu.tree_seconds(pg_pid) - before_pg,
                cpu.machine_busy_seconds() - before_machine, loadavg())  # fmt: skip
    log(f"{name}: {wall:.1f} s wall, CPU {step.cpu_client:.1f} s + PostgreSQL {step.cpu_postgres:.1f} s "
        f"(load {step.load})")  # fmt: skip
    return step


def count(url: str, sql: str) -> int:
    """One integer from the database."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def report_counts(path: Path) -> tuple[int, int, int]:
    """(episodes, stored, rejected) from the OperationOutcome of `healthbook import xml130 --report`."""
    doc = json.loads(path.read_text())
    episodes = stored = rejected = 0
    for issue in doc["issue"]:
        text = issue.get("diagnostics", "")
        if issue["severity"] == "information" and " episodes (MACSKCB " in text:
            n = int(text.split(": ", 1)[1].split(" episodes", 1)[0])
            parts = dict(
                (p.strip().split(" ", 1)[1], int(p.strip().split(" ", 1)[0]))
                for p in text.split("): ", 1)[1].split(";")[0].split(",")
            )
            episodes += n
            rejected += parts.get("rejected", 0)
            stored += n - parts.get("rejected", 0)
    return episodes, stored, rejected


def rate(n: float, seconds: float) -> float:
    """n per second."""
    return n / seconds if seconds > 0 else 0.0


def main(argv: list[str]) -> int:
    """Run the benchmark; print the figures; optionally record them in RESULTS.md."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--citizens", type=int, default=300, help="Synthetic citizens (10 years of care each).")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--quick", action="store_true", help="60 citizens, 3 years: a smoke run of every step.")
    ap.add_argument("--markdown", type=Path, help="Write the results into this file's XML130 section.")
    args = ap.parse_args(argv)
    citizens, years = (60, 3) if args.quick else (args.citizens, 10)
    env.install_signal_handlers()
    from healthbook.testing.postgres import TempPostgres

    started_at = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    load_start = loadavg()
    work = Path(tempfile.mkdtemp(prefix="healthbook-xml130-"))
    pg: TempPostgres | None = None
    try:
        pg = TempPostgres(PG_SETTINGS)
        url = pg.start()
        pg_pid = int((pg.data / "postmaster.pid").read_text().split()[0])
        info = env.machine(url)
        dbs = {name: pg.create_database(name) for name in ("xml_one", "xml_two", "ndjson")}
        for db in dbs.values():
            subprocess.run([*HEALTHBOOK, "db", "upgrade"], env={**os.environ, "HEALTHBOOK_DATABASE_URL": db,
                           "PYTHONPATH": str(BENCH.parent / "src")}, check=True, capture_output=True)  # fmt: skip
        xml_dir = work / "xml"
        log(f"synth: {citizens} citizens, {years} years, seed {args.seed} -> {xml_dir}")
        synth = measure("synth --format xml130", ["synth", "-n", str(citizens), "-s", str(args.seed),
                        "--years", str(years), "-o", str(xml_dir), "-f", "xml130"], db_url=url, pg_pid=pg_pid)  # fmt: skip
        files = sorted(str(p) for p in xml_dir.rglob("*.xml"))
        size = sum(os.path.getsize(f) for f in files)
        rep = work / "report.json"
        one = measure("import xml130", ["import", "xml130", "--report", str(rep), "--show", "0", *files],
                      db_url=dbs["xml_one"], pg_pid=pg_pid)  # fmt: skip
        episodes, stored, rejected = report_counts(rep)
        resources = count(dbs["xml_one"], "SELECT count(*) FROM resource")
        versions = count(dbs["xml_one"], "SELECT count(*) FROM resource_version")
        again = measure("import xml130 (same files again)", ["import", "xml130", "--report", str(rep), "--show",
                        "0", *files], db_url=dbs["xml_one"], pg_pid=pg_pid)  # fmt: skip
        unchanged_versions = count(dbs["xml_one"], "SELECT count(*) FROM resource_version") == versions
        two = measure("import xml130 --jobs 2", ["import", "xml130", "--jobs", "2", "--report", str(rep),
                      "--show", "0", *files], db_url=dbs["xml_two"], pg_pid=pg_pid)  # fmt: skip
        nd_dir = work / "ndjson"
        measure("export ndjson (baseline input)", ["export", "ndjson", str(nd_dir)], db_url=dbs["xml_one"],
                pg_pid=pg_pid)  # fmt: skip
        nd_files = sorted(str(p) for p in nd_dir.glob("*.ndjson"))
        lines = sum(sum(1 for _ in open(f, "rb")) for f in nd_files)
        base = measure("import ndjson (baseline)", ["import", "ndjson", "--errors", str(work / "err.ndjson"),
                       *nd_files], db_url=dbs["ndjson"], pg_pid=pg_pid)  # fmt: skip
        base_resources = count(dbs["ndjson"], "SELECT count(*) FROM resource")
        figures = _figures(citizens, years, len(files), size, episodes, stored, rejected, resources,
                           unchanged_versions, synth, one, again, two, base, lines, base_resources)  # fmt: skip
        info["load_start"], info["load_end"] = load_start, loadavg()
        text = _section(info, started_at, argv, figures)
        print("\n" + text)  # noqa: T201
        if args.markdown:
            env.write_section(args.markdown, SECTION, text)
            log(f"wrote the XML130 section of {args.markdown}")
        return 0
    except (KeyboardInterrupt, env.Interrupted) as exc:
        log(f"interrupted ({exc or 'Ctrl-C'}): cleaning up")
        return 130
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)


def _figures(
    citizens: int, years: int, files: int, size: int, episodes: int, stored: int, rejected: int, resources: int,
    unchanged: bool, synth: Step, one: Step, again: Step, two: Step, base: Step, lines: int, base_resources: int,
) -> list[tuple[str, str, str, str, str]]:  # fmt: skip
    """(figure, value, target, verdict, details) rows."""
    eps = rate(stored, one.wall)
    res = rate(resources, one.wall)
    base_res = rate(base_resources, base.wall)
    cpu_one = one.cpu_client + one.cpu_postgres
    cpu_base = base.cpu_client + base.cpu_postgres
    cores = os.cpu_count() or 1

    def busy(s: Step) -> str:
        ours = s.cpu_client + s.cpu_postgres
        return (f"CPU: importer {s.cpu_client:.1f} s, postgres {s.cpu_postgres:.1f} s; machine busy "
                f"{s.machine / (s.wall * cores):.0%}, other work {max(0.0, s.machine - ours) / (s.wall * cores):.0%}; "
                f"load {s.load}")  # fmt: skip

    def verdict(value: float) -> str:
        return "met" if value >= TARGET_EPS else "**missed**"

    eps_two = rate(stored, two.wall)
    return [
        ("input", f"{episodes:,} episodes", "", "", f"{citizens:,} citizens × {years} years, {files:,} files, "
         f"{size / 1e6:.1f} MB; generated in {synth.wall:.1f} s; {stored:,} stored, {rejected:,} rejected"),
        ("import xml130, 1 process", f"{eps:,.0f} episodes/s", f"≥ {TARGET_EPS:.0f}", verdict(eps),
         f"{one.wall:.1f} s; {resources:,} resources ({res:,.0f} resources/s, {resources / max(stored, 1):.1f} "
         f"per episode); {busy(one)}"),
        ("  same, per CPU-second (importer + PostgreSQL)", f"{rate(stored, cpu_one):,.0f} episodes/CPU-s", "", "",
         f"{1000 * cpu_one / max(stored, 1):.1f} ms of CPU per episode, {1000 * cpu_one / max(resources, 1):.2f} per resource"),
        ("import xml130 --jobs 2", f"{eps_two:,.0f} episodes/s", f"≥ {TARGET_EPS:.0f}", verdict(eps_two),
         f"{two.wall:.1f} s; {busy(two)}"),
        ("re-import of the same files", f"{rate(stored, again.wall):,.0f} episodes/s", "", "",
         f"{again.wall:.1f} s; no new version: {'yes' if unchanged else 'NO'}; {busy(again)}"),
        ("baseline: import ndjson of the same resources", f"{base_res:,.0f} resources/s", "", "",
         f"{lines:,} lines, {base_resources:,} stored, {base.wall:.1f} s; {busy(base)}"),
        ("ratio xml130 / ndjson (resources/s)", f"{rate(res, base_res):.2f}", "", "", "wall clock, 1 process each"),
        ("  same, per CPU-second", f"{rate(resources / cpu_one, base_resources / cpu_base):.2f}", "", "",
         f"{1000 * cpu_one / max(resources, 1):.2f} vs {1000 * cpu_base / max(base_resources, 1):.2f} ms of CPU "
         "per resource"),
    ]  # fmt: skip


def _section(
    info: dict[str, str], started: str, argv: list[str], figures: list[tuple[str, str, str, str, str]]
) -> str:
    rows = "\n".join(f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in figures)
    return (
        f"{SECTION}\n\nRun {started}, `.venv/bin/python bench/xml130.py {' '.join(argv)}`, code at {info['commit']}.\n\n"
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} memory, Linux {info['kernel']}, "
        f"Python {info['python']}, PostgreSQL {info['postgresql']} (TempPostgres, fsync and synchronous_commit on, "
        f"shared_buffers=1GB). Load average at start {info['load_start']}, at end {info['load_end']}.\n\n"
        "| figure | value | target | verdict | details |\n| --- | ---: | --- | --- | --- |\n" + rows + "\n"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
