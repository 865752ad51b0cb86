"""`python -m healthbook` runs the CLI."""

from healthbook.cli.main import app

if __name__ == "__main__":  # importing the module runs nothing
    app()
