"""Search benchmark: p50/p99 of ten FHIR search shapes over HTTP on PostgreSQL at 100k and 1M resources.

Run `.venv/bin/python bench/search.py` (`--quick` for 10k/100k, `--markdown bench/RESULTS.md` to record
the run, `--help` for the rest). It starts a throw-away PostgreSQL and `healthbook serve` on 127.0.0.1
only and stops both on exit, errors and Ctrl-C included.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from search_data import FORMAT, count_lines, ensure_dataset, iter_docs
from search_explain import explain, literal, statements
from search_pg import PG_SETTINGS, BenchPostgres, Processes, import_files, loadavg, read_meta, server
from search_report import SECTION, SYNTH_SECTION, human, section, text_table, write_section
from search_report import headers as table_headers
from search_report import rows as table_rows
from search_shapes import SHAPES, Client, Pools, Shape, ShapeResult, collect, draw
from search_synth import SYNTH_FORMAT, ensure_synth_dataset

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"


def log(msg: str) -> None:
    """Progress on stderr, time-stamped."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def say(text: str = "") -> None:
    """One line of the figures on stdout."""
    sys.stdout.write(text + "\n")


def machine() -> dict[str, str]:
    """nproc, CPU model, memory, Python and OS."""
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError), open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    return {
        "nproc": str(os.cpu_count()),
        "CPU": model,
        "memory": mem,
        "Python": platform.python_version(),
        "OS": platform.platform(),
    }


def measure_shape(
    client: Client, pg: BenchPostgres, shape: Shape, pools: Pools, args: argparse.Namespace, suffix: str = ""
) -> ShapeResult:
    """Warm up, then time args.queries requests of one shape (bounded by args.shape_seconds)."""
    warm_until = time.monotonic() + args.shape_seconds / 4
    for path in draw(shape, pools, args.warmup, args.seed + 1):
        client.get(path + suffix)
        if time.monotonic() > warm_until:
            break
    pg.execute("SELECT pg_stat_statements_reset()")
    result = ShapeResult(shape.name + (f" +{suffix.lstrip('&')}" if suffix else ""), [])
    deadline = time.monotonic() + args.shape_seconds
    for path in draw(shape, pools, args.queries, args.seed):
        result.samples.append(client.get(path + suffix))
        if time.monotonic() > deadline:
            log(f"  {shape.name}: time budget of {args.shape_seconds} s reached after {len(result.samples)}")
            break
    stats = pg.execute(
        "SELECT total_exec_time, calls, query FROM pg_stat_statements "
        "WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC"
    )
    result.matches = matches(client, result)
    n = max(1, len(result.samples))
    result.db_ms_per_request = sum(float(r[0]) for r in stats) / n
    result.top_statements = [(float(r[0]) / max(1, int(r[1])), int(r[1]), str(r[2])) for r in stats[:3]]
    log(
        f"  {result.name:<40} p50 {result.p(50):8.1f} ms  p99 {result.p(99):8.1f} ms  "
        f"db {result.db_ms_per_request:7.1f} ms/req  errors {result.errors}  (load {loadavg()})"
    )
    return result


def matches(client: Client, result: ShapeResult, n: int = 25) -> list[int]:
    """Untimed: how many resources the first n distinct requests match (`_summary=count`)."""
    found = []
    for path in list(dict.fromkeys(s.path for s in result.samples if s.status == 200))[:n]:
        sample = client.get(path + ("&" if "?" in path else "?") + "_summary=count")
        if sample.total is not None:
            found.append(sample.total)
    return found


