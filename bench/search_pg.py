"""PostgreSQL, loading and server processes of the search benchmark (127.0.0.1 only, always cleaned up)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

from healthbook.testing.postgres import TempPostgres

VENV_BIN = Path(sys.executable).parent
HEALTHBOOK = str(VENV_BIN / "healthbook")
PG_SETTINGS = {
    "shared_buffers": "1GB",
    "effective_cache_size": "4GB",
    "work_mem": "16MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "fsync": "off",  # throw-away cluster: durability does not change read latencies, it only slows loading
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.max": "2000",
}


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BenchPostgres:
    """A TempPostgres that can be saved as a data-directory snapshot and started again from one."""

    def __init__(self) -> None:
        self.pg = TempPostgres(settings=dict(PG_SETTINGS))

    @property
    def url(self) -> str:
        """URL of the healthbook database."""
        return self.pg.url

    def _pg_ctl(self, *args: str) -> None:
        pg = self.pg
        cmd = [*pg._as_user, str(pg.bindir / "pg_ctl"), "-D", str(pg.data), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"pg_ctl {args[-1]} failed: {proc.stderr.strip() or proc.stdout.strip()}")

    def _start_existing(self) -> None:
        pg = self.pg
        opts = " ".join(f"-c {k}={v}" for k, v in pg.settings.items())
        log = str(pg.root / "server.log")
        self._pg_ctl("-l", log, "-o", f"-p {pg.port} {opts}", "-w", "-t", "120", "start")

    def start_fresh(self) -> None:
        """initdb, start, create the database and the schema."""
        self.pg.start()
        self._extension()
        env = {**os.environ, "HEALTHBOOK_DATABASE_URL": self.url}
        subprocess.run([HEALTHBOOK, "db", "upgrade"], env=env, check=True, capture_output=True)

    def start_from(self, snapshot: Path) -> float:
        """Start on a copy of a saved data directory and bring its schema up to date; seconds migrating."""
        subprocess.run(["cp", "-a", str(snapshot), str(self.pg.data)], check=True)
        if self.pg._as_user:
            subprocess.run(["chown", "-R", "postgres:postgres", str(self.pg.data)], check=True)
        self._start_existing()
        self._extension()
        return self.upgrade()

    def upgrade(self) -> float:
        """`healthbook db upgrade` (a snapshot may predate the current migrations), then VACUUM (ANALYZE)
        so that a migration's rewritten rows and new indexes are in the steady state; seconds taken."""
        env = {**os.environ, "HEALTHBOOK_DATABASE_URL": self.url}
        start = time.perf_counter()
        subprocess.run([HEALTHBOOK, "db", "upgrade"], env=env, check=True, capture_output=True)
        self.execute("VACUUM (ANALYZE)")
        return time.perf_counter() - start

    def save(self, snapshot: Path) -> None:
        """Stop cleanly, copy the data directory to snapshot, start again."""
        self._pg_ctl("-m", "fast", "-w", "stop")
        tmp = snapshot.with_name(snapshot.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", str(self.pg.data), str(tmp)], check=True)
        shutil.rmtree(snapshot, ignore_errors=True)
        tmp.rename(snapshot)
        self._start_existing()

    def _extension(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def stop(self) -> None:
        """Stop the server and remove its files."""
        self.pg.stop()

    def version(self) -> str:
        """SELECT version()."""
        with psycopg.connect(self.url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        """One autocommit statement; rows if it returns any."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(sql)  # bench-internal SQL, never user input
            return list(cur.fetchall()) if cur.description else []

    def database_bytes(self) -> int:
        """Size of the healthbook database."""
        return int(self.execute("SELECT pg_database_size('healthbook')")[0][0])


class Processes:
    """Child process groups that must not outlive the benchmark."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[bytes]] = []

    def spawn(self, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """Start cmd in its own process group, output to log."""
        with log.open("ab") as handle:
            proc = subprocess.Popen(
                cmd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.children.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
        """TERM the process group, KILL it if it lingers."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        with contextlib.suppress(ValueError):
            self.children.remove(proc)

    def stop_all(self) -> None:
        """Stop every child still running."""
        for proc in list(self.children):
            self.stop(proc)


def import_files(
    procs: Processes, url: str, files: list[Path], jobs: int, logdir: Path, log: Callable[[str], None]
) -> float:
    """`healthbook import ndjson` over files, `jobs` processes at a time (first file alone); seconds taken."""
    env = {**os.environ, "HEALTHBOOK_DATABASE_URL": url, "TERM": "dumb", "COLUMNS": "100"}
    start = time.perf_counter()
    queue = list(files)
    running: list[tuple[subprocess.Popen[bytes], Path]] = []
    first = True
    while queue or running:
        while queue and len(running) < (1 if first else jobs):
            path = queue.pop(0)
            errors = logdir / f"{path.stem}.errors.ndjson"
            cmd = [HEALTHBOOK, "import", "ndjson", str(path), "--errors", str(errors)]
            running.append((procs.spawn(cmd, env, logdir / f"{path.stem}.import.log"), path))
            log(f"  importing {path.name} (load {loadavg()})")
        time.sleep(0.5)
        for proc, path in list(running):
            rc = proc.poll()
            if rc is None:
                continue
            running.remove((proc, path))
            procs.stop(proc)
            if rc != 0:
                raise RuntimeError(
                    f"import of {path.name} failed (exit {rc}); see {logdir}/{path.stem}.import.log"
                )
            first = False
    return time.perf_counter() - start


def loadavg() -> str:
    """The 1/5/15-minute load averages."""
    a, b, c = os.getloadavg()
    return f"{a:.2f} {b:.2f} {c:.2f}"


@contextlib.contextmanager
def server(procs: Processes, url: str, workers: int, logdir: Path) -> Iterator[int]:
    """`healthbook serve` on 127.0.0.1; yields the port, stops it afterwards."""
    port = free_port()
    env = {**os.environ, "HEALTHBOOK_DATABASE_URL": url, "HEALTHBOOK_AUTH": "off"}
    cmd = [HEALTHBOOK, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    proc = procs.spawn(cmd, env, logdir / "server.log")
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}; see {logdir}/server.log")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/fhir/metadata")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
                conn.close()
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become ready in 90 s")
            time.sleep(0.3)
        yield port
    finally:
        procs.stop(proc)


def read_meta(path: Path) -> dict[str, Any]:
    """A snapshot's metadata (load times), or {}."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data
