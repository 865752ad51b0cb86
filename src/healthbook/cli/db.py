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
