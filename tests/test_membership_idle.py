"""More workers than partitions (issue 9): a worker that owns no partition, in Faust's group,
in the ingest group or in both, is still ready and answers exact tallies, through the
owners. Its readiness is honest: it holds no state, so nothing of it can be missing, and
every answer it gives is fanned out to the workers that do own the partitions."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from streams.config import Settings
from streams.kafka.broker import EmbeddedBroker
from streams.kafka.topics import ensure_topics
from tests.harness import Worker, wait_for
from tests.test_alerting_stream import zone_points
from tests.test_chaos import exact, feed_lines
from tests.test_membership import group_members

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PARTITIONS = 2
WORKERS = 3
REPORTS = 600


def test_workers_beyond_the_partition_count_are_ready_and_answer_exactly(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    points = list(zone_points().items())
    lines, expected = feed_lines(points, REPORTS)
    path = tmp_path / "reports.jsonl"
    path.write_text("\n".join(lines) + "\n")
    env = {
        "CEASEFIRE_OBSERVED_SINCE": (datetime.now(UTC) - timedelta(days=8)).isoformat(),
        # so that every answer needs a peer's signed query taken (streams/web/peer_auth.py)
        "CEASEFIRE_API_TOKEN": "the-workers-token",
    }
    workers = [
        Worker(broker, tmp_path, name=f"w{i}", partitions=PARTITIONS, env=env)
        for i in range(1, WORKERS + 1)
    ]
    try:
        workers[0].start(ready_timeout=90)
        for w in workers[1:]:
            w.start(ready_timeout=90)  # each joins; one of the three is then idle
        feed = subprocess.run(
            [sys.executable, "-m", "streams.cli", "feed", str(path)],
            env=workers[0].env,
            capture_output=True,
            timeout=60,
        )
        assert feed.returncode == 0, feed.stderr.decode()

        for w in workers:
            wait_for(w.healthy, timeout=60, what=f"{w.url} ready")
            wait_for(lambda w=w: exact(w, expected), timeout=90, what=f"exact from {w.url}")  # type: ignore[misc]

        # not vacuous: some worker owns no partition of the stages, and the ingest group
        # has more members than partitions
        owned = [w.metric("ceasefire_partitions_owned") for w in workers]
        assert sorted(owned) == [0, 1, 1], owned
        state, members = asyncio.run(group_members(broker.bootstrap, "ceasefire-monitor-ingest"))
        assert (state, members) == ("Stable", WORKERS)
        for w in workers:  # and still ready: nothing moved since
            assert w.healthy(), w.log_tail()
    finally:
        for w in workers:
            w.stop()


class GroupHog:
    """An aiokafka member of a group, in a thread of its own, that consumes nothing.

    The group's assignor (round robin over the sorted member ids, which Tansu makes
    `client_id-uuid`) gives a single partition to the first member: `aaa-hog` sorts before
    every worker's `ceasefire-monitor-ingest-...`, so a worker joining then owns nothing."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self._args = (bootstrap, topic, group)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._consumer: AIOKafkaConsumer | None = None

    def start(self) -> None:
        self._thread.start()
        bootstrap, topic, group = self._args

        async def start() -> None:
            self._consumer = AIOKafkaConsumer(
                topic,
                bootstrap_servers=bootstrap,
                group_id=group,
                client_id="aaa-hog",
                enable_auto_commit=False,
                session_timeout_ms=6000,  # the workers' timings (tests/harness.py)
                heartbeat_interval_ms=1000,
                rebalance_timeout_ms=3000,
            )
            await self._consumer.start()

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(timeout=30)

    def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            asyncio.run_coroutine_threadsafe(consumer.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def test_a_worker_owning_no_ingest_partition_is_ready(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Ingest was ready only once its consumer owned a partition: a worker that joined the
    ingest group and got none (more workers than partitions) answered /readyz 503 for
    good. Deterministic here: a member that sorts first holds the only partition."""
    settings = Settings(broker=broker.url, partitions=1)
    ensure_topics(settings)
    hog = GroupHog(broker.bootstrap, settings.reports_topic, f"{settings.app_id}-ingest")
    hog.start()
    env = {"CEASEFIRE_OBSERVED_SINCE": (datetime.now(UTC) - timedelta(days=8)).isoformat()}
    w = Worker(broker, tmp_path, name="w1", partitions=1, env=env)
    try:
        w.start(ready_timeout=60)  # owns the stages' partition, no ingest partition
        assert w.metric("ceasefire_partitions_owned") == 1
        state, members = asyncio.run(group_members(broker.bootstrap, f"{settings.app_id}-ingest"))
        assert (state, members) == ("Stable", 2)
        assert exact(w, Counter())  # a complete answer: nothing was ingested yet

        hog.stop()  # leaves: the worker takes the input partition over and ingests
        points = list(zone_points().items())
        lines, expected = feed_lines(points, 100)
        path = tmp_path / "reports.jsonl"
        path.write_text("\n".join(lines) + "\n")
        feed = subprocess.run(
            [sys.executable, "-m", "streams.cli", "feed", str(path)],
            env=w.env,
            capture_output=True,
            timeout=60,
        )
        assert feed.returncode == 0, feed.stderr.decode()
        wait_for(lambda: exact(w, expected), timeout=60, what="exact tallies")
    finally:
        w.stop()
        hog.stop()
