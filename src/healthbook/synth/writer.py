"""Writing the population: NDJSON per type or a transaction Bundle per citizen, in parallel, reproducibly."""

from __future__ import annotations

import collections
import gc
import multiprocessing
import os
import re
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from healthbook.synth.generate import Config, Generator, Resource
from healthbook.synth.population import BLOCK

FORMATS = ("ndjson", "bundles", "xml130")
FACILITY_BUNDLE_SIZE = 5000  # entries per facility bundle (the server accepts up to 20,000)
_REF = re.compile(rb'"reference":"([A-Za-z]+)/([0-9a-f-]{36})"')


@dataclass
class Summary:
    """What a run wrote."""

    citizens: int = 0
    resources: int = 0
    bytes: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    by_type: dict[str, int] = field(default_factory=dict)

    def add(self, rtype: str, count: int, size: int) -> None:
        """Count resources of a type and their bytes."""
        self.by_type[rtype] = self.by_type.get(rtype, 0) + count
        self.resources += count
        self.bytes += size


# Per-process state, set by _init in each worker (or in the parent when working alone).
_GEN: Generator | None = None
MAX_PENDING = 3  # rendered blocks a worker may hold while an earlier block is still being made elsewhere


def _init(config: Config) -> None:
    global _GEN
    _GEN = Generator(config)
    gc.freeze()  # the admin units and facility network live for the whole run: keep them out of collections


def _gen() -> Generator:
    assert _GEN is not None
    return _GEN


@dataclass
class Rendered:
    """One block as NDJSON text per resource type, with its counts and the CPU time it took."""

    block: int
    text: dict[str, bytes]
    counts: dict[str, int]
    cpu: float


def render_ndjson(block: int) -> Rendered:
    """One block as NDJSON per resource type (types in name order)."""
    started = time.process_time()
    lines: dict[str, list[bytes]] = {}
    for record in _gen().block(block):
        for res in record:
            rtype = res["resourceType"]
            bucket = lines.get(rtype)
            if bucket is None:
                bucket = lines[rtype] = []
            bucket.append(orjson.dumps(res))
    text = {t: b"\n".join(v) + b"\n" for t, v in sorted(lines.items())}
    return Rendered(block, text, {t: len(v) for t, v in lines.items()}, time.process_time() - started)


def _append(out: Path, rendered: Rendered) -> None:
    for rtype, data in rendered.text.items():
        with open(out / f"{rtype}.ndjson", "ab") as handle:
            handle.write(data)


def _ndjson_worker(k: int, n: int, config: Config, out: Path, turn: Any, cond: Any, report: Any) -> None:
    """Worker k of n: renders blocks k, k+n, ... and appends each one when all earlier blocks are written.

    Blocks are appended strictly in order, so the files do not depend on the number of workers; a worker
    keeps up to MAX_PENDING rendered blocks instead of waiting, and no data goes through the parent.
    """
    try:
        _init(config)
        pending: collections.deque[Rendered] = collections.deque()
        blocks = list(range(k, config.blocks, n))
        for position, block in enumerate(blocks):
            pending.append(render_ndjson(block))
            last = position == len(blocks) - 1
            while pending:
                head = pending[0]
                with cond:
                    if turn.value != head.block:
                        if not (last or len(pending) > MAX_PENDING):
                            break
                        cond.wait_for(lambda head=head: turn.value == head.block)
                _append(out, head)
                with cond:
                    turn.value = head.block + 1
                    cond.notify_all()
                pending.popleft()
                report.put((head.block, head.counts, {t: len(v) for t, v in head.text.items()}, head.cpu))
    except BaseException:
        report.put((-1, traceback.format_exc(), {}, 0.0))
        raise


def _ndjson_blocks(
    config: Config, out: Path, workers: int
) -> Iterator[tuple[int, dict[str, int], dict[str, int], float]]:
    """(block, counts, sizes, cpu) of every block as it is appended, by `workers` processes or this one."""
    if workers <= 1 or config.blocks <= 1:
        _init(config)
        for b in range(config.blocks):
            r = render_ndjson(b)
            _append(out, r)
            yield b, r.counts, {t: len(v) for t, v in r.text.items()}, r.cpu
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx: Any = multiprocessing.get_context(method)  # typeshed's BaseContext lacks Process
    turn, cond, report = ctx.Value("q", 0, lock=False), ctx.Condition(), ctx.Queue()
    procs = [
        ctx.Process(target=_ndjson_worker, args=(k, workers, config, out, turn, cond, report), daemon=True)
        for k in range(min(workers, config.blocks))
    ]
    for proc in procs:
        proc.start()
    try:
        for _ in range(config.blocks):
            item = report.get()
            if item[0] < 0:
                raise RuntimeError(f"a generator process failed:\n{item[1]}")
            yield item
        for proc in procs:
            proc.join()
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()


def bundle_bytes(record: list[Resource]) -> bytes:
    """A transaction Bundle of one record: urn:uuid fullUrls, PUT with the resource's own id."""
    local = {(r["resourceType"].encode(), r["id"].encode()) for r in record}

    def relink(m: re.Match[bytes]) -> bytes:
        if (m.group(1), m.group(2)) in local:
            return b'"reference":"urn:uuid:' + m.group(2) + b'"'
        return m.group(0)

    entries = []
    for res in record:
        rid = res["id"].encode()
        body = _REF.sub(relink, orjson.dumps(res))
        entries.append(
            b'{"fullUrl":"urn:uuid:' + rid + b'","resource":' + body
            + b',"request":{"method":"PUT","url":"' + res["resourceType"].encode() + b"/" + rid + b'"}}'
        )  # fmt: skip
    return b'{"resourceType":"Bundle","type":"transaction","entry":[' + b",".join(entries) + b"]}"


