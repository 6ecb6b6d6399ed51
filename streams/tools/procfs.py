"""What /proc says of a worker's processes (the worker and its ingest process), for the
benchmarks. Linux only, as the benchmarks are."""

from __future__ import annotations

import os
from pathlib import Path


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started that are alive."""
    try:
        return [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except OSError:
        return []


def _status_kib(pid: int, field: str) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # gone meanwhile
        return 0
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def rss_bytes(pid: int) -> int:
    """The RSS of `pid` and its children now."""
    return 1024 * sum(_status_kib(p, "VmRSS") for p in [pid, *child_pids(pid)])


def peak_rss_bytes(pid: int) -> int:
    """The highest RSS of `pid` and of each child, added up: at most that much at once."""
    return 1024 * sum(_status_kib(p, "VmHWM") for p in [pid, *child_pids(pid)])


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) of `pid` and its children so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in [pid, *child_pids(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick
