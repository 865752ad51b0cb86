"""Figures of the search benchmark: the console table, the verdicts and the RESULTS.md section."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

SECTION = "## Search (bench/search.py)"
SYNTH_SECTION = "## Search on healthbook synth data (bench/search.py --data synth)"
KEEP = "### Analysis"  # a hand-written subsection of the section that a new run keeps
TARGETS = {
    "simple": "p50 < 10, p99 < 50",
    "complex": "p99 < 150",
}
GROWTH_LIMIT = 1.5


def human(n: float) -> str:
    """10000 -> 10k, 1000000 -> 1M."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{int(n // 1_000_000)}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{int(n // 1000)}k"
    return f"{n:,}"


def _f(x: float) -> str:
    if math.isnan(x):
        return "—"
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def verdict(kind: str, p50: float, p99: float, growth: float) -> tuple[bool, list[str]]:
    """Whether a shape meets its targets at the large size, and what it misses."""
    missed = []
    if kind == "simple":
        if not p50 < 10:
            missed.append("p50")
        if not p99 < 50:
            missed.append("p99")
    elif not p99 < 150:
        missed.append("p99")
    if not growth < GROWTH_LIMIT:
        missed.append("growth")
    return not missed, missed


def rows(run: dict[str, Any], kinds: dict[str, str], key: str = "shapes") -> list[list[str]]:
    """One row per shape: name, p50/p99 per size, growth, target, verdict, errors, median total."""
    small, large = run["sizes"][0], run["sizes"][-1]
    by_name = [{s["name"]: s for s in size.get(key, [])} for size in (small, large)]
    out = []
    for name in by_name[1] or by_name[0]:
        a, b = by_name[0].get(name), by_name[1].get(name)
        if a is None or b is None:
            continue
        growth = b["p50"] / a["p50"] if a["p50"] else float("nan")
        kind = kinds.get(name.split(" +")[0], "simple")
        ok, missed = verdict(kind, b["p50"], b["p99"], growth)
        errors = a["errors"] + b["errors"]
        out.append(
            [
                name,
                _f(a["p50"]),
                _f(a["p99"]),
                _f(b["p50"]),
                _f(b["p99"]),
                f"{growth:.2f}×" if not math.isnan(growth) else "—",
                TARGETS[kind] + f", growth < {GROWTH_LIMIT}×",
                "met" if ok else "MISSED " + "+".join(missed),
                f"{_f(a['db_ms_per_request'])} / {_f(b['db_ms_per_request'])}",
                f"{_f(a['median_total'])} / {_f(b['median_total'])}",
                str(errors),
                f"{len(a['samples'])} / {len(b['samples'])}",
            ]
        )
    return out


def headers(run: dict[str, Any]) -> list[str]:
    """Column names of rows()."""
    s, lg = human(run["sizes"][0]["target"]), human(run["sizes"][-1]["target"])
    return [
        "shape",
        f"p50 {s}",
        f"p99 {s}",
        f"p50 {lg}",
        f"p99 {lg}",
        "growth",
        f"target at {lg} (ms)",
        "verdict",
        f"DB ms/req {s} / {lg}",
        "median matches",
        "non-200",
        "n",
    ]


def text_table(head: list[str], body: list[list[str]]) -> str:
    """A fixed-width table for the console."""
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths, strict=True)) for c in [head]]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def md_table(head: list[str], body: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body]
    return "\n".join(lines)


