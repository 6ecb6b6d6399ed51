"""`ceasefire-monitor bench`: what the pipeline costs per report, against the floors.

Pre-loads N reports into the input topic, then measures on that same topic, each
stage in a fresh process (so peak memory is its own):
  (a) a plain aiokafka consumer validating every report with the pydantic schema;
  (b) a bare Faust agent that only counts events;
  (c) one worker of the real pipeline (ingest, revisions, linking into incidents,
      changelog-backed tallies, alerts), timed until every report is in an incident;
      its ingest runs in a process of its own (`ingest_process.py`), so it uses two
      cores where (a) and (b) use one: the CPU per report of each is printed beside.
Rates are measured from the first record each stage sees to its last, so group
joins and start-up are not counted; so is the CPU (of a stage's process and children).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from streams.config import Settings
from streams.tools import procfs

PARTITIONS = 4
LATENCY_RATE = 200.0
LATENCY_TRIGGERS = 100


@dataclass
class StageResult:
    name: str
    count: int
    seconds: float
    #: of the stage's process and its children (the worker's ingest process): peaks
    #: added up, so at most that much at once
    peak_rss_mb: float
    #: CPU seconds of the stage's processes from its first record to its last
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_report(self) -> float:
        return 1e6 * self.cpu_seconds / self.count if self.count else 0.0


def peak_rss_mb() -> float:
    """Of this process and its children (a worker's ingest process)."""
    return procfs.peak_rss_bytes(os.getpid()) / 2**20


def cpu_seconds() -> float:
    """CPU time of this process and its children so far."""
    return procfs.cpu_seconds(os.getpid())


def emit(name: str, count: int, seconds: float, cpu_from: float) -> None:
    doc = {
        "name": name,
        "count": count,
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "cpu_seconds": cpu_seconds() - cpu_from,
    }
    # To a file: a Faust worker takes over the process's stdout.
    with open(os.environ["CEASEFIRE_BENCH_RESULT"], "w") as f:
        json.dump(doc, f)


# -- pre-load --------------------------------------------------------------------------
async def preload(
    settings: Settings,
    n: int,
    console: Console,
    *,
    days: float = 365,
    seed: int = 7,
    in_time_order: bool = False,
    partitions: int = PARTITIONS,
) -> float:
    """Produce n bench reports (`bench_reports`) round-robin over the input topic's
    partitions; the seconds it took."""
    from aiokafka import AIOKafkaProducer
    from rich.progress import Progress

    from streams.kafka.topics import ensure_topics
    from streams.tools.bench_reports import bench_reports

    await asyncio.to_thread(ensure_topics, settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap(), linger_ms=20, max_batch_size=512 * 1024, acks=1
    )
    await producer.start()
    started = time.monotonic()
    try:
        pending = []
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"pre-loading {n:,} reports", total=n)
            reports = bench_reports(
                n, seed=seed, now=datetime.now(UTC), days=days, in_time_order=in_time_order
            )
            for i, raw in enumerate(reports):
                pending.append(
                    await producer.send(settings.reports_topic, raw, partition=i % partitions)
                )
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    pending.clear()
                    progress.update(task, completed=i + 1)
            await asyncio.gather(*pending)
            progress.update(task, completed=n)
    finally:
        await producer.stop()
    return time.monotonic() - started


# -- (a) plain consumer ----------------------------------------------------------------
async def stage_plain(settings: Settings, n: int) -> None:
    from aiokafka import AIOKafkaConsumer

    from schemas.validation import Rejection, validate_report

    consumer = AIOKafkaConsumer(
        settings.reports_topic,
        bootstrap_servers=settings.bootstrap(),
        group_id=f"bench-plain-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=5000,
    )
    await consumer.start()
    seen = valid = 0
    first = cpu_first = 0.0
    now = datetime.now(UTC)
    try:
        while seen < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                if not first:
                    first, cpu_first = time.monotonic(), cpu_seconds()
                for r in records:
                    if not isinstance(validate_report(r.value, now=now), Rejection):
                        valid += 1
                seen += len(records) if records else 0
    finally:
        await consumer.stop()
    emit("a", seen, time.monotonic() - first, cpu_first)


