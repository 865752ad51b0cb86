"""`healthbook audit …`: check the hash chains of the audit trail, and list a book's access log."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from healthbook.auth.subject import Caller

console = Console()
audit_app = typer.Typer(help="The audit trail: who accessed which health book.", no_args_is_help=True)
_CLI = Caller.system("cli-audit")


@audit_app.command("verify")
def verify_command(
    patient: Annotated[list[str] | None, typer.Option(help="Only these books (Patient ids)")] = None,
) -> None:
    """Recompute every chain link and compare with the chain heads; exit 1 on the first sign of tampering."""
    from healthbook.app import build_services
    from healthbook.config import get_settings
    from healthbook.db.migrate import ensure_current
    from healthbook.errors import HealthbookError
    from healthbook.fhir.service import check_id

    for pid in patient or []:
        try:
            check_id(pid)
        except HealthbookError as exc:
            console.print(f"[red]--patient: {escape(exc.message)}[/red]")
            raise typer.Exit(2) from None
    services = build_services(get_settings())
    try:
        ensure_current(services.fhir.db)
        assert services.audit is not None
        with console.status("Kiểm tra nhật ký truy cập / verifying the audit trail…") as status:
            report = services.audit.verify(
                patient or None,
                on_progress=lambda n: status.update(
                    f"Kiểm tra nhật ký truy cập / verifying the audit trail… {n:,} books"
                ),
            )
    finally:
        services.fhir.db.dispose()
    console.print(f"{report.books:,} books, {report.events:,} events checked.")
    console.print(f"Anchor (sha256 over every chain head): {report.anchor}")
    if report.breaks:
        for found in report.breaks[:50]:
            console.print(
                f"[red]BROKEN[/red] Patient/{found.patient_key} at link {found.seq}: {found.reason}"
            )
        console.print(f"[red]{len(report.breaks):,} broken chain(s).[/red]")
        raise typer.Exit(1)
    console.print("[green]Every chain holds.[/green]")


@audit_app.command("list")
def list_command(
    patient: Annotated[str, typer.Option(help="The book (Patient id)")],
    count: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """The newest accesses to one health book."""
    from healthbook.app import build_services
    from healthbook.config import get_settings
    from healthbook.db.migrate import ensure_current
    from healthbook.errors import HealthbookError
    from healthbook.fhir import jsonio

    services = build_services(get_settings())
    try:
        ensure_current(services.fhir.db)
        assert services.audit is not None
        pairs = [("patient", patient), ("_count", str(count))]
        bundle = jsonio.loads(services.audit.search(_CLI, pairs, base="", strict=True))
    except HealthbookError as exc:
        console.print(f"[red]{escape(exc.message)}[/red]")
        raise typer.Exit(2) from None
    finally:
        services.fhir.db.dispose()
    table = Table("recorded", "action", "interaction", "outcome", "role", "facility", "what")
    for entry in bundle.get("entry", []):
        event = entry["resource"]
        agent = event["agent"][0]
        facility = next(
            (
                a["who"]["identifier"]["value"]
                for a in event["agent"][1:]
                if a["type"]["coding"][0]["code"] == "110152"
            ),
            "",
        )
        role = (agent.get("role") or [{"coding": [{"code": ""}]}])[0]["coding"][0]["code"]
        what = ", ".join(e["what"]["reference"] for e in event["entity"][1:] if "what" in e)
        table.add_row(
            event["recorded"],
            event["action"],
            event["subtype"][-1]["code"].rsplit("/", 1)[-1],
            event["outcome"],
            role,
            facility,
            what,
        )
    console.print(table)
