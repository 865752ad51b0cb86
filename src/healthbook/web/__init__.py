"""The web UI: server-rendered pages (the citizen's health book) that call the services, never the database."""