def section(
    run: dict[str, Any], kinds: dict[str, str], examples: dict[str, str], title: str = SECTION
) -> str:
    """The Markdown of this benchmark's section in RESULTS.md."""
    m = run["machine"]
    small, large = run["sizes"][0], run["sizes"][-1]
    out = [title, ""]
    out.append(
        f"Run `{run['command']}` ({run['started']} – {run['finished']}). Everything runs on 127.0.0.1: a "
        "throw-away PostgreSQL, `healthbook serve --workers "
        f"{run['workers']}`, one client process on one keep-alive connection, "
        f"{run['queries']} queries per shape "
        f"after {run['warmup']} warm-up queries, parameter values drawn (seeded) from the "
        f"{human(small['target'])} set so that they exist at both sizes; default `_count` (50). Latency = "
        "request sent → whole body read. Growth = p50 at the large size / p50 at the small size."
    )
    out += ["", "**Machine.** " + ", ".join(f"{k}: {v}" for k, v in m.items())]
    pg = ", ".join(f"{k}={v}" for k, v in run["pg_settings"].items())
    out += ["", f"**PostgreSQL settings** (planner settings left at their defaults): {pg}."]
    out += ["", "**Data.** " + run["data"]]
    out += ["", "**Load.**"]
    for size in run["sizes"]:
        out.append(
            f"- {human(size['target'])} set: {size['resources']:,} resources, database "
            f"{size['db_bytes'] / 2**30:.2f} GiB; {size['load_note']}"
        )
    out += ["", "**Load average** (1/5/15 min, 2 cores shared with other work):"]
    for size in run["sizes"]:
        out.append(
            f"- {human(size['target'])}: before {size['loadavg_before']}, after {size['loadavg_after']}"
        )
    out += ["", "### Figures (ms)", ""]
    out.append(md_table(headers(run), rows(run, kinds)))
    out += [
        "",
        "Targets: simple shapes (token, string, date range, reference, _sort, _total) p50 < 10 ms and "
        "p99 < 50 ms; "
        "chained/_has/_include/_revinclude p99 < 150 ms; growth < 1.5× for every shape. "
        '"DB ms/req" = PostgreSQL execution time per request from pg_stat_statements (all statements of '
        'the request: page, count, includes). "non-200" includes client time-outs (60 s). "n" = timed '
        'requests (fewer than asked when the time budget per shape ran out). "median matches" = median '
        "number of resources matched, from untimed `_summary=count` requests of the first 25 distinct "
        "paths of the shape (the server's default `_total` is `none`: only the `_total=accurate` shape "
        "counts its matches while timed; a result that fits on its first page carries its exact total).",
    ]
    if any(size.get("variants") for size in run["sizes"]):
        out += ["", "The same shapes with `&_total=none` added (page query only, no count):", ""]
        out.append(md_table(headers(run), rows(run, kinds, key="variants")))
    out += ["", "Examples of each shape:", ""]
    out += [f"- {name}: `{ex}`" for name, ex in examples.items()]
    out += ["", f"### Slowest statements per shape at {human(large['target'])} (pg_stat_statements)", ""]
    for shape in large["shapes"]:
        top = shape["top_statements"][:2]
        for mean, calls, query in top:
            q = re.sub(r"\s+", " ", query)
            q = q if len(q) <= 300 else q[:300] + " …"
            out.append(f"- {shape['name']}: {mean:.1f} ms mean × {calls} calls: `{q}`")
    ex = run.get("explain")
    if ex:
        out += [
            "",
            f"### EXPLAIN (ANALYZE, BUFFERS) of the slowest shape at {human(large['target'])}: {ex['shape']}",
        ]
        out += ["", f"Request `{ex['path']}` (the median-latency request of that shape)."]
        for label, stmt, plan in ex["statements"]:
            out += ["", f"{label}:", "", "```sql", stmt, "```", "", "```", plan, "```"]
    return "\n".join(out) + "\n"


def write_section(path: Path, text: str, title: str = SECTION) -> None:
    """Replace (or append) this benchmark's section, keeping its hand-written Analysis subsection."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    start = old.find(title + "\n")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        nxt = re.search(r"^## ", old[start + len(title) :], flags=re.M)
        end = start + len(title) + nxt.start() if nxt else len(old)
        mine = old[start:end]
        kept = ""
        at = mine.find(KEEP)
        if at >= 0:
            more = re.search(r"^### ", mine[at + len(KEEP) :], flags=re.M)
            kept = mine[at : at + len(KEEP) + more.start()] if more else mine[at:]
            kept = "\n" + kept.rstrip("\n") + "\n"
        rest = old[end:]
        new = old[:start] + text + kept + ("\n" + rest if rest else "")
    path.write_text(new)
