"""A throw-away PostgreSQL server for tests and benchmarks: initdb in a temp dir, start, stop."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg


def _bindir() -> Path:
    """Where initdb and pg_ctl live (pg_config, or Debian's versioned directory)."""
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out and (Path(out) / "initdb").exists():
            return Path(out)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TempPostgres:
    """One private PostgreSQL cluster; runs as the 'postgres' OS user when started by root."""

    def __init__(self, settings: dict[str, str] | None = None):
        self.bindir = _bindir()
        self.root = Path(tempfile.mkdtemp(prefix="healthbook-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            "max_connections": "200",
            "shared_buffers": "256MB",
            "fsync": "on",
            "synchronous_commit": "on",
            **(settings or {}),
        }
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        proc = subprocess.run([*self._as_user, *args], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {proc.stderr.strip() or proc.stdout.strip()}")

    def start(self) -> str:
        """Initialise, start and create the 'healthbook' database; returns its URL."""
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "healthbook",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
        )
        opts = " ".join(f"-c {k}={v}" for k, v in self.settings.items())
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", f"-p {self.port} {opts}", "-w", "-t", "60", "start",
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.admin_url, autocommit=True) as conn:
                    conn.execute("CREATE DATABASE healthbook")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        return self.url

    @property
    def admin_url(self) -> str:
        """URL of the maintenance database."""
        return f"postgresql://healthbook@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        """URL of the healthbook database."""
        return f"postgresql://healthbook@127.0.0.1:{self.port}/healthbook"

    def create_database(self, name: str) -> str:
        """Another empty database in the same cluster (one per test module, say)."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # name is chosen by the test code, not by users
        return f"postgresql://healthbook@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server and remove its files."""
        if self.data.exists():
            subprocess.run(
                [
                    *self._as_user,
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)
