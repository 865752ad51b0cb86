"""Transaction-bundle load generator: N keep-alive HTTP/1.1 clients on asyncio, 127.0.0.1 only.

Run by bench/ingest.py as its own process; reads the bundles, posts each one once per pass (largest
first, so that the run does not end on one big bundle), and prints one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

HOST = "127.0.0.1"


@dataclass(slots=True)
class Reply:
    """Status and body of one HTTP response."""

    status: int
    body: bytes


class Client:
    """One persistent HTTP/1.1 connection to the server on 127.0.0.1."""

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, content_type: str = "application/fhir+json") -> Reply:
        """POST a body and read the whole response (reconnecting if the server closed the connection)."""
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port, limit=1 << 24)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nContent-Type: {content_type}\r\n"
            f"Accept: application/fhir+json\r\nPrefer: return=minimal\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head)
        self.writer.write(body)
        await self.writer.drain()
        return await self._read()

    async def _read(self) -> Reply:
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if value:
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(data[:-2])
            body = b"".join(parts)
        else:
            body = await self.reader.read()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Reply(status, body)

    async def close(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


@dataclass(slots=True)
class Bundle:
    """One transaction bundle to post."""

    name: str
    body: bytes
    entries: int


def load(files: list[Path]) -> list[Bundle]:
    """Read and count the bundles (decompressed once, before the clock starts)."""
    out = []
    for path in files:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as handle:
            body = handle.read()
        out.append(Bundle(path.name, body, len(orjson.loads(body).get("entry", []))))
    return out


async def run(
    port: int, bundles: list[Bundle], concurrency: int, passes: int, warmup: int
) -> dict[str, object]:
    """Warm the workers up, then post every bundle `passes` times from `concurrency` clients."""
    smallest = min(bundles, key=lambda b: b.entries)
    warm = [Client(port) for _ in range(warmup)]
    replies = await asyncio.gather(*(c.post("/fhir/", smallest.body) for c in warm))
    for c in warm:
        await c.close()
    if any(r.status != 200 for r in replies):
        bad = next(r for r in replies if r.status != 200)
        return {"error": f"warm-up answered {bad.status}: {bad.body[:300].decode('utf-8', 'replace')}"}
    queue: asyncio.Queue[Bundle] = asyncio.Queue()
    for _ in range(passes):
        for b in sorted(bundles, key=lambda b: -b.entries):
            queue.put_nowait(b)
    latencies: list[float] = []
    failures: list[str] = []
    stored = 0

    async def worker() -> None:
        nonlocal stored
        client = Client(port)
        try:
            while True:
                try:
                    b = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t0 = time.perf_counter()
                reply = await client.post("/fhir/", b.body)
                latencies.append(time.perf_counter() - t0)
                if reply.status == 200:
                    stored += b.entries
                else:
                    failures.append(f"{b.name}: {reply.status} {reply.body[:200].decode('utf-8', 'replace')}")
        finally:
            await client.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    latencies.sort()
    return {
        "resources": stored,
        "requests": len(latencies),
        "failures": failures[:10],
        "failed": len(failures),
        "wall_s": wall,
        "p50_s": latencies[len(latencies) // 2] if latencies else None,
        "max_s": latencies[-1] if latencies else None,
        "warmup_resources": smallest.entries * warmup,
    }


def main() -> None:
    """Parse arguments, run, print the JSON result."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--passes", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--limit", type=int, default=0, help="Only the first N bundles (0: all).")
    ap.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args()
    files = args.files[: args.limit] if args.limit else args.files
    bundles = load(files)
    result = asyncio.run(run(args.port, bundles, args.concurrency, args.passes, args.warmup))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
