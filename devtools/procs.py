"""Process trees read from /proc (no psutil): the embedded platform's supervisor and the
test harness both need to know every descendant of a process and whether it still runs.

A pid is identified with its start time, so a reused pid is never mistaken for the
process it was; a zombie counts as dead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    pgid: int
    state: str
    starttime: int


def proc_stat(pid: int) -> ProcStat | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode(errors="replace")
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ")".
    rest = raw[raw.rfind(")") + 2 :].split()
    return ProcStat(pid=pid, state=rest[0], ppid=int(rest[1]), pgid=int(rest[2]), starttime=int(rest[19]))


def all_procs() -> list[ProcStat]:
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc here: nothing can be known
        return []
    return [stat for entry in entries if entry.isdigit() and (stat := proc_stat(int(entry))) is not None]


def descendants_of(pid: int) -> list[ProcStat]:
    """Every descendant of *pid*, zombies included (is_alive tells them apart)."""
    by_parent: dict[int, list[ProcStat]] = {}
    for stat in all_procs():
        by_parent.setdefault(stat.ppid, []).append(stat)
    found, todo = [], [pid]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found


def is_alive(stat: ProcStat) -> bool:
    """True if the process *stat* describes still runs (not gone, not a zombie, not a reused pid)."""
    now = proc_stat(stat.pid)
    return now is not None and now.starttime == stat.starttime and now.state not in ("Z", "X")
