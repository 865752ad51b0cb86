"""The healthbook command line: parse arguments, call a service, print."""

from __future__ import annotations

import os

import typer
from pydantic import ValidationError
from rich.console import Console

from healthbook.cli import bulk as bulk_commands
from healthbook.cli import db as db_commands
from healthbook.cli.access import access_app
from healthbook.cli.audit import audit_app
from healthbook.cli.quality import identity_app, quality_command
from healthbook.cli.synth import synth_command
from healthbook.cli.xml130 import xml130_command
from healthbook.config import Settings

app = typer.Typer(
    help="healthbook — Sổ sức khỏe điện tử (national electronic health book).", no_args_is_help=True
)
app.add_typer(db_commands.app, name="db")
bulk_commands.import_app.command("xml130")(xml130_command)
app.add_typer(bulk_commands.import_app, name="import")
app.add_typer(bulk_commands.export_app, name="export")
app.command("synth")(synth_command)
app.command("quality")(quality_command)
app.add_typer(identity_app, name="identity")
app.add_typer(access_app, name="access")
app.add_typer(audit_app, name="audit")
console = Console()


@app.callback()
def _settings_first() -> None:
    """Refuse a bad HEALTHBOOK_* variable by name before any command runs, not with a traceback."""
    try:
        Settings()  # not get_settings(): `demo` sets its own variables before it reads them
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"][1:])
            name = f"HEALTHBOOK_{str(err['loc'][0]).upper()}" if err["loc"] else "settings"
            console.print(f"[red]{name}{f' ({where})' if where else ''}: {err['msg']}[/red]")
        raise typer.Exit(2) from None


def _warn_about_access(settings: Settings) -> None:
    """Say so when the access settings make the server useless or open to anyone."""
    if settings.auth == "off":
        console.print(
            "[yellow]Access control is off (HEALTHBOOK_AUTH=off): anyone who reaches this port reads and "
            "writes every record. For development only.[/yellow]"
        )
    elif not settings.oidc_issuers and not settings.dev_idp:
        console.print(
            "[yellow]Access control is on but no OpenID Connect issuer is trusted (HEALTHBOOK_OIDC_ISSUERS): "
            "every /fhir request but metadata will answer 401. See README, Authentication.[/yellow]"
        )


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
    _warn_about_access(settings)
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
    citizens: int = typer.Option(2000, help="Citizens in a new demo database."),
    seed: int = typer.Option(1, help="Seed of the synthetic population."),
) -> None:
    """Build (or reuse) demo.db with a synthetic Vietnamese population and serve it."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from healthbook.config import Settings
    from healthbook.synth.demo import find_showcase, load_demo, stored_count

    url = os.environ.get("HEALTHBOOK_DATABASE_URL", "sqlite:///demo.db")
    os.environ["HEALTHBOOK_DATABASE_URL"] = url
    os.environ.setdefault("HEALTHBOOK_BOOK_PAGES", "true")
    # The development identity provider with its demo users (never outside the demo: README "Authentication").
    os.environ.setdefault("HEALTHBOOK_DEV_IDP", "true")
    os.environ.setdefault("HEALTHBOOK_AUTH", "required")  # the demo shows access control at work
    os.environ.setdefault("HEALTHBOOK_DEV_IDP_ISSUER", f"http://{host}:{port}/dev-idp")
    from healthbook.app import build_services
    from healthbook.db.migrate import ensure_current

    # The demo database is disposable: NORMAL keeps WAL durability per checkpoint and loads 3× faster.
    settings = Settings(database_url=url, sqlite_synchronous="NORMAL")
    services = build_services(settings)
    try:
        ensure_current(services.fhir.db)
        if stored_count(services.fhir) == 0:
            started = time.monotonic()
            with Progress(
                "{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
            ) as bar:
                task = bar.add_task("Tạo dân số mẫu / building the demo population", total=None)
                loaded = load_demo(
                    services.fhir,
                    citizens,
                    seed,
                    on_progress=lambda stats: bar.update(task, completed=stats.lines),
                    workers=settings.import_workers,
                )
            console.print(
                f"Loaded {loaded.stats.lines:,} resources for {citizens:,} citizens into {url} "
                f"in {time.monotonic() - started:.0f} s ({loaded.stats.errors} rejected)"
            )
        else:
            console.print(f"Reusing {url} (delete it to rebuild)")
            if services.access is not None and not services.access.has_grants():
                with console.status("Dựng lại quyền truy cập / deriving access grants"):
                    services.access.rebuild()
        showcase = find_showcase(services.fhir, services.search)
    finally:
        services.fhir.db.dispose()
    base = f"http://{host}:{port}"
    console.print("\n[bold]Thử / try:[/bold]")
    console.print(f"  curl -s '{base}/fhir/metadata'")
    # With access control on, the API wants a token: the demo login page (below) gives one per demo user.
    curl = (
        "curl -s -H 'Authorization: Bearer TOKEN'"
        if os.environ["HEALTHBOOK_AUTH"] == "required"
        else "curl -s"
    )
    console.print(f"  {curl} '{base}/fhir/Patient?name=nguyen&_count=5'")
    for person in showcase:
        console.print(f"\n  [bold]{person.name}[/bold], CCCD {person.cccd}: {person.why}")
        console.print(f"    {base}/so-suc-khoe/{person.cccd}")
        console.print(f"    {curl} '{base}/fhir/Patient/{person.patient_id}/$summary'")
        console.print(f"    {curl} '{base}/fhir/Patient/{person.patient_id}/$everything'")
    if os.environ.get("HEALTHBOOK_DEV_IDP", "").lower() in ("1", "true", "yes", "on"):
        console.print("\n[bold]Đăng nhập / log in as a demo user (then open the health books):[/bold]")
        console.print(f"  {base}/dev-idp   →   {base}/so-suc-khoe/")
        console.print(
            "  Ai đã truy cập sổ / who accessed a book: at the end of each book page, "
            f"{curl} '{base}/fhir/AuditEvent?patient=ID' as its citizen; `healthbook audit verify`"
        )
    console.print("")
    serve(host=host, port=port, workers=1)
