"""Topics the broker lost (an embedded broker restarted empty under running workers) come
back with their own partitions: no client of the worker has the broker create them with its
default (4 on the embedded broker, 1 on Apache Kafka), and the worker creates them again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiokafka.client
import pytest
from aiokafka import AIOKafkaProducer
from kafka.admin import KafkaAdminClient

from streams.config import Settings
from streams.kafka import no_auto_create
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.topics import (
    changelog_partitions,
    create_missing,
    partition_counts,
    topic_specs,
)


def counts(bootstrap: str) -> dict[str, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return partition_counts(admin, admin.list_topics())
    finally:
        admin.close()


@pytest.mark.timeout(60)
def test_a_write_to_a_missing_topic_creates_nothing(
    broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It created the topic with the broker's default of 4 partitions: the theatre's
    one-partition changelog came back so, and the worker's next start refused it."""
    monkeypatch.setattr(aiokafka.client, "MetadataRequest", aiokafka.client.MetadataRequest)
    no_auto_create.install()  # undone by monkeypatch after the test
    no_auto_create.install()  # idempotent

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

    assert asyncio.run(send()) is not None
    assert "app-theatre-state-changelog" not in counts(broker.bootstrap)


@pytest.mark.timeout(60)
def test_the_lost_topics_are_created_again_with_their_partitions(broker: EmbeddedBroker) -> None:
    settings = Settings(broker=broker.url, partitions=2, app_id="lost")
    created = create_missing(settings, set())
    wanted = {s.name: s.partitions for s in topic_specs(settings)} | changelog_partitions(settings)
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
    wanted = {s.name: s.partitions for s in topic_specs(settings)} | changelog_partitions(settings)
    try:
        broker.stop()
        broker = EmbeddedBroker("127.0.0.1", port, log=tmp_path / "second.log").start()

        def all_there() -> dict[str, int] | None:
            found = counts(broker.bootstrap)
            return found if set(wanted) <= set(found) else None

        found = wait_for(all_there, timeout=60, what="the topics created again")
        assert {name: found[name] for name in wanted} == wanted
        wait_for(worker.healthy, timeout=90, what="ready again", explain=worker.not_ready)
        produce(broker.bootstrap, settings.reports_topic, [report(n) for n in range(5)])

        def counted() -> int | None:
            rows = worker.tallies(window="all")
            n = sum(r["reports"] for r in rows) if rows is not None else 0
            return n if n == 5 else None

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
        worker.stop()
        broker.stop()
