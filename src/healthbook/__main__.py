"""`python -m healthbook` runs the CLI."""

from healthbook.cli.main import app

if __name__ == "__main__":  # not when a worker process (spawn) imports this module
    app()
