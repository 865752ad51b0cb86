"""CRUD benchmark: healthbook over HTTP against a bare SQL baseline, on PostgreSQL and SQLite.

Run `.venv/bin/python bench/crud.py` (or `make bench`); `--help` lists the options. Everything it
starts (PostgreSQL, servers, load generators) listens on or talks to 127.0.0.1 only and is stopped
on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from cpu import CpuMeter, usage
from loadgen import HttpConnection, serialise
from workload import CREATE_TEMPLATE, OPS, Workload, fill, seed_identifier

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = Path(sys.executable).parent
SECTION = "## CRUD (bench/crud.py)"
LABELS = {"create": "create", "read": "read", "update": "update", "cond_read": "conditional read"}
# The targets of the brief: PostgreSQL, 32 clients.
TARGETS = {"read": 1500.0, "create": 600.0}
TARGET_P99_MS = 50.0
TARGET_CLIENTS = 32
BACKEND_NOTES = {
    "postgres": "PostgreSQL from healthbook.testing.postgres.TempPostgres: fsync and synchronous_commit on,"
    " shared_buffers 256MB; the schema is migrated with `healthbook db upgrade`.",
    "sqlite": "SQLite uses 2 workers as well: reads are CPU-bound Python and use both cores, while writers"
    " queue on SQLite's file lock whatever the worker count (BEGIN IMMEDIATE with busy_timeout, whose"
    " sleep-and-retry is why write p99 reaches seconds in the baseline too). Override with"
    " `--sqlite-workers`.",
}
LOADAVG_AT_START = (
    " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
)


# ---- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(port: int, path: str, timeout: float = 2.0) -> int:
    """Status of a GET to 127.0.0.1 (never through a proxy)."""
    try:
        with _NO_PROXY.open(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class Server:
    """A server subprocess in its own session, so that its whole process group can be stopped."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, logdir: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.port = port
        self.log_path = logdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        """Start and wait until /fhir/metadata answers 200."""
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=ROOT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                if http_get(self.port, "/fhir/metadata") == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} did not answer /fhir/metadata in {timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after 15 s."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Workers left behind in the group (the supervisor died first) go too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


# ---- load ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Cell:
    """One measured run: an interaction at a concurrency against one server."""

    op: str
    clients: int
    target: str
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    samples: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


class LoadClient:
    """Runs one cell with wrk (preferred) or bench/loadgen.py, each in its own process."""

    def __init__(self, kind: str, workload_path: Path, warmup: float, duration: float):
        self.kind = kind
        self.workload_path = workload_path
        self.warmup = warmup
        self.duration = duration

    def describe(self) -> str:
        """What generates the load, for the report."""
        if self.kind == "wrk":
            return "wrk (1 thread, Lua script bench/crud.lua)"
        return "bench/loadgen.py (one asyncio process, raw keep-alive HTTP/1.1 connections)"

    def run(self, port: int, op: str, clients: int, target: str, meter: CpuMeter | None = None) -> Cell:
        """Warm up, then measure for the fixed duration (CPU use is taken over the measured part)."""
        if self.warmup > 0:
            self._load(port, op, clients, self.warmup)
        before = meter.snapshot() if meter else None
        data = self._load(port, op, clients, self.duration)
        cpu = usage(before, meter.snapshot()) if meter and before else {}
        return Cell(
            op=op,
            clients=clients,
            target=target,
            requests=int(data["requests"]),
            duration_s=float(data["duration_s"]),
            p50_ms=float(data["p50_ms"]),
            p99_ms=float(data["p99_ms"]),
            max_ms=float(data["max_ms"]),
            errors=int(data["non2xx"]) + int(data["transport_errors"]),
            samples=[s for s in data.get("samples", []) if s],
            cpu=cpu,
        )

    def _load(self, port: int, op: str, clients: int, seconds: float) -> dict[str, Any]:
        if self.kind == "wrk":
            return self._wrk(port, op, clients, seconds)
        argv = [
            sys.executable, str(BENCH / "loadgen.py"), "--port", str(port), "--op", op,
            "--clients", str(clients), "--duration", str(seconds), "--workload", str(self.workload_path),
        ]  # fmt: skip
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=seconds * 4 + 60)
        if out.returncode != 0:
            raise RuntimeError(f"loadgen failed: {out.stderr.strip()[-2000:]}")
        data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return data

    def _wrk(self, port: int, op: str, clients: int, seconds: float) -> dict[str, Any]:
        argv = [
            "wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "-s", str(BENCH / "crud.lua"), f"http://127.0.0.1:{port}",
            "--", op, str(self.workload_path.with_suffix(".txt")),
        ]  # fmt: skip
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=seconds * 4 + 60)
        for line in out.stdout.splitlines():
            if line.startswith("BENCH-JSON "):
                data: dict[str, Any] = json.loads(line[len("BENCH-JSON ") :])
                return data
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip()[-2000:]}{out.stdout[-2000:]}")


