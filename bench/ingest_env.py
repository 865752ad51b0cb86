"""Processes and machine facts of the ingest benchmark: servers on 127.0.0.1, cleanup, versions."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import IO

import psycopg

VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Interrupted(Exception):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl-C so that every finally block runs."""


def install_signal_handlers() -> None:
    """Turn SIGTERM and SIGHUP into an exception in the main thread."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Stop a child started in its own session, with everything it forked (by its process group id)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


class Server:
    """`healthbook serve` on 127.0.0.1 in its own process group, stopped by stop() (also on errors)."""

    def __init__(self, db_url: str, workers: int, work_dir: Path, env: dict[str, str] | None = None):
        self.port = free_port()
        self.log_path = work_dir / f"server-{self.port}.log"
        self.env = {
            **os.environ,
            "HEALTHBOOK_DATABASE_URL": db_url,
            "HEALTHBOOK_AUTH": "off",  # the engine's own speed: anonymous requests, no token checks
            "HEALTHBOOK_BULK_DIR": str(work_dir / "bulk-data"),
            **(env or {}),
        }
        self.workers = workers
        self.work_dir = work_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        """Start and wait until /fhir/metadata answers."""
        self._log = self.log_path.open("wb")
        cmd = [str(VENV_BIN / "healthbook"), "serve", "--host", HOST, "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*cmd, "--workers", str(self.workers)],
            env=self.env,
            cwd=self.work_dir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base}/metadata", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer within {timeout:.0f} s: {self.log_tail()}")
            time.sleep(0.3)

    @property
    def base(self) -> str:
        """The FHIR base URL."""
        return f"http://{HOST}:{self.port}/fhir"

    def log_tail(self, n: int = 2000) -> str:
        """The end of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server and its workers."""
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


def run_child(args: list[str], *, timeout: float, env: dict[str, str] | None = None) -> str:
    """Run a helper process in its own session; returns its stdout; killed on timeout or interruption."""
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env or dict(os.environ),
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        stop_process(proc, timeout=5)
        raise
    if proc.returncode != 0:
        raise RuntimeError(
            f"{Path(args[1]).name} exited with {proc.returncode}: {err.decode(errors='replace')[-2000:]}"
        )
    return out.decode()


def machine(db_url: str | None) -> dict[str, str]:
    """nproc, CPU model, memory, Python and PostgreSQL versions."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    pg = "unknown"
    if db_url:
        with psycopg.connect(db_url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            pg = str(row[0]) if row else "unknown"
    return {
        "commit": _commit(),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg,
    }


def _commit() -> str:
    """The checked-out commit, and whether src/ has uncommitted changes (the code that was measured)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], cwd=root, capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    name = head.stdout.strip() or "unknown"
    return f"{name} + uncommitted changes in src/" if dirty.stdout.strip() else name


def write_section(path: Path, title: str, text: str) -> None:
    """Replace (or append) one benchmark's section of a results file, re-read right before writing.

    Only the generated part is replaced: the section's hand-written ### subsections (re-runs, analyses) are
    kept below the new text.
    """
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    start = old.find(title + "\n")
    if start < 0:
        path.write_text(old.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n", encoding="utf-8")
        return
    end = old.find("\n## ", start + len(title))
    tail = old[end + 1 :] if end >= 0 else ""
    mine = old[start : end if end >= 0 else len(old)]
    hand = mine.find("\n### ")
    kept = "\n" + mine[hand + 1 :].rstrip("\n") + "\n" if hand >= 0 else ""
    new = old[:start] + text.rstrip("\n") + "\n" + kept + ("\n" + tail if tail else "")
    path.write_text(new, encoding="utf-8")
