"""`healthbook import ndjson` and `healthbook export ndjson`: bulk data from and to files."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from healthbook.auth.subject import Caller
from healthbook.config import get_settings
from healthbook.errors import HealthbookError

import_app = typer.Typer(help="Load data into the health book.", no_args_is_help=True)
export_app = typer.Typer(help="Write data out of the health book.", no_args_is_help=True)
console = Console()


def _open(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return cast(BinaryIO, gzip.GzipFile(path, "rb"))
    return path.open("rb")


@import_app.command("ndjson")
def import_ndjson(
    files: list[Path] = typer.Argument(..., help="NDJSON files (.ndjson or .ndjson.gz), any resource types."),
    errors: Path = typer.Option(Path("import-errors.ndjson"), help="Where invalid lines are reported."),
    chunk: int = typer.Option(1000, help="Resources per committed transaction."),
    jobs: int | None = typer.Option(
        None,
        help="Processes that parse, validate and index ahead of the writer (default: one per CPU, up to 4; "
        "0: none).",
        min=0,
        max=4,
    ),
) -> None:
    """Validate, index and store every resource; re-running the same files creates no duplicates."""
    from healthbook.app import build_services
    from healthbook.db.migrate import ensure_current
    from healthbook.fhir.bulk.ndjson_import import Line, import_lines, lines_of

    for path in files:
        if not path.is_file():
            console.print(f"[red]{path}: no such file[/red]")
            raise typer.Exit(2)
    services = build_services(get_settings())
    try:
        ensure_current(services.fhir.db)
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    total = sum(p.stat().st_size for p in files)
    error_count = 0
    with (
        errors.open("wb") as error_handle,
        Progress(
            "{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()
        ) as bar,
    ):
        task = bar.add_task("Importing", total=total)

        def all_lines() -> Iterator[Line]:
            done = 0
            for path in files:
                with path.open("rb") as raw, _open(path) as handle:
                    for line in lines_of(path.name, handle):
                        bar.update(task, completed=done + raw.tell())
                        yield line
                done += path.stat().st_size
            bar.update(task, completed=total)

        def on_error(outcome: dict[str, object]) -> None:
            nonlocal error_count
            error_count += 1
            error_handle.write(orjson.dumps(outcome) + b"\n")

        try:
            stats = import_lines(
                services.fhir,
                Caller.system("cli-import"),
                all_lines(),
                errors=on_error,
                chunk_size=chunk,
                workers=get_settings().import_workers if jobs is None else jobs,
            )
        except HealthbookError as exc:
            console.print(f"[red]{exc.message}[/red]")
            raise typer.Exit(1) from None
        finally:
            services.fhir.db.dispose()
    table = Table("resource type", "stored", title="Import summary")
    for rtype, n in sorted(stats.by_type.items()):
        table.add_row(rtype, str(n))
    console.print(table)
    console.print(
        f"{stats.lines} lines: {stats.created} created, {stats.updated} updated, "
        f"{stats.unchanged} unchanged, {stats.errors} invalid" + (f" (see {errors})" if stats.errors else "")
    )
    if not stats.errors:
        errors.unlink(missing_ok=True)


@export_app.command("ndjson")
def export_ndjson(
    directory: Path = typer.Argument(..., help="Output folder (created if missing)."),
    types: str = typer.Option("", "--type", help="Comma-separated resource types (default: all)."),
    since: str = typer.Option("", help="Only resources changed at or after this instant."),
) -> None:
    """Write one Type.ndjson file per resource type."""
    from healthbook.app import build_services
    from healthbook.fhir.bulk.export import export_ndjson as run_export
    from healthbook.fhir.bulk.export import parse_request

    services = build_services(get_settings())
    try:
        req = parse_request("system", None, types or None, since or None, [])
        with console.status("Exporting…") as status:
            files = run_export(
                services.fhir,
                Caller.system("cli-export"),
                req,
                directory,
                on_progress=lambda t, n: status.update(f"Exporting {t}: {n}"),
            )
    except HealthbookError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        services.fhir.db.dispose()
    for f in files:
        if f.count == 0:
            f.path.unlink(missing_ok=True)
    kept = [f for f in files if f.count]
    console.print(f"Wrote {sum(f.count for f in kept)} resources in {len(kept)} files to {directory}")
