"""CPU time and resident memory of a process and all its descendants, from /proc.

Why the whole tree: the daemon's feature workers run in child processes (of a forkserver, so
grandchildren), and "CPU below one core" is about what the daemon costs the machine, not only
its event-loop thread. Each process counts `utime + stime` (itself) plus `cutime + cstime`
(children it has already reaped, which are no longer in the tree), so nothing is counted twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_PROC = Path("/proc")


@dataclass(frozen=True)
class TreeUsage:
    cpu_s: float  # utime+stime of the tree, reaped children included
    rss_bytes: int  # resident memory of the live processes, summed
    processes: int


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the `(comm)` field (which may hold spaces)."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def _children(pid: int) -> list[int]:
    """Live children of `pid`: each of its threads lists those it forked. Reading these, not
    every /proc/<pid>/stat of the machine, keeps the sampling light beside the daemon."""
    out: list[int] = []
    try:
        tasks = list((_PROC / str(pid) / "task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(child) for child in (task / "children").read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return out


def tree_usage(root: int) -> TreeUsage | None:
    """Usage of `root` and every live descendant; None once `root` has exited."""
    cpu_ticks = 0
    rss_pages = 0
    seen = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        fields = _stat_fields(pid)
        if fields is None:
            if pid == root:
                return None
            continue  # exited between the scan and now: its time is in its parent's cutime
        # After comm: state=0 ppid=1 ... utime=11 stime=12 cutime=13 cstime=14 ... rss=21
        cpu_ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
        rss_pages += int(fields[21])
        seen += 1
        todo.extend(_children(pid))
    return TreeUsage(cpu_ticks / _TICK, rss_pages * _PAGE, seen)