async def _seed(port: int, count: int, concurrency: int = 16) -> list[tuple[str, str]]:
    """POST `count` Patients through healthbook; returns (id, identifier value) pairs."""
    found: list[tuple[str, str]] = []
    todo = list(range(count))
    host = f"127.0.0.1:{port}"

    async def worker() -> None:
        conn = HttpConnection("127.0.0.1", port)
        try:
            while todo:
                n = todo.pop()
                ident = seed_identifier(n)
                body = fill(CREATE_TEMPLATE, ident=ident, n=str(n))
                resp = await conn.request(serialise("POST", "/fhir/Patient", host, body))
                if resp.status != 201:
                    raise RuntimeError(f"seeding failed: {resp.status} {resp.body[:300]!r}")
                res_id = resp.headers["location"].split("/fhir/Patient/", 1)[1].split("/", 1)[0]
                found.append((res_id, ident))
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    found.sort(key=lambda pair: pair[1])
    return found


# ---- the run ------------------------------------------------------------------------------------


@dataclass(slots=True)
class BackendResult:
    """All cells of one backend plus how it was set up."""

    name: str
    label: str
    workers: int
    seeded: int
    seed_s: float
    cells: list[Cell] = field(default_factory=list)

    def cell(self, op: str, clients: int, target: str) -> Cell | None:
        """The cell measured for these coordinates, if any."""
        for c in self.cells:
            if (c.op, c.clients, c.target) == (op, clients, target):
                return c
        return None


def server_env(url: str) -> dict[str, str]:
    """The environment of a server subprocess: ours plus the database URL."""
    env = dict(os.environ)
    env["HEALTHBOOK_DATABASE_URL"] = url
    env["HEALTHBOOK_AUTH"] = "off"  # the engine's own speed: anonymous requests, no token checks
    env["BENCH_DATABASE_URL"] = url
    env.setdefault("HEALTHBOOK_LOG_LEVEL", "warning")
    return env


def healthbook_argv(port: int, workers: int) -> list[str]:
    """`healthbook serve` on the loopback interface."""
    exe = shutil.which("healthbook", path=str(VENV_BIN)) or str(VENV_BIN / "healthbook")
    return [exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]


