"""CPU accounting from /proc: ours, per process, and other people's.

The cores are shared (CI jobs, other checkouts' tests), and on two cores another
process's work shows up directly in our latencies. /proc gives the whole machine's busy
time and each of our processes' own, so the difference is everyone else's; and a
server's CPU-seconds per request hardly depend on the neighbours at all.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSample:
    at: float  # time.monotonic()
    machine_busy: float  # CPU-seconds used by everything since boot, hypervisor steal included
    ours: float  # CPU-seconds used by our processes, and by their children already reaped


def sample(markers: tuple[str, ...]) -> CpuSample:
    """Now; ours is this process's tree plus any tree whose root's command line holds a marker.

    Markers catch what was started on our behalf but is not our child: the embedded
    Postgres daemonises (its postmaster's parent is init) and Redis is a system service.
    """
    ours = tree_seconds(markers, include_self=True)
    return CpuSample(time.monotonic(), _machine_busy(), ours)


def tree_seconds(markers: tuple[str, ...], *, include_self: bool = False) -> float:
    """CPU-seconds so far of the process trees whose roots' command lines hold a marker."""
    processes = _processes()
    roots = {
        pid for pid, (_, command, _) in processes.items() if any(m in command for m in markers)
    }
    if include_self:
        roots.add(os.getpid())
    return sum(cpu for pid, (_, _, cpu) in processes.items() if _under(pid, roots, processes))


def process_seconds(pid: int) -> float:
    """CPU-seconds one process has used so far (its own threads, not its children)."""
    stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(stat[11]) + int(stat[12])) / TICKS


def others_share(before: CpuSample, after: CpuSample) -> float:
    """The fraction of all cores that other processes used between the two samples."""
    capacity = (after.at - before.at) * (os.cpu_count() or 1)
    others = (after.machine_busy - before.machine_busy) - (after.ours - before.ours)
    return max(0.0, others / capacity) if capacity > 0 else 0.0


def _machine_busy() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / TICKS


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command line, own and reaped children's CPU-seconds)."""
    found: dict[int, tuple[int, str, float]] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            # Fields after the parenthesised name: state ppid ... utime(12) stime cutime cstime.
            stat = (proc / "stat").read_text().rpartition(")")[2].split()
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cpu = sum(int(x) for x in stat[11:15]) / TICKS
            found[int(proc.name)] = (int(stat[1]), command, cpu)
    return found


def _under(pid: int, roots: set[int], processes: dict[int, tuple[int, str, float]]) -> bool:
    seen: set[int] = set()
    while pid not in roots:
        if pid in seen or pid not in processes:
            return False
        seen.add(pid)
        pid = processes[pid][0]
    return True
