"""Topics the broker lost (an embedded broker restarted empty under running workers) come
back with their own partitions: no client of the worker has the broker create them with its
default (4 on the embedded broker, 1 on Apache Kafka), and the worker creates them again."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiokafka.client
import pytest
from aiokafka import AIOKafkaProducer
from kafka.admin import KafkaAdminClient

from streams.config import Settings
from streams.kafka import no_auto_create
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.topics import create_missing, partition_counts, worker_topics


def counts(bootstrap: str) -> dict[str, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return partition_counts(admin, admin.list_topics())
    finally:
        admin.close()


@pytest.mark.timeout(60)
def test_a_write_to_a_missing_topic_creates_nothing(broker: EmbeddedBroker) -> None:
    """It created the topic with the broker's default of 4 partitions: the theatre's
    one-partition changelog came back so, and the worker's next start refused it. aiokafka
    (the worker's clients, Faust's) and kafka-python (`simulate`, `feed`, `alerts`) alike."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    async def send() -> BaseException | None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=3000)
        await producer.start()
        try:
            await producer.send_and_wait("app-theatre-state-changelog", b"v", key=b"k", partition=0)
        except Exception as exc:  # the topic is missing: refused, after waiting for it
            return exc
        finally:
            await producer.stop()
        return None

    with no_auto_create.installed():
        assert asyncio.run(send()) is not None
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, max_block_ms=3000)
        with pytest.raises(KafkaError):
            producer.send("ceasefire.reports", b"v").get(timeout=10)
        producer.close(timeout=5)
    assert not {"app-theatre-state-changelog", "ceasefire.reports"} & set(counts(broker.bootstrap))
    # undone after: this test process's clients are as they were
    assert aiokafka.client.MetadataRequest.__name__ == "MetadataRequest"


@pytest.mark.timeout(60)
def test_the_lost_topics_are_created_again_with_their_partitions(broker: EmbeddedBroker) -> None:
    settings = Settings(broker=broker.url, partitions=2, app_id="lost")
    created = create_missing(settings, set())
    wanted = {s.name: s.partitions for s in worker_topics(settings)}
    assert sorted(created) == sorted(wanted)
    assert counts(broker.bootstrap) == wanted
    assert wanted["lost-theatre-state-changelog"] == 1
    assert wanted[settings.theatre_topic] == 1
    assert create_missing(settings, set(wanted)) == []  # nothing missing: nothing asked


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_a_worker_goes_on_after_its_broker_restarted_empty_and_starts_again(
    tmp_path: Path,
) -> None:
    """The reviewer's run: after the restart the theatre's changelog had 4 partitions, and
    every later start of the worker (or of its identity process) refused it as an earlier
    deployment's. With 2 partitions here every topic would have come back wrong."""
    from tests.harness import Worker, produce, wait_for
    from tests.test_alerting_stream import report

    port = free_port()
    broker = EmbeddedBroker("127.0.0.1", port, log=tmp_path / "first.log").start()
    env = {"CEASEFIRE_APP_ID": "restarted"}
    worker = Worker(broker, tmp_path, partitions=2, env=env).start()
    settings = Settings(broker=broker.url, partitions=2, app_id="restarted")
    wanted = {s.name: s.partitions for s in worker_topics(settings)}
    # a feed running through the restart: its client asked the broker for the input topic
    # first, which made it with 4 partitions, and half of the reports were never read
    feed = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "simulate", "--rate", "5", "--duration", "120s"],
        env={**os.environ, **env, "CEASEFIRE_BROKER": broker.url, "CEASEFIRE_PARTITIONS": "2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(3)
        broker.stop()
        time.sleep(2)  # the feed's client asks for the topic meanwhile
        broker = EmbeddedBroker("127.0.0.1", port, log=tmp_path / "second.log").start()

        def all_there() -> dict[str, int] | None:
            found = counts(broker.bootstrap)
            return found if set(wanted) <= set(found) else None

        found = wait_for(all_there, timeout=60, what="the topics created again")
        assert {name: found[name] for name in wanted} == wanted
        wait_for(worker.healthy, timeout=90, what="ready again", explain=worker.not_ready)
        feed.terminate()
        feed.wait(timeout=20)
        counted_before = sum(r["reports"] for r in worker.tallies(window="all") or [])
        produce(broker.bootstrap, settings.reports_topic, [report(n) for n in range(5)])

        def counted() -> int | None:
            rows = worker.tallies(window="all")
            n = sum(r["reports"] for r in rows) if rows is not None else 0
            return n if n >= counted_before + 5 else None  # the feed's last ones, too

        wait_for(counted, timeout=60, what="the reports fed after the restart counted")
        assert "created them again" in worker.log_path.read_text()
        worker.stop()
        started = time.monotonic()
        again = Worker(broker, tmp_path, name="w2", partitions=2, env=env).start()
        try:
            assert again.tallies(window="all") is not None
        finally:
            again.stop()
        assert time.monotonic() - started < 90
    finally:
        feed.kill()
        feed.wait(timeout=10)
        worker.stop()
        broker.stop()


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_subscriber_through_a_broker_restart_creates_no_topic(tmp_path: Path) -> None:
    """`alerts --follow` had the restarted broker create the alert topic with its default of
    4 partitions, and the next `run` (2 partitions) refused it. No worker runs here to win
    the race by creating it first."""
    from tests.test_cli import _follow_alerts

    port = free_port()
    broker = EmbeddedBroker("127.0.0.1", port, log=tmp_path / "first.log").start()
    settings = Settings(broker=broker.url, partitions=2)
    create_missing(settings, set())
    follow, _ = _follow_alerts("--follow", "--broker", broker.url)
    try:
        time.sleep(4)  # subscribed
        broker.stop()
        broker = EmbeddedBroker("127.0.0.1", port, log=tmp_path / "second.log").start()
        time.sleep(10)  # its metadata asked for the topic many times meanwhile
        assert settings.alerts_topic not in counts(broker.bootstrap)
        assert follow.poll() is None  # waiting for it
    finally:
        follow.terminate()
        follow.communicate(timeout=20)
        broker.stop()