# -- (b) bare Faust agent ----------------------------------------------------------------
def stage_faust_count(settings: Settings, n: int) -> None:
    import faust

    name = f"bench-bare-{uuid.uuid4().hex[:8]}"
    app = faust.App(
        name,
        broker=settings.broker_url(),
        store="memory://",
        # Faust's default is ./<name>-data: each run left a directory where it was started
        datadir=os.path.join(tempfile.gettempdir(), f"{name}-data"),
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=settings.rebalance_timeout,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        topic_allow_declare=False,
    )
    topic = app.topic(settings.reports_topic, value_serializer="raw", value_type=bytes)
    state = {"count": 0, "first": 0.0, "cpu": 0.0}

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for _ in stream:
            if not state["count"]:
                state["first"], state["cpu"] = time.monotonic(), cpu_seconds()
            state["count"] += 1
            if state["count"] >= n:
                emit("b", n, time.monotonic() - state["first"], state["cpu"])
                os._exit(0)

    faust.Worker(app, loglevel="error", quiet=True).execute_from_commandline()


# -- (c) the real pipeline ----------------------------------------------------------------
def stage_pipeline(settings: Settings, n: int) -> None:
    import faust

    from streams.pipeline.app import Monitor

    monitor = Monitor(settings)
    state = {"first": 0.0, "cpu": 0.0}

    @monitor.app.timer(0.05)  # type: ignore[untyped-decorator]
    async def progress() -> None:
        # open and closed: a sweep may close old days while the backlog drains
        counted = sum(len(book) + book.archive.reports for book in monitor.zone.books.values())
        if counted and not state["first"]:
            state["first"] = monitor.ingest.first_record_at or time.monotonic()
            state["cpu"] = cpu_seconds()  # from a little after the first record: no less
        if counted >= n:
            emit("c", counted, time.monotonic() - state["first"], state["cpu"])
            os._exit(0)

    faust.Worker(monitor.app, loglevel="error", quiet=True).execute_from_commandline()


