"""`healthbook synth`: write a reproducible synthetic Vietnamese population as FHIR R4 files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

console = Console()
DEFAULT_OUT = Path("synth-out")


def synth_command(
    citizens: int = typer.Option(1000, "--citizens", "-n", min=1, help="Number of citizens."),
    seed: int = typer.Option(
        1, "--seed", "-s", min=0, help="Same seed and citizens give byte-identical output."
    ),
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = DEFAULT_OUT,
    format: str = typer.Option(
        "ndjson",
        "--format",
        "-f",
        help="ndjson (Type.ndjson), bundles (one per citizen) or xml130 (GIAMDINHHS per facility and block).",
    ),
    workers: int = typer.Option(
        0, help="Worker processes (0: one per core); the output does not depend on it."
    ),
    provinces: str = typer.Option("", help="Only these 2025 province codes, comma-separated (e.g. 01,79)."),
    years: int = typer.Option(10, min=1, max=50, help="Years of care history, ending 30/06/2026."),
    overwrite: bool = typer.Option(False, help="Replace the output files of an earlier run in --out."),
) -> None:
    """Generate citizens with households, BHYT cards, facilities and years of care, valid for the server."""
    from healthbook.synth import writer
    from healthbook.synth.generate import Config

    if format not in writer.FORMATS:
        console.print(f"[red]--format must be one of {', '.join(writer.FORMATS)}[/red]")
        raise typer.Exit(2)
    selected = frozenset(c.strip() for c in provinces.split(",") if c.strip()) or None
    config = Config(citizens, seed, selected, years)
    try:
        writer.prepare(out, overwrite)
    except FileExistsError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    count = workers or writer.default_workers()
    write = {"ndjson": writer.write_ndjson, "bundles": writer.write_bundles, "xml130": writer.write_xml130}[
        format
    ]
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("Generating citizens", total=citizens)
        try:
            summary = write(config, out, count, lambda n: bar.advance(task, n))
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    what = "table" if format == "xml130" else "resource type"
    table = Table(what, "count", title=f"{citizens:,} citizens, seed {seed} → {out}")
    for rtype, n in sorted(summary.by_type.items(), key=lambda kv: -kv[1]):
        table.add_row(rtype, f"{n:,}")
    console.print(table)
    if format == "xml130":
        console.print(
            f"{summary.by_type.get('HOSO', 0):,} episodes in {summary.by_type.get('files', 0):,} GIAMDINHHS files, "
            f"{summary.bytes / 1e6:,.0f} MB in {summary.seconds:.1f} s with {count} worker(s)"
        )
        return
    per_person = (summary.resources - _shared(summary.by_type)) / max(1, citizens)
    console.print(
        f"{summary.resources:,} resources ({per_person:.1f} per citizen), {summary.bytes / 1e6:,.0f} MB "
        f"in {summary.seconds:.1f} s with {count} worker(s)"
    )


def _shared(by_type: dict[str, int]) -> int:
    """Resources written once for everyone (facilities and staff)."""
    return sum(by_type.get(t, 0) for t in ("Organization", "Practitioner", "PractitionerRole"))