def bundles_block(block: int) -> tuple[int, list[bytes], dict[str, int], float]:
    """One block as one transaction Bundle per citizen, in index order."""
    started = time.process_time()
    out: list[bytes] = []
    counts: dict[str, int] = {}
    for record in _gen().block(block):
        out.append(bundle_bytes(record))
        for res in record:
            counts[res["resourceType"]] = counts.get(res["resourceType"], 0) + 1
    return block, out, counts, time.process_time() - started


def prepare(out: Path, overwrite: bool) -> None:
    """Create the output folder; refuse to mix with an earlier run unless told to replace it."""
    out.mkdir(parents=True, exist_ok=True)
    old = [p for p in out.rglob("*") if p.is_file() and p.suffix in (".ndjson", ".json", ".xml")]
    if old and not overwrite:
        raise FileExistsError(f"{out} already holds {len(old)} output files; use --overwrite to replace them")
    for p in old:
        p.unlink()


def _blocks(config: Config, workers: int, task: Callable[[int], Any]) -> Iterator[Any]:
    """Block results in block order, computed by a pool of processes (or in this one)."""
    if workers <= 1 or config.blocks <= 1:
        _init(config)
        for b in range(config.blocks):
            yield task(b)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(workers, initializer=_init, initargs=(config,)) as pool:
        yield from pool.imap(task, range(config.blocks), chunksize=1)


def write_ndjson(
    config: Config, out: Path, workers: int, progress: Callable[[int], None] | None = None
) -> Summary:
    """DIR/<Type>.ndjson: facilities first, then every block in order, streamed to disk."""
    started = time.monotonic()
    summary = Summary(citizens=config.citizens)
    shared: dict[str, list[bytes]] = {}
    for res in Generator(config).facility_resources():
        shared.setdefault(res["resourceType"], []).append(orjson.dumps(res) + b"\n")
    for rtype, lines in shared.items():
        data = b"".join(lines)
        (out / f"{rtype}.ndjson").write_bytes(data)
        summary.add(rtype, len(lines), len(data))
    for block, counts, sizes, cpu in _ndjson_blocks(config, out, workers):
        for rtype, count in counts.items():
            summary.add(rtype, count, sizes[rtype])
        summary.cpu_seconds += cpu
        if progress is not None:
            progress(config.block_size(block))
    summary.seconds = time.monotonic() - started
    return summary


def write_bundles(
    config: Config, out: Path, workers: int, progress: Callable[[int], None] | None = None
) -> Summary:
    """DIR/facilities/NNN.json (shared resources, load first), then DIR/citizens/BBBBB/IIIIIIII.json."""
    started = time.monotonic()
    summary = Summary(citizens=config.citizens)
    shared = list(Generator(config).facility_resources())
    (out / "facilities").mkdir(exist_ok=True)
    for n in range(0, len(shared), FACILITY_BUNDLE_SIZE):
        data = bundle_bytes(shared[n : n + FACILITY_BUNDLE_SIZE])
        (out / "facilities" / f"{n // FACILITY_BUNDLE_SIZE:03d}.json").write_bytes(data)
        for res in shared[n : n + FACILITY_BUNDLE_SIZE]:
            summary.add(res["resourceType"], 1, 0)
        summary.bytes += len(data)
    for block, bundles, counts, cpu in _blocks(config, workers, bundles_block):
        folder = out / "citizens" / f"{block:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for position, data in enumerate(bundles):
            (folder / f"{block * BLOCK + position:08d}.json").write_bytes(data)
            summary.bytes += len(data)
        for rtype, count in counts.items():
            summary.add(rtype, count, 0)
        summary.cpu_seconds += cpu
        if progress is not None:
            progress(config.block_size(block))
    summary.seconds = time.monotonic() - started
    return summary


def default_workers() -> int:
    """One worker per core."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


_RENDERER: Any = None


def xml130_block(block: int) -> tuple[int, dict[str, bytes], dict[str, int], float]:
    """One block as one GIAMDINHHS file per facility (episodes by admission time), with table counts."""
    from healthbook.synth import xml130

    global _RENDERER
    started = time.process_time()
    gen = _gen()
    if _RENDERER is None:
        _RENDERER = xml130.Renderer(gen.net)
    by_facility: dict[str, list[xml130.Episode]] = {}
    counts: dict[str, int] = {}
    for ep in _RENDERER.block(gen.block_people(block)):
        by_facility.setdefault(ep.facility, []).append(ep)
        counts["HOSO"] = counts.get("HOSO", 0) + 1
        for name, _ in ep.tables:
            counts[name] = counts.get(name, 0) + 1
    files = {
        code: xml130.submission(code, sorted(eps, key=lambda e: (e.start, e.ma_lk)))
        for code, eps in sorted(by_facility.items())
    }
    return block, files, counts, time.process_time() - started


def write_xml130(
    config: Config, out: Path, workers: int, progress: Callable[[int], None] | None = None
) -> Summary:
    """DIR/BBBBB/<MACSKCB>.xml: per block of 1,000 citizens, one GIAMDINHHS file per facility."""
    started = time.monotonic()
    summary = Summary(citizens=config.citizens)
    for block, files, counts, cpu in _blocks(config, workers, xml130_block):
        folder = out / f"{block:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for code, data in files.items():
            (folder / f"{code}.xml").write_bytes(data)
            summary.bytes += len(data)
        summary.add("files", len(files), 0)
        for name, count in counts.items():
            summary.add(name, count, 0)
        summary.cpu_seconds += cpu
        if progress is not None:
            progress(config.block_size(block))
    summary.seconds = time.monotonic() - started
    return summary
