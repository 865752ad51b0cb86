"""The healthbook command line: parse arguments, call a service, print."""

from __future__ import annotations

import os

import typer
from rich.console import Console

from healthbook.cli import bulk as bulk_commands
from healthbook.cli import db as db_commands
from healthbook.cli.synth import synth_command
from healthbook.cli.xml130 import xml130_command

app = typer.Typer(
    help="healthbook — Sổ sức khỏe điện tử (national electronic health book).", no_args_is_help=True
)
app.add_typer(db_commands.app, name="db")
bulk_commands.import_app.command("xml130")(xml130_command)
app.add_typer(bulk_commands.import_app, name="import")
app.add_typer(bulk_commands.export_app, name="export")
app.command("synth")(synth_command)
console = Console()


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8080, help="TCP port."),
    workers: int = typer.Option(1, help="Worker processes (use the number of cores in production)."),
) -> None:
    """Serve the FHIR API at http://HOST:PORT/fhir."""
    import uvicorn

    from healthbook.config import get_settings
    from healthbook.db.engine import Database
    from healthbook.db.migrate import ensure_current
    from healthbook.fhir.search.reindex import index_is_current

    settings = get_settings()
    db = Database(settings)
    try:
        ensure_current(db)
        if not index_is_current(db):
            console.print(
                "[yellow]The search index was built from other search definitions: "
                "run `healthbook db reindex` (searches may miss resources until then).[/yellow]"
            )
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    console.print(
        f"healthbook FHIR API on [bold]http://{host}:{port}/fhir[/bold] ({_backend(settings.database_url)})"
    )
    uvicorn.run(
        "healthbook.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=os.environ.get("HEALTHBOOK_LOG_LEVEL", "warning"),
        access_log=False,
    )


def _backend(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgres") else "SQLite"


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8080, help="TCP port."),
    citizens: int = typer.Option(50, help="Citizens in a new demo database."),
) -> None:
    """Build (or reuse) demo.db with fictitious citizens and serve it."""
    from healthbook.auth.subject import Caller
    from healthbook.config import Settings
    from healthbook.demo.sample import sample_resources

    url = os.environ.get("HEALTHBOOK_DATABASE_URL", "sqlite:///demo.db")
    os.environ["HEALTHBOOK_DATABASE_URL"] = url
    from healthbook.app import build_services
    from healthbook.db.migrate import ensure_current
    from healthbook.fhir.service import history

    services = build_services(Settings(database_url=url))
    ensure_current(services.fhir.db)
    caller = Caller.system("demo")
    stored = history(
        services.fhir, caller, res_type=None, res_id=None, since=None, until=None, offset=0, count=0
    )
    count = stored.total
    if count == 0:
        loaded = 0
        for res in sample_resources(citizens):
            services.fhir.update(caller, res["resourceType"], res["id"], res)
            loaded += 1
        console.print(f"Loaded {loaded} demo resources into {url}")
    services.fhir.db.dispose()
    console.print("Try:")
    base = f"http://{host}:{port}/fhir"
    for path in (
        "/metadata",
        "/Patient?name=nguyen",
        "/Patient/demo-0000",
        "/Observation?subject=Patient/demo-0000",
    ):
        console.print(f"  curl -s '{base}{path}'")
    serve(host=host, port=port, workers=1)
