"""CPU seconds of process trees from /proc, so that figures taken on a busy machine can be judged."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HZ = os.sysconf("SC_CLK_TCK")


def _stats() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, own ticks, reaped children's ticks) of every live process."""
    out: dict[int, tuple[int, int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        rest = raw[raw.rindex(")") + 2 :].split()
        out[int(entry.name)] = (int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14]))
    return out


def tree_seconds(root: int) -> float:
    """CPU seconds used so far by a process, its live descendants and the children it has reaped."""
    stats = _stats()
    if root not in stats:
        return 0.0
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        _, own, reaped = stats[pid]
        total += own + reaped
        stack.extend(children.get(pid, []))
    return total / HZ


def machine_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (all processes, all cores)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / HZ


@dataclass
class CpuMeter:
    """CPU seconds of named process trees between start() and stop()."""

    roots: dict[str, int]
    before: dict[str, float] | None = None
    used: dict[str, float] | None = None

    def _now(self) -> dict[str, float]:
        now = {name: tree_seconds(pid) for name, pid in self.roots.items()}
        now["machine"] = machine_busy_seconds()
        return now

    def start(self) -> CpuMeter:
        """Take the first reading."""
        self.before = self._now()
        return self

    def stop(self) -> dict[str, float]:
        """CPU seconds per tree (and 'machine': everything on the machine) since start()."""
        assert self.before is not None
        after = self._now()
        self.used = {k: max(0.0, after[k] - self.before.get(k, 0.0)) for k in after}
        return self.used

    def cpu_seconds(self) -> float:
        """CPU seconds of all measured trees together."""
        assert self.used is not None
        return sum(v for k, v in self.used.items() if k != "machine") or 1e-9

    def summary(self, wall: float) -> str:
        """'CPU: bench 10.1 s, postgres 2.0 s; machine busy 95% (others 40%)'."""
        assert self.used is not None
        ours = sum(v for k, v in self.used.items() if k != "machine")
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in self.used.items() if k != "machine")
        cores = os.cpu_count() or 1
        busy = self.used["machine"] / (wall * cores)
        others = max(0.0, self.used["machine"] - ours) / (wall * cores)
        return f"CPU: {parts}; machine busy {busy:.0%}, other work {others:.0%}"
