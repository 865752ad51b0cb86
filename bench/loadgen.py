"""Closed-loop HTTP/1.1 load generator: N keep-alive connections on asyncio streams, one process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workload import OPS, Workload


@dataclass(slots=True)
class Response:
    """Status, headers (lower-cased names) and body of one HTTP response."""

    status: int
    headers: dict[str, str]
    body: bytes


class HttpConnection:
    """One persistent HTTP/1.1 connection to 127.0.0.1 (no TLS, no proxies, no redirects)."""

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def request(self, raw: bytes) -> Response:
        """Send one serialised request and read its complete response."""
        reader, writer = await self._connect()
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked(reader)
        else:
            body = b""
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Response(status, headers, body)

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    async def close(self) -> None:
        """Close the socket (idempotent)."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


def serialise(method: str, path: str, host: str, body: bytes | None = None) -> bytes:
    """An HTTP/1.1 request with the FHIR JSON headers the benchmark always sends."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Accept: application/fhir+json"]
    if body is not None:
        head += ["Content-Type: application/fhir+json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")


@dataclass(slots=True)
class Stats:
    """Latencies (ns) of successful and failed requests, and the first failures seen."""

    latencies_ns: list[int] = field(default_factory=list)
    non2xx: int = 0
    transport_errors: int = 0
    samples: list[str] = field(default_factory=list)

    def failure(self, text: str) -> None:
        """Record a failure sample (a few are kept for the report)."""
        if len(self.samples) < 5:
            self.samples.append(text[:300])


def percentile(sorted_values: list[int], pct: float) -> int:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0
    rank = math.ceil(pct / 100 * len(sorted_values))
    return sorted_values[max(0, min(len(sorted_values), rank) - 1)]


async def _client(
    host: str, port: int, work: Workload, op: str, deadline: float, stats: Stats, rng: random.Random, cid: int
) -> None:
    conn = HttpConnection(host, port)
    hostport = f"{host}:{port}"
    n = 0
    try:
        while time.perf_counter() < deadline:
            n += 1
            method, path, body = work.request(op, rng, f"{cid}-{n}")
            raw = serialise(method, path, hostport, body)
            start = time.perf_counter_ns()
            try:
                resp = await conn.request(raw)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                stats.transport_errors += 1
                stats.failure(f"{method} {path}: {type(exc).__name__}: {exc}")
                await conn.close()
                continue
            stats.latencies_ns.append(time.perf_counter_ns() - start)
            if not 200 <= resp.status < 300:
                stats.non2xx += 1
                stats.failure(f"{method} {path}: {resp.status} {resp.body[:200].decode('utf-8', 'replace')}")
    finally:
        await conn.close()


async def run_load(
    host: str, port: int, work: Workload, op: str, clients: int, duration: float, seed: int = 1
) -> dict[str, Any]:
    """Drive `clients` closed-loop connections for `duration` seconds; returns the summary dict."""
    stats = Stats()
    start = time.perf_counter()
    deadline = start + duration
    rngs = [random.Random(seed * 1000 + i) for i in range(clients)]
    await asyncio.gather(
        *(_client(host, port, work, op, deadline, stats, rngs[i], i) for i in range(clients))
    )
    elapsed = time.perf_counter() - start
    lat = sorted(stats.latencies_ns)
    return {
        "requests": len(lat) + stats.transport_errors,
        "duration_s": elapsed,
        "non2xx": stats.non2xx,
        "transport_errors": stats.transport_errors,
        "p50_ms": percentile(lat, 50) / 1e6,
        "p99_ms": percentile(lat, 99) / 1e6,
        "max_ms": (lat[-1] if lat else 0) / 1e6,
        "samples": stats.samples,
    }


def _run(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run on uvloop (it ships with uvicorn[standard]); plain asyncio works too, only slower."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    """Command line used by crud.py: an optional warm-up, then one measured run, JSON summary on stdout."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--op", choices=OPS, required=True)
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--warmup", type=float, default=0.0, help="unmeasured seconds first")
    ap.add_argument("--workload", type=Path, required=True, help="workload JSON written by crud.py")
    args = ap.parse_args(argv)
    work = Workload.load(args.workload)
    if args.warmup > 0:
        _run(run_load("127.0.0.1", args.port, work, args.op, args.clients, args.warmup, seed=7))
    result = _run(run_load("127.0.0.1", args.port, work, args.op, args.clients, args.duration))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
