"""`healthbook access …`: derive the access grants afresh from the stored records."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console()
access_app = typer.Typer(help="Access control: who may read which health book.", no_args_is_help=True)


@access_app.command("rebuild")
def rebuild_command() -> None:
    """Re-derive every grant (own book, guardians, encounters, consents) and hiding; emergency grants stay."""
    from healthbook.app import build_services
    from healthbook.config import get_settings
    from healthbook.db.migrate import ensure_current

    services = build_services(get_settings())
    try:
        ensure_current(services.fhir.db)
        assert services.access is not None
        with console.status("Dựng lại quyền truy cập / deriving access grants…") as status:
            done = services.access.rebuild(
                on_progress=lambda n: status.update(
                    f"Dựng lại quyền truy cập / deriving access grants… {n:,}"
                )
            )
    finally:
        services.fhir.db.dispose()
    console.print(f"Derived the grants of {done:,} records (Patient, RelatedPerson, Encounter, Consent).")
