"""`ceasefire-monitor bench --state N`: what a worker holds for N reports, and its restart.

On a fresh embedded broker (a free port, its own log), one worker is started as an
operator starts it (`ceasefire-monitor run --loglevel info`, `streams/tools/
membership_bench.py::BenchWorker`). N distinct reports spread over `days` of event time
(`streams/tools/bench_reports.py`), oldest first as an export of history is read
(or in random order), are produced to the input topic; the bench waits until all are
counted (`ceasefire_reports_total` = N, then every stage's consumer lag 0 on two polls a
lag refresh apart), then until the sweeps stop closing old days (docs/record.md,
"Retention"), and prints the worker's RSS (highest while counting, when counted, when
settled) and, per changelog topic, its records and bytes (key + value). Then it stops the
worker (SIGTERM), starts it again and prints the seconds from the start of the process to
`/readyz` 200 (every stage's state recovered), the RSS after recovery, and whether the
30-day tally answers the same as before the restart.

A measurement printed, never a timed test: the figures go in docs/operations.md.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from streams.bench import preload
from streams.config import Settings
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.tools.membership_bench import BenchWorker, ChangeFailed, wait_until
from streams.tools.procfs import rss_bytes

POLL = 2.0
PRINT_EVERY = 10.0  # seconds between progress lines
#: The lag gauge is refreshed every 3 s: two polls this far apart see two refreshes.
LAG_SETTLE = 3.5
READY_TIMEOUT = 600.0
SETTLE_TIMEOUT = 300.0


@dataclass
class StateFigures:
    reports: int
    days: float
    in_time_order: bool = True
    feed_seconds: float = 0.0
    count_seconds: float = 0.0
    rss_peak: int = 0
    rss_counted: int = 0
    settle_seconds: float = 0.0
    held_open: int = 0
    held_closed: int = 0
    rss_settled: int = 0
    changelogs: dict[str, tuple[int, int]] = field(default_factory=dict)
    stop_seconds: float = 0.0
    restart_ready_seconds: float = 0.0
    rss_recovered: int = 0
    same_answer: bool = False


def scrape(w: BenchWorker) -> dict[str, float]:
    """metric name with labels -> value, from GET /metrics (empty when unreachable)."""
    status, body = w.get("/metrics")
    out: dict[str, float] = {}
    if status != 200:
        return out
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out


def counted(metrics: dict[str, float]) -> int:
    return int(sum(v for k, v in metrics.items() if k.startswith("ceasefire_reports_total{")))


def held(metrics: dict[str, float]) -> tuple[int, int]:
    """(open, closed) reports the zone stage holds."""
    return (
        int(metrics.get('ceasefire_reports_held{state="open"}', 0)),
        int(metrics.get('ceasefire_reports_held{state="closed"}', 0)),
    )


def lag(metrics: dict[str, float]) -> float | None:
    series = [v for k, v in metrics.items() if k.startswith("ceasefire_consumer_lag_messages{")]
    return sum(series) if series else None


def tally(w: BenchWorker, as_of: int) -> bytes | None:
    status, body = w.get(f"/api/v1/tallies?window=30d&by=zone,party&as_of={as_of}")
    return body if status == 200 else None


async def changelog_sizes(settings: Settings) -> dict[str, tuple[int, int]]:
    """Per changelog topic: (records, bytes of keys and values), read to the exact end."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.kafka.offsets import exact_end_offsets

    probe = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap(), group_id=None)
    await probe.start()
    try:
        topics = sorted(t for t in await probe.topics() if t.endswith("-changelog"))
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(probe.partitions_for_topic(t) or ())
        ]
    finally:
        await probe.stop()
    ends = await exact_end_offsets(settings.bootstrap(), tps)
    sizes = {t: (0, 0) for t in topics}
    pending = {tp for tp in tps if ends[tp] > 0}
    if not pending:
        return sizes
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap(), group_id=None, enable_auto_commit=False
    )
    await reader.start()
    try:
        reader.assign(list(pending))
        await reader.seek_to_beginning(*pending)
        while pending:
            batches = await reader.getmany(*pending, timeout_ms=500, max_records=20_000)
            for tp, records in batches.items():
                n, b = sizes[tp.topic]
                sizes[tp.topic] = (
                    n + len(records),
                    b + sum(len(r.key or b"") + len(r.value or b"") for r in records),
                )
            for tp in list(pending):
                if await reader.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await reader.stop()
    return sizes


