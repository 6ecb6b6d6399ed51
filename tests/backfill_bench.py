"""Measure a backfill: `python3 -m tests.backfill_bench [N] [--feed-only]` (default 100,000).

Writes an ACLED export of N events over 3.6 years (tests/test_backfill_acled.py), starts an
embedded broker and one worker (`run`), feeds the export with `ceasefire-monitor feed
--format acled`, waits until `window=all` counts every event, and prints the seconds and
rates of the feed and of the counting, the worker's RSS, then the restart to ready (SIGTERM,
`run` again on the same data directory) and whether the totals are the same after it.

`--feed-only`: no worker; the feed alone against the broker (what the feed itself costs).

The machine may be shared: each figure comes with the load average, and the feed's CPU
seconds (user + system of the `feed` process alone) are the figure that depends least on
what else runs; its maximum RSS is printed too.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from streams.kafka.broker import EmbeddedBroker, free_port
from tests.harness import Worker, wait_for
from tests.test_backfill_acled import export, history, totals, truth


def rss_mib(worker: Worker) -> float:
    assert worker.proc is not None
    for line in Path(f"/proc/{worker.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def vm_hwm_mib(pid: int) -> float:
    """Peak RSS of a running process; 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed_feed(env: dict[str, str], path: Path, n: int) -> str:
    """Runs `ceasefire-monitor feed PATH --format acled` with `env` and returns a line with
    its wall time, rate, CPU seconds (user + system of that process alone, from wait4),
    peak RSS and the load average, then the start of its output."""
    began = time.monotonic()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "feed", str(path), "--format", "acled"],
            env={**env, "COLUMNS": "200"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        peak = 0.0  # MiB: VmHWM, read while it runs (wait4's maxrss counts the fork too)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, vm_hwm_mib(proc.pid))
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
        fed = time.monotonic() - began
        out.seek(0)
        output = " ".join(out.read().decode(errors="replace").split())
    assert proc.returncode == 0, output
    cpu = usage.ru_utime + usage.ru_stime
    return (
        f"feed: {fed:.1f} s, {n / fed:,.0f} rows/s, CPU {cpu:.1f} s "
        f"(user {usage.ru_utime:.1f}, system {usage.ru_stime:.1f}; {n / cpu:,.0f} rows per "
        f"CPU s), peak RSS {peak:.0f} MiB, {load()}; {output[:160]}"
    )


def main(n: int, feed_only: bool) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="backfill-bench-"))
    events = history(random.Random(n), n, 1)
    path = export(tmp / "acled.csv", events)
    expected = truth(events)
    size = path.stat().st_size / 2**20
    print(f"{n} ACLED events, {size:.1f} MiB, {len(expected)} zones; {load()}")
    broker = EmbeddedBroker("127.0.0.1", free_port(), log=tmp / "tansu.log")
    broker.start()
    try:
        if feed_only:
            print(timed_feed({**os.environ, "CEASEFIRE_BROKER": broker.url}, path, n))
            return
        worker = Worker(broker, tmp).start(ready_timeout=120)
        try:
            began = time.monotonic()
            print(timed_feed(worker.env, path, n))
            wait_for(lambda: totals(worker) == expected, timeout=3600, interval=2, what="all")
            counted = time.monotonic() - began
            print(
                f"all counted after {counted:.1f} s: {n / counted:,.0f} events/s end to end; "
                f"{load()}"
            )
            print(f"worker RSS {rss_mib(worker):.0f} MiB")
        finally:
            stopping = time.monotonic()
            code = worker.stop(timeout=120)
            print(f"stop (SIGTERM): {time.monotonic() - stopping:.1f} s, exit {code}")
        again = Worker(broker, tmp)
        began = time.monotonic()
        again.start(ready_timeout=600)
        try:
            print(f"restart to ready: {time.monotonic() - began:.1f} s")
            same = totals(again) == expected
            print(f"totals the same after the restart: {same}; RSS {rss_mib(again):.0f} MiB")
        finally:
            again.stop(timeout=120)
    finally:
        broker.stop()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        prog="python3 -m tests.backfill_bench",
        description=(__doc__ or "").split("\n\n", 1)[1].split("\n\n", 1)[0],
    )
    parser.add_argument("n", nargs="?", type=int, default=100_000, help="events (100,000)")
    parser.add_argument("--feed-only", action="store_true", help="no worker: the feed alone")
    parsed = parser.parse_args()
    if parsed.n < 1:
        parser.error(f"n must be at least 1: {parsed.n}")
    main(parsed.n, parsed.feed_only)