def baseline_argv(port: int, workers: int) -> list[str]:
    """uvicorn serving bench/baseline_app.py with the same number of workers."""
    return [
        sys.executable, "-m", "uvicorn", "baseline_app:create_app", "--factory", "--app-dir", str(BENCH),
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def run_backend(
    name: str,
    url: str,
    label: str,
    workers: int,
    args: argparse.Namespace,
    tmp: Path,
    stack: contextlib.ExitStack,
    pg_data: Path | None = None,
) -> BackendResult:
    """Start both servers on one database, seed, and measure every cell (healthbook, then baseline)."""
    env = server_env(url)
    hb_port, base_port = free_port(), free_port()
    hb = Server(f"healthbook-{name}", healthbook_argv(hb_port, workers), env, hb_port, tmp)
    base = Server(f"baseline-{name}", baseline_argv(base_port, workers), env, base_port, tmp)
    stack.callback(hb.stop)
    stack.callback(base.stop)
    say(f"[{name}] starting healthbook serve --workers {workers} on :{hb.port}")
    hb.start()
    say(f"[{name}] starting baseline (uvicorn, {workers} workers) on :{base.port}")
    base.start()
    meter = CpuMeter()
    if hb.proc and base.proc:
        meter.add_session(hb.proc.pid, "healthbook")
        meter.add_session(base.proc.pid, "baseline")
    if pg_data is not None:
        meter.set_postgres(pg_data)
    say(f"[{name}] seeding {args.seed} Patients through healthbook …")
    t0 = time.perf_counter()
    ids = asyncio.run(_seed(hb.port, args.seed))
    seed_s = time.perf_counter() - t0
    say(f"[{name}] seeded in {seed_s:.1f} s ({args.seed / seed_s:.0f}/s with 16 connections)")
    work_path = tmp / f"workload-{name}.json"
    Workload(ids).save(work_path)
    client = LoadClient(args.client, work_path, args.warmup, args.duration)
    result = BackendResult(name, label, workers, args.seed, seed_s)
    for op in args.ops:
        for clients in args.clients:
            for target, server in (("healthbook", hb), ("baseline", base)):
                if args.wait_quiet is not None:
                    wait_quiet(meter, args.wait_quiet, name)
                cell = client.run(server.port, op, clients, target, meter)
                result.cells.append(cell)
                err = f"  ERRORS {cell.errors}: {cell.samples[:1]}" if cell.errors else ""
                say(
                    f"[{name}] {LABELS[op]:<16} c={clients:<3} {target:<10} {cell.rps:8.0f} req/s"
                    f"  p50 {cell.p50_ms:7.2f} ms  p99 {cell.p99_ms:7.2f} ms  CPU% {cpu_text(cell)}{err}"
                )
    if args.profile:
        profile_server(name, hb, client, args, Path(args.profile))
    hb.stop()
    base.stop()
    return result


def wait_quiet(meter: CpuMeter, limit: float, name: str, max_wait: float = 120.0) -> None:
    """Wait until other processes use less than `limit` % of a core (checked over 1 s), at most max_wait."""
    deadline = time.monotonic() + max_wait
    while True:
        before = meter.snapshot()
        time.sleep(1.0)
        other = usage(before, meter.snapshot())["other"]
        if other < limit:
            return
        if time.monotonic() > deadline:
            say(f"[{name}] other processes still use {other:.0f} % of a core: measuring anyway")
            return


def profile_server(name: str, hb: Server, client: LoadClient, args: argparse.Namespace, outdir: Path) -> None:
    """py-spy the healthbook workers while each interaction runs at the highest concurrency."""
    spy = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
    if spy is None or hb.proc is None:
        say("py-spy not found: `.venv/bin/pip install py-spy` to profile (skipped)")
        return
    outdir.mkdir(parents=True, exist_ok=True)
    clients = max(args.clients)
    for op in ("read", "create", "update", "cond_read"):
        if op not in args.ops:
            continue
        raw = outdir / f"{name}-{op}.txt"
        seconds = max(3, round(args.duration))
        spy_argv = [
            spy, "record", "--pid", str(hb.proc.pid), "--subprocesses", "--rate", "200", "--format", "raw",
            "--duration", str(seconds + 1), "--output", str(raw), "--gil",
        ]  # fmt: skip
        with subprocess.Popen(spy_argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
            try:
                time.sleep(0.5)
                profiled = LoadClient(client.kind, client.workload_path, 0, seconds)
                profiled.run(hb.port, op, clients, "healthbook")
                proc.wait(seconds + 30)
            finally:
                if proc.poll() is None:
                    proc.kill()
        if raw.exists():
            report = summarise_profile(raw)
            (outdir / f"{name}-{op}-summary.txt").write_text(report)
            say(f"[{name}] profile of {op} at c={clients}: {raw} (summary beside it)\n{report[:2500]}")
        else:
            say(f"[{name}] py-spy wrote no profile for {op}")


def summarise_profile(raw: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    self_n: dict[str, int] = {}
    incl_n: dict[str, int] = {}
    layer_n: dict[str, int] = {}
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        n = int(count_s)
        total += n
        frames = [re.sub(r" \((.*?):\d+\)$", r" (\1)", f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        self_n[frames[-1]] = self_n.get(frames[-1], 0) + n
        layer = _layer(frames[-1])
        layer_n[layer] = layer_n.get(layer, 0) + n
        for f in set(frames):
            incl_n[f] = incl_n.get(f, 0) + n
    if total == 0:
        return "no samples\n"

    def table(counts: dict[str, int]) -> list[str]:
        rows = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return [f"{100 * n / total:6.1f}%  {_short(f)}" for f, n in rows]

    ours = {f: n for f, n in incl_n.items() if "healthbook/" in f or "/src/healthbook" in f}
    lines = [
        f"{total} samples holding the GIL (py-spy --gil: Python CPU time of the workers)",
        "",
        "self time by package:",
        *(f"{100 * n / total:6.1f}%  {k}" for k, n in sorted(layer_n.items(), key=lambda kv: -kv[1])),
        "",
        "self time:",
        *table(self_n),
        "",
        "inclusive time, healthbook functions:",
        *table(ours),
        "",
        "inclusive time, everything:",
        *table({f: n for f, n in incl_n.items() if not _plumbing(f)}),
    ]
    return "\n".join(lines) + "\n"


def _layer(frame: str) -> str:
    """The package of a frame: its file's top directory as py-spy shortens it ('fastapi/routing.py')."""
    m = re.search(r"\(([^()]*)\)$", frame)
    path = m.group(1) if m else ""
    path = re.sub(r"^.*/(site-packages|src)/", "", path)
    top = path.split("/", 1)[0] if "/" in path else path.rsplit(".", 1)[0]
    return top or "native"


def _plumbing(frame: str) -> bool:
    """Frames every sample passes through (process and thread start-up)."""
    return any(
        p in frame for p in ("multiprocessing/", "spawn_main", "(<string>)", "threading.py", "uvicorn/_")
    )


def _short(frame: str) -> str:
    return re.sub(r"/\S*/site-packages/", "", re.sub(r"/\S*/src/healthbook/", "healthbook/", frame))


# ---- reporting ----------------------------------------------------------------------------------


def say(text: str) -> None:
    """Progress output (flushed: the run takes minutes)."""
    print(text, flush=True)  # noqa: T201


def ncpu() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0))


def machine_info(pg_version: str | None) -> list[tuple[str, str]]:
    """What the figures were measured on."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    info = [
        ("nproc", str(ncpu())),
        ("CPU", cpu),
        ("memory", mem),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
        ("PostgreSQL", pg_version or "not run"),
        ("SQLite", sqlite3.sqlite_version),
        ("healthbook commit", commit or "unknown"),
        ("load average at start", LOADAVG_AT_START),
    ]
    if shutil.which("wrk"):
        ver = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        info.append(("wrk", (ver.stdout or ver.stderr).split(" [")[0].strip()))
    return info


def cpu_text(cell: Cell) -> str:
    """Server / PostgreSQL / load generator / other processes, in percent of one core."""
    if not cell.cpu:
        return "-"
    db = f"{cell.cpu['postgres']:.0f}" if "postgres" in cell.cpu else "-"
    parts = [f"{cell.cpu.get(cell.target, 0.0):.0f}", db, f"{cell.cpu.get('client', 0.0):.0f}"]
    return "/".join([*parts, f"{cell.cpu.get('other', 0.0):.0f}"])


def _fmt_rps(v: float) -> str:
    return f"{v:,.0f}"


def target_note(result: BackendResult, op: str, clients: int, cell: Cell) -> str:
    """The brief's target for PostgreSQL at 32 clients, with a verdict."""
    if result.name != "postgres" or clients != TARGET_CLIENTS or op not in TARGETS:
        return ""
    ok = cell.rps >= TARGETS[op] and cell.p99_ms < TARGET_P99_MS and cell.errors == 0
    return f"≥{TARGETS[op]:,.0f}/s, p99<{TARGET_P99_MS:.0f} ms: {'met' if ok else 'MISSED'}"


def cost_text(cell: Cell) -> str:
    """CPU milliseconds per request: server process(es) + PostgreSQL."""
    if not cell.cpu or cell.rps <= 0:
        return "-"
    per = 10.0 / cell.rps  # percent of a core -> ms per request
    server = f"{cell.cpu.get(cell.target, 0.0) * per:.2f}"
    return f"{server}+{cell.cpu['postgres'] * per:.2f}" if "postgres" in cell.cpu else server


def rows(result: BackendResult) -> list[list[str]]:
    """Table rows: interaction × clients, healthbook beside the baseline."""
    out: list[list[str]] = []
    for op in dict.fromkeys(c.op for c in result.cells):
        for clients in dict.fromkeys(c.clients for c in result.cells if c.op == op):
            hb = result.cell(op, clients, "healthbook")
            base = result.cell(op, clients, "baseline")
            if hb is None:
                continue
            out.append(
                [
                    LABELS[op],
                    str(clients),
                    _fmt_rps(hb.rps),
                    f"{hb.p50_ms:.2f}",
                    f"{hb.p99_ms:.2f}",
                    _fmt_rps(base.rps) if base else "-",
                    f"{base.p50_ms:.2f}" if base else "-",
                    f"{base.p99_ms:.2f}" if base else "-",
                    f"{hb.rps / base.rps:.2f}" if base and base.rps else "-",
                    f"{hb.errors}/{base.errors if base else '-'}",
                    cost_text(hb),
                    cost_text(base) if base else "-",
                    cpu_text(hb),
                    target_note(result, op, clients, hb),
                ]
            )
    return out


HEADERS = [
    "interaction",
    "clients",
    "req/s",
    "p50 ms",
    "p99 ms",
    "base req/s",
    "base p50",
    "base p99",
    "hb/base",
    "errors hb/base",
    "CPU ms/req hb",
    "CPU ms/req base",
    "CPU% hb/db/load/other",
    "target",
]


def text_table(result: BackendResult) -> str:
    """The console table of one backend."""
    body = rows(result)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(HEADERS)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in (0, len(HEADERS) - 1) else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(HEADERS), sep, *(line(r) for r in body)])


def markdown(
    results: list[BackendResult], info: list[tuple[str, str]], args: argparse.Namespace, client: str
) -> str:
    """The CRUD section of bench/RESULTS.md."""
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        SECTION,
        "",
        f"Measured {when} with `{' '.join(['.venv/bin/python', 'bench/crud.py', *sys.argv[1:]])}`"
        " (`make bench` prints the same tables without writing this file).",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in info),
        "",
        f"Method: {args.seed:,} Patients are seeded through healthbook (POST); then every cell runs"
        f" {args.warmup:g} s of warm-up and {args.duration:g} s of closed-loop load with N keep-alive"
        f" connections from {client}, over loopback. *create* POSTs a new Patient, *read* GETs a random"
        " seeded Patient, *update* PUTs a changed version of a random seeded Patient, *conditional read*"
        " GETs `Patient?identifier=system|value` of a random seeded Patient. Errors count every non-2xx"
        " answer and every transport failure. *baseline* is `bench/baseline_app.py`: a bare Starlette app"
        " under uvicorn with the same number of workers, running healthbook's SQL statements (same"
        " tables, statements, transactions and driver; blocking calls in the thread pool) but no FastAPI,"
        " SQLAlchemy, validation, JSON work or search-index maintenance. *hb/base* is healthbook's req/s"
        " divided by the baseline's. For create and update the baseline writes no search-index rows"
        " (healthbook writes 24 for this Patient, and on update first deletes the old ones from all 7"
        " index tables), so there the ratio mixes Python overhead with index-maintenance SQL.",
        "",
        "Load generator, servers and PostgreSQL share the machine's cores. *CPU% hb/db/load/other* gives,"
        " for the measured seconds of the healthbook cell, the CPU used by healthbook / PostgreSQL / the"
        " load generator /"
        f" all other processes, in percent of one core (the machine has {ncpu() * 100} %)."
        " A large 'other' share means something else was running and the figures are low. *CPU ms/req*"
        " is the CPU time per request of the server's processes + PostgreSQL's, a figure that other load"
        " disturbs much less than req/s.",
        "",
    ]
    for r in results:
        out += [
            f"### {r.label}",
            "",
            f"`healthbook serve --workers {r.workers}`; seeding {r.seeded:,} Patients took {r.seed_s:.1f} s."
            f" {BACKEND_NOTES.get(r.name, '')}",
            "",
            "| " + " | ".join(HEADERS) + " |",
            "|"
            + "|".join("---" if i in (0, len(HEADERS) - 1) else "---:" for i in range(len(HEADERS)))
            + "|",
            *("| " + " | ".join(row) + " |" for row in rows(r)),
            "",
        ]
    out += [
        f"Targets (PostgreSQL, {TARGET_CLIENTS} clients): reads ≥ {TARGETS['read']:,.0f}/s and creates"
        f" ≥ {TARGETS['create']:,.0f}/s, each with p99 < {TARGET_P99_MS:.0f} ms.",
        "",
    ]
    return "\n".join(out)


