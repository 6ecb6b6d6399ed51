"""Measure a backfill: `python3 -m tests.backfill_bench [N] [--feed-only]` (default 100,000).

Writes an ACLED export of N events over 3.6 years (tests/test_backfill_acled.py), starts an
embedded broker and one worker (`run`), feeds the export with `ceasefire-monitor feed
--format acled`, waits until `window=all` counts every event, and prints the seconds and
rates of the feed and of the counting, the worker's RSS, then the restart to ready (SIGTERM,
`run` again on the same data directory) and whether the totals are the same after it.

`--feed-only`: no worker; the feed alone against the broker (what the feed itself costs).

The machine may be shared: each figure comes with the load average, and the feed's CPU
seconds (user + system of the `feed` process, its maximum RSS) are the figure that does not
depend on what else runs.
"""

from __future__ import annotations

import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from streams.kafka.broker import EmbeddedBroker, free_port
from tests.harness import Worker, wait_for
from tests.test_backfill_acled import export, feed, history, totals, truth


def rss_mib(worker: Worker) -> float:
    assert worker.proc is not None
    for line in Path(f"/proc/{worker.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed_feed(run: object, n: int) -> str:
    """Runs `run()` (a `feed` subprocess, the only child reaped meanwhile) and returns a line
    with its wall time, rate, CPU seconds and maximum RSS."""
    assert callable(run)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    out = run()
    fed = time.monotonic() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of children is the largest of any child reaped so far (KiB)
    return (
        f"feed: {fed:.1f} s, {n / fed:,.0f} rows/s, CPU {cpu:.1f} s "
        f"({n / cpu:,.0f} rows per CPU s), max child RSS {after.ru_maxrss / 1024:.0f} MiB, "
        f"{load()}; {str(out)[:160]}"
    )


def feed_alone(broker: EmbeddedBroker, path: Path) -> str:
    env = {**os.environ, "CEASEFIRE_BROKER": broker.url, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "feed", str(path), "--format", "acled"],
        env=env,
        capture_output=True,
        timeout=3600,
        check=False,
    )
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, output
    return " ".join(output.split())


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
            print(timed_feed(lambda: feed_alone(broker, path), n))
            return
        worker = Worker(broker, tmp).start(ready_timeout=120)
        try:
            began = time.monotonic()
            print(timed_feed(lambda: feed(worker, path, timeout=3600), n))
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
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 100_000, "--feed-only" in sys.argv[1:])
