"""CPU accounting of a measured cell from /proc: servers, PostgreSQL, load generator, everything else."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

HZ = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Cumulative CPU ticks per group, the machine's busy ticks and the wall clock."""

    at: float
    machine: int
    groups: dict[str, int]


def _machine_busy() -> int:
    """Busy ticks of all CPUs: user, nice, system, irq, softirq and steal (guest is inside user)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return user + nice + system + irq + softirq + steal


def _proc_stat(pid: str) -> tuple[int, int, int, int] | None:
    """(pid, ppid, session, utime+stime+cutime+cstime) of one process, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2 :].split()
    return int(pid), int(rest[1]), int(rest[3]), sum(int(v) for v in rest[11:15])


class CpuMeter:
    """Attributes CPU time to named process sessions, one PostgreSQL postmaster and this process."""

    def __init__(self) -> None:
        self.sessions: dict[int, str] = {}
        self.postmaster: int | None = None

    def add_session(self, sid: int, name: str) -> None:
        """Count every process of session `sid` (a server started with start_new_session) as `name`."""
        self.sessions[sid] = name

    def set_postgres(self, data_dir: Path) -> None:
        """Count the postmaster of this data directory and its children as 'postgres'."""
        try:
            self.postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            self.postmaster = None

    def snapshot(self) -> Snapshot:
        """Current cumulative ticks; the load generator is our own reaped children (client)."""
        groups: dict[str, int] = {name: 0 for name in self.sessions.values()}
        if self.postmaster is not None:
            groups["postgres"] = 0
        me = os.getpid()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            st = _proc_stat(entry)
            if st is None:
                continue
            pid, ppid, sid, ticks = st
            if pid == me:
                groups["client"] = ticks
            elif sid in self.sessions:
                groups[self.sessions[sid]] += ticks
            elif self.postmaster is not None and self.postmaster in (pid, ppid):
                groups["postgres"] += ticks
        return Snapshot(time.monotonic(), _machine_busy(), groups)


def usage(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """Per group, percent of one core used between two snapshots; 'other' is the rest of the machine."""
    wall = max(after.at - before.at, 1e-6)

    def pct(ticks: int) -> float:
        return max(0.0, 100.0 * ticks / HZ / wall)

    out = {name: pct(after.groups.get(name, 0) - before.groups.get(name, 0)) for name in after.groups}
    ours = sum(after.groups.get(n, 0) - before.groups.get(n, 0) for n in after.groups)
    out["other"] = pct(after.machine - before.machine - ours)
    out["machine"] = pct(after.machine - before.machine)
    return out
