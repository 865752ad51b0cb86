"""Settings read from the environment (prefix HEALTHBOOK_); the only module that reads it."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration of one healthbook process."""

    model_config = SettingsConfigDict(env_prefix="HEALTHBOOK_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///healthbook.db"
    # Largest request body accepted, in bytes (413 beyond it).
    max_body_bytes: int = 32 * 1024 * 1024
    # Public base URL of the FHIR endpoint, used in Location headers and bundle links when set;
    # otherwise derived from the request.
    public_base_url: str | None = None
    default_page_size: int = 50
    max_page_size: int = 1000
    # PostgreSQL statement_timeout of every connection, in ms (0 = none): a search that runs longer is
    # cancelled and answered 400 (too-costly); migrations and bulk export lift it for their statements.
    statement_timeout_ms: int = 30_000
    # PostgreSQL max_parallel_workers_per_gather of every connection: 0 runs each statement on one core.
    # Searches stop after a page; parallel workers cost more to start than they save (a LIMIT plan took
    # 70 ms with two workers and 3 ms without, at 1M resources), and concurrent requests use the cores.
    pg_parallel_workers: int = 0
    # Connection pool size per process (PostgreSQL).
    pool_size: int = 20
    # SQLite synchronous pragma: FULL survives power loss, NORMAL survives process crashes only.
    sqlite_synchronous: str = "FULL"
    sqlite_busy_timeout_ms: int = 30000
    # Where bulk export files and import uploads are kept.
    bulk_dir: str = "bulk-data"
    # Largest NDJSON body accepted by $import (streamed to disk).
    max_import_bytes: int = 2 * 1024 * 1024 * 1024


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