def run_state_bench(
    n: int,
    *,
    days: float,
    console: Console,
    logs: Path | None = None,
    in_time_order: bool = True,
) -> StateFigures:
    logs = logs or Path(tempfile.mkdtemp(prefix="ceasefire-state-"))
    figures = StateFigures(reports=n, days=days, in_time_order=in_time_order)
    broker = EmbeddedBroker("127.0.0.1", free_port(), log=logs / "broker.log")
    broker.start()
    workers: list[BenchWorker] = []
    try:
        w = BenchWorker("w1", broker.port, logs, flag=False)
        workers.append(w)
        wait_until(w.ready, [w], "first start", READY_TIMEOUT)
        settings = Settings(broker=broker.url)
        console.print(f"worker ready; producing {n:,} reports over {days:g} days of event time")
        started = time.monotonic()
        figures.feed_seconds = asyncio.run(
            preload(
                settings,
                n,
                console,
                days=days,
                seed=11,
                in_time_order=in_time_order,
                partitions=settings.partitions,
            )
        )
        console.print(f"  produced in {figures.feed_seconds:.1f} s; waiting until all are counted")
        last_print = 0.0
        settled_since: float | None = None
        deadline = time.monotonic() + max(600.0, n / 200)
        while True:
            if not w.alive():
                raise ChangeFailed(f"the worker exited with {w.proc.returncode}")
            if time.monotonic() > deadline:
                raise ChangeFailed("not all reports counted in time")
            m = scrape(w)
            done, behind = counted(m), lag(m)
            figures.rss_peak = max(figures.rss_peak, rss_bytes(w.proc.pid))
            now = time.monotonic()
            if now - last_print >= PRINT_EVERY:
                last_print = now
                held_open, held_closed = held(m)
                console.print(
                    f"  {now - started:6.0f} s: {done:,} counted, lag {behind}, "
                    f"held open {held_open:,} closed {held_closed:,}, "
                    f"RSS {rss_bytes(w.proc.pid) / 2**20:.0f} MiB"
                )
            if done >= n and behind == 0:
                settled_since = settled_since or now
                if now - settled_since >= LAG_SETTLE:
                    break
            else:
                settled_since = None
            time.sleep(POLL)
        figures.count_seconds = time.monotonic() - started
        figures.rss_counted = rss_bytes(w.proc.pid)
        console.print(f"  all counted after {figures.count_seconds:.0f} s; letting old days close")
        figures.settle_seconds, (figures.held_open, figures.held_closed) = settle(w)
        figures.rss_settled = rss_bytes(w.proc.pid)
        as_of = int(time.time())
        before = tally(w, as_of)
        console.print("  reading the changelogs")
        figures.changelogs = asyncio.run(changelog_sizes(settings))
        figures.stop_seconds = w.stop()
        workers.remove(w)
        w = BenchWorker("w1", broker.port, logs, flag=False)
        workers.append(w)
        wait_until(w.ready, [w], "restart", READY_TIMEOUT)
        figures.restart_ready_seconds = time.monotonic() - w.started
        time.sleep(1.0)  # the recovered state settles in memory
        figures.rss_recovered = rss_bytes(w.proc.pid)
        figures.same_answer = before is not None and tally(w, as_of) == before
    finally:
        for worker in workers:
            worker.stop()
        broker.stop()
    render(figures, console)
    console.print(f"worker and broker logs: {logs}")
    return figures


def settle(w: BenchWorker) -> tuple[float, tuple[int, int]]:
    """Wait until the sweeps stop closing days (after `close_idle_seconds`, the closed
    count unchanged over two sweeps); the seconds it took and the reports held then."""
    started = time.monotonic()
    s = Settings()
    interval = s.close_sweep_seconds + 1.0
    time.sleep(s.close_idle_seconds)  # the last changes' days are left open this long
    last = held(scrape(w))
    while time.monotonic() - started < SETTLE_TIMEOUT:
        time.sleep(interval)
        now = held(scrape(w))
        if now == last:
            break
        last = now
    return time.monotonic() - started, last


def render(f: StateFigures, console: Console) -> None:
    mib = 2**20
    order = "in event-time order" if f.in_time_order else "in random order"
    table = Table(title=f"state held: {f.reports:,} reports over {f.days:g} days, {order}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("produced in (s)", f"{f.feed_seconds:.1f}")
    table.add_row("all counted after (s)", f"{f.count_seconds:.1f}")
    table.add_row("worker RSS, highest while counting (MiB)", f"{f.rss_peak / mib:.0f}")
    table.add_row("worker RSS, all counted (MiB)", f"{f.rss_counted / mib:.0f}")
    table.add_row("old days closed after a further (s)", f"{f.settle_seconds:.1f}")
    table.add_row("reports held open, closed", f"{f.held_open:,}, {f.held_closed:,}")
    table.add_row("worker RSS, old days closed (MiB)", f"{f.rss_settled / mib:.0f}")
    for topic, (records, size) in f.changelogs.items():
        table.add_row(f"{topic}: records, MiB", f"{records:,}, {size / mib:.1f}")
    table.add_row("stop, SIGTERM (s)", f"{f.stop_seconds:.1f}")
    table.add_row("restart to ready (s)", f"{f.restart_ready_seconds:.1f}")
    table.add_row("worker RSS after recovery (MiB)", f"{f.rss_recovered / mib:.0f}")
    table.add_row("30-day tally the same after the restart", "yes" if f.same_answer else "NO")
    console.print(table)
    console.print(json.dumps({"state_bench": f.__dict__}, default=str))
