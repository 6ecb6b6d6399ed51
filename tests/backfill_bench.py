"""Measure a backfill: `python3 -m tests.backfill_bench [N]` (default 100,000).

Writes an ACLED export of N events over 3.6 years (tests/test_backfill_acled.py), starts an
embedded broker and one worker (`run`), feeds the export with `ceasefire-monitor feed
--format acled`, waits until `window=all` counts every event, and prints the seconds and
rates of the feed and of the counting, the worker's RSS, then the restart to ready (SIGTERM,
`run` again on the same data directory) and whether the totals are the same after it.
"""

from __future__ import annotations

import random
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


def main(n: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="backfill-bench-"))
    events = history(random.Random(n), n, 1)
    path = export(tmp / "acled.csv", events)
    expected = truth(events)
    size = path.stat().st_size / 2**20
    print(f"{n} ACLED events, {size:.1f} MiB, {len(expected)} zones")
    broker = EmbeddedBroker("127.0.0.1", free_port(), log=tmp / "tansu.log")
    broker.start()
    try:
        worker = Worker(broker, tmp).start(ready_timeout=120)
        try:
            began = time.monotonic()
            out = feed(worker, path, timeout=3600)
            fed = time.monotonic() - began
            print(f"feed: {fed:.1f} s, {n / fed:,.0f} rows/s; {out[:160]}")
            wait_for(lambda: totals(worker) == expected, timeout=3600, interval=2, what="all")
            counted = time.monotonic() - began
            print(f"all counted after {counted:.1f} s: {n / counted:,.0f} events/s end to end")
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
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
