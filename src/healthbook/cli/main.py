"""The healthbook command line: parse arguments, call a service, print."""

from __future__ import annotations

import os

import typer
from rich.console import Console

from healthbook.cli import db as db_commands

app = typer.Typer(help="healthbook — Sổ sức khỏe điện tử (national electronic health book).", no_args_is_help=True)
app.add_typer(db_commands.app, name="db")
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

    settings = get_settings()
    db = Database(settings)
    try:
        ensure_current(db)
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    console.print(f"healthbook FHIR API on [bold]http://{host}:{port}/fhir[/bold] ({_backend(settings.database_url)})")
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