def prepare(
    pg_box: list[BenchPostgres], procs: Processes, files: list[Path], snapshot: Path, fresh: bool,
    args: argparse.Namespace, logdir: Path, first: bool,
) -> str:  # fmt: skip
    """Bring the database to this size: from a snapshot, or by importing files; returns a load note."""
    meta_path = snapshot.with_name(snapshot.name + ".json")
    if not fresh and snapshot.exists() and meta_path.exists():
        meta = read_meta(meta_path)
        if pg_box:
            pg_box.pop().stop()
        pg = BenchPostgres()
        pg_box.append(pg)
        log(f"starting PostgreSQL from snapshot {snapshot}")
        migrated = pg.start_from(snapshot)
        log(f"  `healthbook db upgrade` and VACUUM (ANALYZE) on the snapshot took {migrated:.0f} s")
        return (
            f"reused database snapshot (`healthbook db upgrade` and VACUUM (ANALYZE) on it: "
            f"{migrated:.0f} s); {meta.get('note', '?')}"
        )
    if first:
        pg = BenchPostgres()
        pg_box.append(pg)
        pg.start_fresh()
    pg = pg_box[0]
    lines = count_lines(files)
    log(f"importing {lines:,} resources from {len(files)} files with {args.jobs} processes")
    seconds = import_files(procs, pg.url, files, args.jobs, logdir, log)
    log(f"  imported in {seconds:.0f} s ({lines / seconds:,.0f} resources/s); VACUUM ANALYZE")
    start = time.perf_counter()
    pg.execute("VACUUM (ANALYZE)")
    vac = time.perf_counter() - start
    note = (
        f"loaded {lines:,} new resources with `healthbook import ndjson` ({args.jobs} processes) "
        f"in {seconds:.0f} s "
        f"({lines / seconds:,.0f} resources/s, load average {loadavg()} at the end), "
        f"then `VACUUM (ANALYZE)` in {vac:.0f} s ({dt.date.today().isoformat()})"
    )
    if args.save_db:
        log(f"saving a snapshot of the database to {snapshot}")
        pg.save(snapshot)
        meta_path.write_text(json.dumps({"note": note}))
    return note


def run(args: argparse.Namespace, procs: Processes, pg_box: list[BenchPostgres]) -> dict[str, Any]:
    """The whole benchmark; returns the run record."""
    sizes = [10_000, 100_000] if args.quick else [100_000, 1_000_000]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logdir = OUT / "search" / stamp
    logdir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "command": "python bench/search.py " + " ".join(sys.argv[1:]),
        "started": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "pg_settings": {k: v for k, v in PG_SETTINGS.items() if not k.startswith("pg_stat")},
        "workers": args.workers,
        "queries": args.queries,
        "warmup": args.warmup,
        "sizes": [],
    }
    log(f"load average at start: {loadavg()}")
    cache = OUT / "search-data"
    if args.data == "synth":
        per_size, citizens = ensure_synth_dataset(cache, args.seed, sizes, log)
        keys = [f"synth{SYNTH_FORMAT}-seed{args.seed}-n{n}" for n in citizens]
        record["data"] = (
            f"`healthbook synth --seed {args.seed}` populations of {' and '.join(f'{n:,}' for n in citizens)} "
            "citizens (Vietnamese names, national facility set, ten years of care), cached as NDJSON in "
            "bench/out/search-data/; the large size loads only the lines the small set lacks, so its "
            "database is a superset of the small one."
        )
    else:
        per_size = ensure_dataset(cache, args.seed, sizes, log)
        keys = [f"format{FORMAT}-seed{args.seed}-{files[-1].stem.split('-')[-1]}" for files in per_size]
        record["data"] = (
            "the 100 Synthea patients of /work/shared/test-material/synthea-100 cloned patient by patient "
            "with fresh ids (references rewritten), each clone with its dates shifted by a seeded random "
            "±1200 days, a new "
            "family/given name (Zipf-weighted over the 105 Synthea family names, plus digits) and Observation "
            "values scaled by 0.85–1.15; the 203 Organizations and 203 Practitioners are shared; "
            f"cached as NDJSON in bench/out/search-data/format{FORMAT}-seed{args.seed}/; the large set is a "
            "superset of the small one. (The Synthea clone, the default, keeps the figures comparable with "
            "the earlier runs of this benchmark; `--data synth` loads `healthbook synth` output instead.)"
        )
    log("drawing parameter values from the small set")
    pools = collect(iter_docs(per_size[0]))
    total = 0
    for i, (target, files) in enumerate(zip(sizes, per_size, strict=True)):
        total += count_lines(files)
        snapshot = OUT / "search-db" / keys[i]
        before = loadavg()
        note = prepare(pg_box, procs, files, snapshot, args.fresh_db, args, logdir, first=i == 0)
        pg = pg_box[0]
        if i == 0:
            record["machine"]["PostgreSQL"] = pg.version()
        size: dict[str, Any] = {
            "target": target,
            "resources": total,
            "load_note": note,
            "db_bytes": pg.database_bytes(),
            "loadavg_before": before,
            "shapes": [],
            "variants": [],
        }
        log(f"measuring at {human(target)} ({total:,} resources, load {loadavg()})")
        size["loadavg_before"] = loadavg()
        with server(procs, pg.url, args.workers, logdir) as port:
            client = Client(port)
            try:
                for shape in SHAPES:
                    size["shapes"].append(measure_shape(client, pg, shape, pools, args).as_dict())
                if args.variants:
                    for shape in SHAPES:
                        if shape.name != "_total=accurate":
                            res = measure_shape(client, pg, shape, pools, args, "&_total=none")
                            size["variants"].append(res.as_dict())
            finally:
                client.close()
        size["loadavg_after"] = loadavg()
        record["sizes"].append(size)
        (logdir / "run.json").write_text(json.dumps(record, indent=1))
        if i == len(sizes) - 1:
            record["explain"] = explain_slowest(pg, size)
    record["finished"] = dt.datetime.now().strftime("%H:%M")
    (logdir / "run.json").write_text(json.dumps(record, indent=1))
    log(f"run record: {logdir / 'run.json'}")
    return record


