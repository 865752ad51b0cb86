"""`healthbook import xml130 FILES…`: GIAMDINHHS submissions into the health book, with progress and a summary."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from healthbook.auth.subject import Caller
from healthbook.imports.xml130.issues import FileReport, issues_of, operation_outcome

console = Console()


def _expand(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() == ".xml"))
        elif p.is_file():
            out.append(p)
        else:
            console.print(f"[red]{escape(str(p))}: no such file or folder[/red]")
            raise typer.Exit(2)
    return out


def _run(paths: list[str], queue: Any = None) -> list[FileReport]:
    """Import files in this process (a worker of --jobs, or the command itself)."""
    from healthbook.app import build_services
    from healthbook.config import get_settings
    from healthbook.db.migrate import ensure_current
    from healthbook.imports.xml130.service import Xml130Importer

    services = build_services(get_settings())
    try:
        ensure_current(services.fhir.db)
        importer = Xml130Importer(services.fhir, services.search, services.settings)
        caller = Caller.system("cli-import-xml130")
        reports = []
        for path in paths:
            size = os.path.getsize(path)
            sent = 0

            def progress(report: FileReport, done: int, total: int, size: int = size) -> None:
                nonlocal sent
                now = size * done // max(1, total)
                if queue is not None and now > sent:
                    queue.put(now - sent)
                sent = max(sent, now)

            # Small files share a chunk (one transaction) with the next ones; drain() writes the rest.
            report = importer.import_source(caller, path, os.path.basename(path), on_progress=progress,
                                            keep_open=True)  # fmt: skip
            if queue is not None and size > sent:
                queue.put(size - sent)
            reports.append(report)
        importer.drain(caller)
        return reports
    finally:
        services.fhir.db.dispose()


def _worker(paths: list[str], queue: Any, results: Any) -> None:
    try:
        results.put(("ok", _run(paths, queue)))
    except BaseException as exc:
        results.put(("error", f"{type(exc).__name__}: {exc}"))
        raise


def _share(files: list[Path], jobs: int) -> list[list[str]]:
    """Files for each worker, largest first to the least loaded."""
    groups: list[list[str]] = [[] for _ in range(jobs)]
    load = [0] * jobs
    for f in sorted(files, key=lambda p: -p.stat().st_size):
        k = load.index(min(load))
        groups[k].append(str(f))
        load[k] += f.stat().st_size
    return [g for g in groups if g]


def xml130_command(
    files: list[Path] = typer.Argument(..., help="GIAMDINHHS files, or folders searched for *.xml files."),
    report: Path = typer.Option(
        Path("xml130-report.json"), help="Where the full OperationOutcome is written."
    ),
    show: int = typer.Option(20, help="Errors and warnings listed on screen."),
    jobs: int = typer.Option(
        1, min=1, help="Worker processes (PostgreSQL); files are shared out between them."
    ),
) -> None:
    """Import XML130 (QĐ 130/4750/3176) submissions; re-importing a file updates its episodes, never duplicates."""
    from healthbook.config import get_settings

    paths = _expand(files)
    if not paths:
        console.print("[yellow]No .xml files found[/yellow]")
        raise typer.Exit(2)
    if jobs > 1 and not get_settings().database_url.startswith("postgres"):
        console.print(
            "[yellow]--jobs > 1 helps only on PostgreSQL; SQLite takes one writer at a time[/yellow]"
        )
    total = sum(p.stat().st_size for p in paths)
    started = time.monotonic()
    columns = (
        "{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    ctx: Any = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    )
    queue, results = ctx.Queue(), ctx.Queue()
    groups = _share(paths, min(jobs, len(paths)))
    reports: list[FileReport] = []
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"Importing {len(paths)} file(s)", total=total)
        if len(groups) == 1:
            import threading

            box: dict[str, Any] = {}

            def run() -> None:
                try:
                    box["reports"] = _run(groups[0], queue)
                except BaseException as exc:
                    box["error"] = exc
                finally:
                    queue.put(None)

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            while (step := queue.get()) is not None:
                bar.advance(task, step)
            thread.join()
            if "error" in box:
                raise box["error"]
            reports = box["reports"]
        else:
            procs = [ctx.Process(target=_worker, args=(g, queue, results), daemon=True) for g in groups]
            for p in procs:
                p.start()
            pending = len(procs)
            try:
                while pending:
                    while not queue.empty():
                        bar.advance(task, queue.get())
                    try:
                        status, value = results.get(timeout=0.2)
                    except Exception:
                        continue
                    pending -= 1
                    if status != "ok":
                        console.print(f"[red]A worker failed: {escape(str(value))}[/red]")
                        raise typer.Exit(1)
                    reports.extend(value)
                while not queue.empty():
                    bar.advance(task, queue.get())
            finally:
                for p in procs:
                    p.join(timeout=5)
                    if p.is_alive():
                        p.terminate()
    seconds = time.monotonic() - started
    _summary(sorted(reports, key=lambda r: r.name), report, show, seconds)
    failed = any(r.refused for r in reports) or any(e.rejected for r in reports for e in r.episodes)
    raise typer.Exit(1 if failed else 0)


def _summary(reports: list[FileReport], path: Path, show: int, seconds: float) -> None:
    table = Table("file", "MACSKCB", "episodes", "created", "updated", "unchanged", "rejected", "warnings",
                  title="XML130 import")  # fmt: skip
    for r in reports:
        warnings = sum(1 for e in r.episodes for p in e.problems if p.severity == "warning")
        warnings += sum(1 for p in r.problems if p.severity == "warning")
        if r.refused:
            table.add_row(escape(r.name), "—", "refused", "", "", "", "", "")
            continue
        table.add_row(escape(r.name), r.macskcb or "?", str(len(r.episodes)), str(r.count("created")),
                      str(r.count("updated")), str(r.count("unchanged")), str(r.count("rejected")), str(warnings))  # fmt: skip
    if len(reports) <= 40:
        console.print(table)
    shown = 0
    for r in reports:
        for issue in issues_of(r):
            if issue["severity"] == "information" or shown >= show:
                continue
            colour = "red" if issue["severity"] in ("error", "fatal") else "yellow"
            console.print(f"[{colour}]{escape(issue['diagnostics'])}[/{colour}]")
            shown += 1
    path.write_bytes(orjson.dumps(operation_outcome(reports), option=orjson.OPT_INDENT_2))
    episodes = sum(len(r.episodes) for r in reports)
    stored = sum(r.imported for r in reports)
    resources = sum(e.resources for r in reports for e in r.episodes)
    refused = sum(1 for r in reports if r.refused)
    console.print(
        f"{len(reports)} file(s){f' ({refused} refused)' if refused else ''}, {episodes} episodes: {stored} stored, "
        f"{episodes - stored} rejected; {resources} resources written in {seconds:.1f} s "
        f"({episodes / max(seconds, 1e-9):.0f} episodes/s). Full report: {escape(str(path))}"
    )
