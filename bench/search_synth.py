"""Search benchmark data from `healthbook synth`: Vietnamese populations sized to each target, cached as NDJSON.

A population of n citizens is generated once per (seed, n) into bench/out/search-data/synth-seed{S}-n{N}/.
The same seed gives the same first citizens whatever n is, so the larger population holds the smaller one
almost line for line: the larger size loads only the lines the smaller set lacks (a few households whose
links change are loaded again as new versions of the same ids), and the database of the large size is a
superset of the small one, as with the Synthea clone.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from search_data import count_lines

SYNTH_FORMAT = 1  # bump when the generator's output changes in a way that old caches must not be reused
PROBE = (20, 60)  # citizens of the two probe runs that fit resources = shared + per_citizen * n
SRC = Path(__file__).resolve().parents[1] / "src"


def _synth(out: Path, citizens: int, seed: int) -> None:
    if (out / ".complete").exists():
        return
    cmd = [sys.executable, "-m", "healthbook", "synth", "-n", str(citizens), "-s", str(seed), "-o", str(out),
           "-f", "ndjson", "--overwrite"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    (out / ".complete").write_text(str(citizens))


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.ndjson") if p.stat().st_size)


def citizens_for(cache: Path, seed: int, targets: list[int], log: Callable[[str], None]) -> list[int]:
    """Citizens whose population reaches each target number of resources (fitted on two small runs)."""
    counts = []
    for n in PROBE:
        out = cache / f"synth{SYNTH_FORMAT}-seed{seed}-n{n}"
        _synth(out, n, seed)
        counts.append(count_lines(_files(out)))
    per_citizen = (counts[1] - counts[0]) / (PROBE[1] - PROBE[0])
    shared = counts[0] - per_citizen * PROBE[0]
    log(f"synth: {shared:,.0f} shared resources (facilities and staff) + {per_citizen:.1f} per citizen")
    return [max(1, math.ceil((t - shared) / per_citizen)) for t in targets]


def ensure_synth_dataset(
    cache: Path, seed: int, sizes: list[int], log: Callable[[str], None]
) -> tuple[list[list[Path]], list[int]]:
    """NDJSON files to load for each size (the later sizes: only new lines) and the citizens of each size."""
    citizens = citizens_for(cache, seed, sorted(sizes), log)
    per_size: list[list[Path]] = []
    seen: set[bytes] = set()
    for i, n in enumerate(citizens):
        out = cache / f"synth{SYNTH_FORMAT}-seed{seed}-n{n}"
        if not (out / ".complete").exists():
            log(f"healthbook synth --citizens {n} --seed {seed} -> {out}")
        _synth(out, n, seed)
        files = _files(out)
        if not seen:
            per_size.append(files)
        else:
            delta_dir = out / f"delta-from-{len(seen)}"
            if not (delta_dir / ".complete").exists():
                delta_dir.mkdir(exist_ok=True)
                for path in files:
                    with path.open("rb") as src, (delta_dir / path.name).open("wb") as dst:
                        dst.writelines(
                            line for line in src if line.strip() and line.rstrip(b"\n") not in seen
                        )
                (delta_dir / ".complete").write_text("")
            per_size.append(_files(delta_dir))
        if i < len(citizens) - 1:
            for path in files:
                with path.open("rb") as handle:
                    seen.update(line.rstrip(b"\n") for line in handle if line.strip())
    return per_size, citizens