def write_markdown(path: Path, section: str) -> None:
    """Replace the CRUD section of the file (up to the next '## ' heading), or append it."""
    old = path.read_text() if path.exists() else "# healthbook benchmarks\n"
    lines = old.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == SECTION), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = (
            "\n".join([*lines[:start], *section.rstrip("\n").splitlines(), "", *lines[end:]]).rstrip("\n")
            + "\n"
        )
    path.write_text(new)


# ---- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description="healthbook CRUD benchmark (healthbook vs a bare SQL baseline).")
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--clients", default="1,4,16,32", help="comma-separated concurrency levels")
    ap.add_argument("--ops", default=",".join(OPS), help=f"comma-separated subset of {','.join(OPS)}")
    ap.add_argument(
        "--duration", type=float, default=None, help="measured seconds per cell (default 5, quick 2)"
    )
    ap.add_argument(
        "--warmup", type=float, default=None, help="warm-up seconds per cell (default 1, quick 1)"
    )
    ap.add_argument("--quick", action="store_true", help="short cells and a smaller seed")
    ap.add_argument("--seed", type=int, default=None, help="Patients to seed (default 2000, quick 500)")
    ap.add_argument("--workers", type=int, default=2, help="server workers on PostgreSQL")
    ap.add_argument("--sqlite-workers", type=int, default=2, help="server workers on SQLite")
    ap.add_argument("--client", choices=("auto", "wrk", "python"), default="auto", help="load generator")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        metavar="PCT",
        help="before each cell, wait (up to 2 min) until other processes use < PCT %% of a core",
    )
    ap.add_argument("--markdown", metavar="PATH", help="write the results section into this Markdown file")
    ap.add_argument("--profile", metavar="DIR", help="afterwards, py-spy the healthbook workers under load")
    args = ap.parse_args(argv)
    args.clients = [int(c) for c in args.clients.split(",") if c.strip()]
    args.ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    for op in args.ops:
        if op not in OPS:
            ap.error(f"unknown interaction {op!r}")
    if any(c < 1 for c in args.clients):
        ap.error("--clients must be positive")
    args.duration = args.duration if args.duration is not None else (2.0 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else 1.0
    args.seed = args.seed if args.seed is not None else (500 if args.quick else 2000)
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"
        if args.client == "python":
            say("wrk not found (Debian: `apt-get install -y wrk`): using the Python load generator instead")
    elif args.client == "wrk" and not shutil.which("wrk"):
        ap.error("wrk is not installed: `apt-get install -y wrk`, or use --client python")
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def postgres_version(url: str) -> str:
    """server_version of a running PostgreSQL."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split(" ")[0] if row else "unknown"


@contextlib.contextmanager
def temp_postgres() -> Iterator[tuple[str, Path]]:
    """A migrated throw-away PostgreSQL database (URL, data directory); stopped and removed afterwards."""
    from healthbook.testing.postgres import TempPostgres

    pg = TempPostgres()
    try:
        url = pg.start()
        env = server_env(url)
        exe = shutil.which("healthbook", path=str(VENV_BIN)) or str(VENV_BIN / "healthbook")
        up = subprocess.run([exe, "db", "upgrade"], env=env, capture_output=True, text=True, check=False)
        if up.returncode != 0:
            raise RuntimeError(f"healthbook db upgrade failed: {up.stderr or up.stdout}")
        yield url, pg.data
    finally:
        pg.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 if any request failed."""
    args = parse_args(argv)
    # Ctrl-C and SIGTERM both unwind through the cleanup below (SIGINT explicitly: a shell may
    # start background jobs with it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    results: list[BackendResult] = []
    pg_version: str | None = None
    client = LoadClient(args.client, Path(), args.warmup, args.duration).describe()
    say(f"load generator: {client}; {args.warmup:g} s warm-up + {args.duration:g} s per cell")
    try:
        with (
            tempfile.TemporaryDirectory(prefix="healthbook-bench-") as tmpdir,
            contextlib.ExitStack() as stack,
        ):
            tmp = Path(tmpdir)
            if args.backend in ("postgres", "both"):
                say("starting a private PostgreSQL …")
                url, pg_data = stack.enter_context(temp_postgres())
                pg_version = postgres_version(url)
                label = f"PostgreSQL {pg_version}"
                results.append(run_backend("postgres", url, label, args.workers, args, tmp, stack, pg_data))
            if args.backend in ("sqlite", "both"):
                url = f"sqlite:///{tmp / 'bench.db'}"
                label = f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL)"
                results.append(run_backend("sqlite", url, label, args.sqlite_workers, args, tmp, stack))
    except KeyboardInterrupt:
        say("interrupted: servers and PostgreSQL stopped")
        return 130
    for r in results:
        say(f"{r.label} — healthbook serve --workers {r.workers}\n{text_table(r)}\n")
    say(
        f"Targets (PostgreSQL, {TARGET_CLIENTS} clients): reads ≥ {TARGETS['read']:,.0f}/s, creates ≥"
        f" {TARGETS['create']:,.0f}/s, p99 < {TARGET_P99_MS:.0f} ms."
    )
    failed = [c for r in results for c in r.cells if c.errors]
    for c in failed:
        say(f"ERRORS: {c.target} {c.op} c={c.clients}: {c.errors} failed requests, e.g. {c.samples[:2]}")
    if args.markdown:
        write_markdown(Path(args.markdown), markdown(results, machine_info(pg_version), args, client))
        say(f"wrote the CRUD section of {args.markdown}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