# -- orchestration -----------------------------------------------------------------------
def run_stage(stage: str, settings: Settings, n: int, timeout: float) -> StageResult:
    env = {**os.environ, "CEASEFIRE_BROKER": settings.broker_url()}
    env.update(
        CEASEFIRE_TOPIC_PREFIX=settings.topic_prefix,
        CEASEFIRE_PARTITIONS=str(PARTITIONS),
        CEASEFIRE_APP_ID=f"bench-{stage}-{uuid.uuid4().hex[:6]}",
        CEASEFIRE_REBALANCE_TIMEOUT="3",
        CEASEFIRE_SESSION_TIMEOUT="6",
        CEASEFIRE_HEARTBEAT_INTERVAL="1",
        CEASEFIRE_WEB_PORT=str(_free_port()),
    )
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "result.json")
        env["CEASEFIRE_BENCH_RESULT"] = result
        proc = subprocess.run(
            [sys.executable, "-m", "streams.bench", "--stage", stage, "--n", str(n)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if os.path.exists(result):
            with open(result) as f:
                doc = json.load(f)
            return StageResult(
                doc["name"], doc["count"], doc["seconds"], doc["peak_rss_mb"], doc["cpu_seconds"]
            )
    raise RuntimeError(
        f"stage {stage} gave no result (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    )


def _free_port() -> int:
    from streams.kafka.broker import free_port

    return free_port()


STAGES = {
    "a": "(a) plain aiokafka + pydantic",
    "b": "(b) bare Faust agent",
    "c": "(c) real pipeline",
}


@contextmanager
def _fresh_broker(settings: Settings, prefix: str) -> Iterator[Settings]:
    """Each stage on its own broker: the in-memory broker slows down as it fills, so a
    stage run after another would be measured against a fuller broker. With a configured
    broker, fresh topics on it, and a fresh app id: the deployment's own (its changelogs
    and groups, of its partition count) are not the bench's."""
    from streams.kafka.broker import EmbeddedBroker, free_port

    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    update: dict[str, Any] = {
        "topic_prefix": f"{name}.",
        "app_id": name,
        "partitions": PARTITIONS,
    }
    if settings.broker is not None:
        yield settings.model_copy(update=update)
        return
    with EmbeddedBroker("127.0.0.1", free_port()) as broker:
        yield settings.model_copy(update={**update, "broker": broker.url})


def run_bench(
    settings: Settings,
    *,
    n: int,
    console: Console,
    timeout: float = 900.0,
    throughput: bool = True,
    triggers: int = LATENCY_TRIGGERS,
    repeat: int = 1,
) -> dict[str, list[StageResult]]:
    if settings.broker is None:
        console.print("each stage on a fresh embedded broker (in memory)")
    results: dict[str, list[StageResult]] = {stage: [] for stage in STAGES}
    if throughput:
        for round_ in range(1, repeat + 1):
            # Every stage's broker is pre-loaded first, then the stages run back to back:
            # seconds apart, not the minutes of a pre-load, so the machine's speed (which
            # drifts by a third within minutes here) moves less between (b) and (c).
            with ExitStack() as brokers:
                loaded: dict[str, Settings] = {}
                for stage, label in STAGES.items():
                    fresh = brokers.enter_context(_fresh_broker(settings, "bench"))
                    with console.status(f"{label}: pre-loading {n:,} reports ..."):
                        asyncio.run(preload(fresh, n, console))
                    loaded[stage] = fresh
                # (b) and (c) swap places every other round: whichever runs second meets a
                # machine warmer, or busier, by the same amount in turn.
                order = ["a", "b", "c"] if round_ % 2 else ["a", "c", "b"]
                for stage in order:
                    with console.status(f"{STAGES[stage]}, run {round_} of {repeat} ..."):
                        results[stage].append(run_stage(stage, loaded[stage], n, timeout))
        render(results, console)
    with (
        console.status(f"(d) report-to-alert latency at {LATENCY_RATE:.0f} reports/s ..."),
        _fresh_broker(settings, "latency") as fresh,
    ):
        latencies = alert_latency(fresh, rate=LATENCY_RATE, triggers=triggers, console=console)
    console.print(
        f"report-to-alert latency at {LATENCY_RATE:.0f} reports/s: "
        f"p50 = {percentile(latencies, 0.5):.3f} s, p99 = {percentile(latencies, 0.99):.3f} s "
        f"({len(latencies)} alerts)"
    )
    return results


def render(results: dict[str, list[StageResult]], console: Console) -> None:
    repeat = max(len(runs) for runs in results.values())
    table = Table(title=f"ceasefire-monitor bench ({repeat} run{'s' if repeat > 1 else ''} each)")
    table.add_column("stage")
    table.add_column("reports", justify="right")
    table.add_column("reports/s (median)", justify="right")
    if repeat > 1:
        table.add_column("min - max", justify="right")
    table.add_column("CPU µs/report (median)", justify="right")
    table.add_column("peak RSS MB (max)", justify="right")
    medians: dict[str, float] = {}
    for key, runs in results.items():
        rates = sorted(r.rate for r in runs)
        medians[key] = statistics.median(rates)
        row = [STAGES[key], f"{runs[0].count:,}", f"{medians[key]:,.0f}"]
        if repeat > 1:
            row.append(f"{rates[0]:,.0f} - {rates[-1]:,.0f}")
        row.append(f"{statistics.median(r.cpu_us_per_report for r in runs):.0f}")
        row.append(f"{max(r.peak_rss_mb for r in runs):.0f}")
        table.add_row(*row)
    console.print(table)
    a, b, c = medians["a"], medians["b"], medians["c"]
    console.print(f"c/a = {c / a:.3f}   c/b = {c / b:.3f}   (medians; target c/b >= 0.8)")
    if repeat > 1:
        # (b) and (c) of one round run back to back, rounds minutes apart: the machine's
        # speed drifts between them, so the ratio of each round shows how far to trust the
        # medians'
        rounds = [rc.rate / rb.rate for rb, rc in zip(results["b"], results["c"], strict=True)]
        console.print(
            f"c/b by round: {', '.join(f'{r:.3f}' for r in rounds)}   "
            f"(median {statistics.median(rounds):.3f}; (b) and (c) run back to back, "
            "in turn first)"
        )


def stage_main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--stage", choices=["a", "b", "c"], required=True)
    parser.add_argument("--n", type=int, required=True)
    args = parser.parse_args(argv)
    settings = Settings()
    if args.stage == "a":
        asyncio.run(stage_plain(settings, args.n))
    elif args.stage == "b":
        stage_faust_count(settings, args.n)
    else:
        stage_pipeline(settings, args.n)


if __name__ == "__main__":
    stage_main(sys.argv[1:])


# -- report-to-alert latency ------------------------------------------------------------
#: The latency stage's rule: the shipped `casualties` rule, grouped by category too, so
#: that each trigger (a death in a new zone and category pair) opens its own alert.
LATENCY_RULES = """
version: 1
rules:
  - name: casualties
    kind: incident
    match: {min_casualties: 1}
    severity: high
    severity_when_killed: critical
    group_by: [zone, category]
    hold: 6h
    max_age: 24h
"""
LATENCY_TRIGGER_EVERY = 0.5  # seconds between two reports with a death


def alert_latency(
    settings: Settings, *, rate: float, triggers: int, console: Console
) -> list[float]:
    """Feed a steady stream at `rate` reports/s into a real worker process; every
    LATENCY_TRIGGER_EVERY seconds one report with a death, each in a zone and category
    pair not alerted yet. Returns, per such report, the seconds from its send to its
    `casualties` alert on the alert topic (read with kafka-python, polling every 10 ms so
    that the figure is the monitor's, not the subscriber's fetch wait)."""
    import itertools
    import threading
    import urllib.request

    from kafka import KafkaConsumer, KafkaProducer

    from schemas.codes import Category
    from streams.classify.gazetteer import Gazetteer
    from streams.classify.zones import ZoneCatalogue
    from streams.tools.bench_reports import bench_reports

    zones, places = ZoneCatalogue.load(), Gazetteer.load()
    points: dict[str, tuple[float, float]] = {}
    for place in places.places:
        points.setdefault(zones.locate(place.lat, place.lon), (place.lat, place.lon))
    points.pop("outside", None)
    # Categories outside the fire family: a report of one links only with reports of the
    # same category, so each trigger's incident has the trigger's category (fire reports
    # of a zone within 30 min would be one incident, one alert).
    fire = {"small_arms_fire", "heavy_weapons_fire", "drone_strike"}
    categories = [c.value for c in Category if c.value not in fire]
    pairs = list(itertools.product(points.items(), categories))[:triggers]
    rules = Path(tempfile.mkdtemp(prefix="ceasefire-bench-")) / "latency-rules.yaml"
    rules.write_text(LATENCY_RULES)
    port = _free_port()
    env = {
        **os.environ,
        "CEASEFIRE_BROKER": settings.broker_url(),
        "CEASEFIRE_TOPIC_PREFIX": settings.topic_prefix,
        "CEASEFIRE_PARTITIONS": str(PARTITIONS),
        "CEASEFIRE_APP_ID": f"bench-latency-{uuid.uuid4().hex[:6]}",
        "CEASEFIRE_RULES": str(rules),
        "CEASEFIRE_REBALANCE_TIMEOUT": "3",
        "CEASEFIRE_SESSION_TIMEOUT": "6",
        "CEASEFIRE_HEARTBEAT_INTERVAL": "1",
        "CEASEFIRE_WEB_PORT": str(port),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    #: (zone, category) of a trigger -> when it was sent; its alert names the pair (the
    #: trigger may join an incident of the stream, whose id is then not its own)
    sent_at: dict[tuple[str, str], float] = {}
    latencies: list[float] = []
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError("the latency worker did not become ready") from None
                time.sleep(0.3)
        consumer = KafkaConsumer(
            settings.alerts_topic,
            bootstrap_servers=settings.bootstrap(),
            auto_offset_reset="earliest",
            group_id=None,
            fetch_max_wait_ms=10,
            consumer_timeout_ms=200,
        )

        def listen() -> None:
            while not stop.is_set():
                for record in consumer:
                    arrived = time.monotonic()
                    alert = json.loads(record.value)
                    if alert["rule"] != "casualties" or alert["status"] != "firing":
                        continue
                    pair = (alert["labels"].get("zone"), alert["labels"].get("category"))
                    if pair in sent_at:
                        latencies.append(arrived - sent_at.pop(pair))

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap(), linger_ms=5)
        every = max(1, round(rate * LATENCY_TRIGGER_EVERY))
        started = time.monotonic()
        total = every * len(pairs)
        # The stream: the benchmark's reports, spread over a year as a backfill is (200
        # reports a second of live events would put thousands within every linking window,
        # which no theatre produces: docs/record.md), without deaths: only triggers carry one.
        stream = bench_reports(total, seed=3, now=datetime.now(UTC))
        for n, raw in enumerate(stream):
            doc = json.loads(raw)
            doc.pop("casualties", None)
            if n % every == 0:
                (zone, (lat, lon)), category = pairs[n // every]
                doc = {  # a report of its own: one source, so triggers never link together
                    "report_id": f"trigger-{n}",
                    "source": "bench-trigger",
                    "source_type": "observation_post",
                    # current, so that no trigger is a late report beyond the rule's max_age
                    "occurred_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "category": category,
                    "location": {"lat": lat, "lon": lon},
                    "casualties": {"killed": 1},
                }
                sent_at[(zone, category)] = time.monotonic()
            producer.send(settings.reports_topic, json.dumps(doc).encode())
            ahead = (n + 1) / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        producer.flush()
        producer.close()
        wait_until = time.monotonic() + 15
        while sent_at and time.monotonic() < wait_until:
            time.sleep(0.2)
        console.print(
            f"latency: {len(latencies)} alerts measured, {len(sent_at)} triggers without an alert"
        )
    finally:
        stop.set()
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
    return sorted(latencies)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return sorted(values)[k]