def explain_slowest(pg: BenchPostgres, size: dict[str, Any]) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of the median request of the shape with the highest p50."""
    slowest = max(size["shapes"], key=lambda s: s["p50"])
    ok = sorted((s for s in slowest["samples"] if s[2] == 200), key=lambda s: s[1])
    path = ok[len(ok) // 2][0] if ok else slowest["samples"][0][0]
    log(f"EXPLAIN (ANALYZE, BUFFERS) of {slowest['name']}: {path}")
    out = []
    for label, stmt in statements(path):
        text = literal(stmt)
        # The server never prepares statements (custom plans), so the plan of the inlined SQL is its plan.
        out.append((label, text, explain(pg.url, text)))
    return {"shape": slowest["name"], "path": path, "statements": out}


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="10k and 100k resources instead of 100k and 1M")
    ap.add_argument(
        "--markdown",
        type=Path,
        help=f"write this section of the file: {SECTION} (--data synth: {SYNTH_SECTION})",
    )
    ap.add_argument("--queries", type=int, default=200, help="timed queries per shape")
    ap.add_argument("--warmup", type=int, default=20, help="untimed warm-up queries per shape")
    ap.add_argument("--shape-seconds", type=float, default=240, help="time budget (s) per shape")
    ap.add_argument("--workers", type=int, default=2, help="server worker processes")
    ap.add_argument("--jobs", type=int, default=2, help="parallel import processes")
    ap.add_argument("--seed", type=int, default=1, help="seed of the data and of the draws")
    ap.add_argument("--data", choices=("synthea", "synth"), default="synthea",
                    help="synthea: the Synthea clone (default, comparable with earlier runs); "
                    "synth: `healthbook synth` populations sized to each target")  # fmt: skip
    ap.add_argument("--fresh-db", action="store_true", help="import again even if a database snapshot exists")
    ap.add_argument("--no-save-db", dest="save_db", action="store_false", help="keep no database snapshot")
    ap.add_argument("--no-variants", dest="variants", action="store_false", help="skip the &_total=none runs")
    return ap.parse_args()


def main() -> int:
    """Run, print, optionally record; always clean up."""
    args = parse_args()

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    procs = Processes()
    pg_box: list[BenchPostgres] = []
    try:
        record = run(args, procs, pg_box)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # finish the clean-up even if Ctrl-C is pressed again
        procs.stop_all()
        for pg in pg_box:
            pg.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    kinds = {s.name: s.kind for s in SHAPES}
    examples = {s.name: s.example for s in SHAPES}
    say(f"\nSearch benchmark ({record['machine']['CPU']}, {record['machine']['nproc']} cores)")
    for size in record["sizes"]:
        say(f"  {human(size['target'])}: {size['resources']:,} resources; {size['load_note']}")
        say(f"     load average before {size['loadavg_before']}, after {size['loadavg_after']}")
    say()
    say(text_table(table_headers(record), table_rows(record, kinds)))
    if record["sizes"][0].get("variants"):
        say("\nWith &_total=none (no count query):")
        say(text_table(table_headers(record), table_rows(record, kinds, key="variants")))
    ex = record.get("explain")
    if ex:
        say(f"\nEXPLAIN (ANALYZE, BUFFERS) of the slowest shape ({ex['shape']}): {ex['path']}")
        for label, _, plan in ex["statements"]:
            say(f"\n{label}:\n{plan}")
    if args.markdown:
        title = SYNTH_SECTION if args.data == "synth" else SECTION
        write_section(args.markdown, section(record, kinds, examples, title), title)
        log(f"wrote the section of {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
