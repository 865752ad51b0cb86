"""`healthbook db …`: schema migrations."""

from __future__ import annotations

import typer
from rich.console import Console

from healthbook.config import get_settings
from healthbook.db import migrate
from healthbook.db.engine import Database

app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
console = Console()


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply the Alembic migrations up to REVISION."""
    db = Database(get_settings())
    try:
        migrate.upgrade(db, revision)
        console.print(f"Database at revision [bold]{migrate.current_revision(db)}[/bold]")
    finally:
        db.dispose()


@app.command()
def current() -> None:
    """Show the revision the database is at and the newest one available."""
    db = Database(get_settings())
    try:
        console.print(f"current: {migrate.current_revision(db)}  head: {migrate.head_revision()}")
    finally:
        db.dispose()


@app.command()
def reindex(
    restart: bool = typer.Option(False, "--restart", help="Ignore a saved checkpoint and start over."),
    batch_size: int = typer.Option(500, help="Resources per committed batch."),
) -> None:
    """Rebuild all search indexes; interrupted runs resume from their last checkpoint."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from healthbook.app import build_services
    from healthbook.auth.subject import Caller
    from healthbook.fhir.search.reindex import ReindexProgress
    from healthbook.fhir.search.reindex import reindex as run_reindex

    services = build_services(get_settings())
    migrate.ensure_current(services.fhir.db)
    try:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        ) as bar:
            task = bar.add_task("Reindexing", total=None)

            def show(p: ReindexProgress) -> None:
                bar.update(task, completed=p.done, total=p.total)

            result = run_reindex(
                services.fhir.db,
                services.fhir.policy,
                Caller.system("cli"),
                batch_size=batch_size,
                restart=restart,
                on_progress=show,
            )
        console.print(f"Reindexed {result.done} resources.")
    finally:
        services.fhir.db.dispose()
