"""`python -m healthbook` runs the CLI."""

from healthbook.cli.main import app

app()
