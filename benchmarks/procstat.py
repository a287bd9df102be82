"""What the benchmark reads from the kernel: CPU time and memory of a process tree.

Linux only (``/proc``).  CPU time comes from ``/proc/PID/stat`` (user + system
ticks of the process and of all its threads, plus its live descendants and the
children it has already reaped), so a forking server's children and a worker
supervisor's workers are counted.  Memory is the proportional set size (PSS,
``/proc/PID/smaps_rollup``) summed over the tree: for one process it is close to
RSS, and forked children are not double-counted for the pages they share.
"""

from __future__ import annotations

import os
import resource

__all__ = [
    "cpu_seconds",
    "machine_busy_seconds",
    "descendants",
    "pin",
    "raise_nofile_limit",
    "tree_memory_kib",
    "usable_cores",
]

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after it.
    return raw[raw.rfind(")") + 2 :].split()


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children, grandchildren...)."""
    children = _children_map()
    found: list[int] = []
    todo = list(children.get(pid, ()))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, ()))
    return found


def cpu_seconds(pid: int, *, tree: bool = True) -> float:
    """User + system CPU seconds of ``pid`` (all threads), its reaped children and,
    with ``tree``, its live descendants."""
    total = 0
    for index, proc in enumerate([pid, *(descendants(pid) if tree else [])]):
        fields = _stat_fields(proc)
        if fields is None:
            if index == 0:
                raise ProcessLookupError(pid)
            continue  # a child that exited meanwhile: its time is in cutime now
        # after the name: state=0 ppid=1 ... utime=11 stime=12 cutime=13 cstime=14
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / _TICK


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot (``/proc/stat``).

    Compared over a window with the server's and the generator's own CPU time, it
    shows how much other work shared the machine during a measurement.
    """
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()
    except OSError:
        return 0.0
    if not fields or fields[0] != b"cpu":
        return 0.0
    values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    busy = sum(values) - values[3] - values[4]
    return busy / _TICK


def _pss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def tree_memory_kib(pid: int) -> int:
    """PSS (RSS where PSS is unavailable) of ``pid`` and its descendants, in KiB."""
    total = 0
    for index, proc in enumerate([pid, *descendants(pid)]):
        kib = _pss_kib(proc)
        if kib is None:
            kib = _rss_kib(proc)
        if kib is None:
            if index == 0:
                raise ProcessLookupError(pid)
            continue
        total += kib
    return total


def usable_cores() -> list[int]:
    """The CPUs this process may run on, in order."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def pin(cores: set[int] | None) -> None:
    """Restrict the calling process to ``cores`` (no-op for ``None`` or off Linux)."""
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the new (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard_value = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < hard_value:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard_value, hard))
            soft = hard_value
        except (ValueError, OSError):
            pass
    return soft, hard
