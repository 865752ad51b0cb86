"""`healthbook quality` and `healthbook identity …`: data-quality scores and the duplicate work list."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer
from rich.console import Console
from rich.table import Table

from healthbook.auth.subject import Caller

console = Console()
identity_app = typer.Typer(
    help="One health book per citizen: likely duplicates, merges.", no_args_is_help=True
)


def quality_command(
    years: int = typer.Option(3, help="A living person with no care for this many years is flagged."),
    top: int = typer.Option(20, help="Facilities to list (lowest scores first)."),
    json_out: Path | None = typer.Option(
        None, "--json", help="Also write the full report (FHIR Parameters)."
    ),
) -> None:
    """Score each province and facility: identifiers, mandatory fields, duplicates, references, codes."""
    from healthbook.app import build_services
    from healthbook.config import get_settings
    from healthbook.db.migrate import ensure_current
    from healthbook.reports.quality import KINDS, Report, Unit, as_parameters, quality_report

    services = build_services(get_settings())
    try:
        ensure_current(services.fhir.db)
        with console.status("Đang chấm điểm chất lượng dữ liệu / scoring data quality…"):
            report: Report = quality_report(services.fhir, Caller.system("cli-quality"), years=years)
    finally:
        services.fhir.db.dispose()
    kinds = list(KINDS)

    def table(title: str, rows: list[tuple[str, Unit]]) -> Table:
        out = Table(title=title)
        out.add_column("mã", no_wrap=True, min_width=5)
        out.add_column("tên / name", max_width=22, overflow="ellipsis", no_wrap=True)
        out.add_column("hồ sơ", justify="right", no_wrap=True)
        out.add_column("điểm", justify="right", no_wrap=True)
        for n in range(1, len(kinds) + 1):
            out.add_column(f"({n})", justify="right", no_wrap=True)
        for code, unit in rows:
            counts = (str(unit.issues[k]) for k in kinds)
            out.add_row(code, unit.name, f"{unit.records:,}", f"{unit.score:.1f}", *counts)
        return out

    console.print(table("Toàn quốc / national", [("VN", report.total)]))
    console.print(table("Theo tỉnh / by province", sorted(report.provinces.items())))
    worst = sorted(report.facilities.items(), key=lambda kv: (kv[1].score, kv[0]))[:top]
    console.print(table(f"Cơ sở điểm thấp nhất / lowest-scoring {len(worst)} facilities", worst))
    console.print("hồ sơ = records, điểm = score (% of records without a problem)")
    for n, (kind, (vi, en)) in enumerate(KINDS.items(), start=1):
        console.print(f"  ({n}) {vi} / {en} [dim]({kind})[/dim]")
    if json_out is not None:
        json_out.write_bytes(orjson.dumps(as_parameters(report), option=orjson.OPT_INDENT_2))
        console.print(f"Full report: {json_out}")


@identity_app.command("duplicates")
def duplicates_command() -> None:
    """List the open likely-duplicate pairs (Patient ids and score; no personal data)."""
    from healthbook.app import build_services
    from healthbook.config import get_settings

    services = build_services(get_settings())
    try:
        assert services.identity is not None
        rows = services.identity.duplicates(Caller.system("cli-identity"))
    finally:
        services.fhir.db.dispose()
    out = Table(
        "Patient",
        "nghi trùng với / likely the same as",
        "điểm / score",
        title="Nghi trùng / likely duplicates",
    )
    for r in rows:
        out.add_row(r.res_id, r.other_id, f"{r.score:.3f}")
    console.print(out)


@identity_app.command("merge")
def merge_command(
    source: str = typer.Argument(..., help="Patient id that is merged away."),
    target: str = typer.Argument(..., help="Patient id that survives."),
    preview: bool = typer.Option(False, help="Only count what would move."),
) -> None:
    """Merge SOURCE into TARGET (Patient/$merge); prints the merge id that `unmerge` takes."""
    from healthbook.app import build_services
    from healthbook.config import get_settings
    from healthbook.errors import HealthbookError

    services = build_services(get_settings())
    try:
        assert services.identity is not None
        result = services.identity.merge(Caller.system("cli-identity"), source, target, preview=preview)
    except HealthbookError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        services.fhir.db.dispose()
    for part in result["parameter"]:
        if part["name"] == "outcome":
            console.print(part["resource"]["issue"][0]["diagnostics"])
        if part["name"] == "merge-id":
            console.print(f"merge id: [bold]{part['valueString']}[/bold]")


@identity_app.command("unmerge")
def unmerge_command(merge_id: str = typer.Argument(..., help="The id `merge` printed.")) -> None:
    """Undo a merge."""
    from healthbook.app import build_services
    from healthbook.config import get_settings
    from healthbook.errors import HealthbookError

    services = build_services(get_settings())
    try:
        assert services.identity is not None
        services.identity.unmerge(Caller.system("cli-identity"), merge_id)
    except HealthbookError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        services.fhir.db.dispose()
    console.print("Đã hoàn tác / undone")
