"""A stage revoked while it works publishes nothing of that work: its partitions' next
owner publishes it, once (`AlertStage.commit`, `settle`, `TheatreStage._settle`). And
a revocation waits, bounded, for the step being written (`Stage.quiesce`), so that it
lands before the next owner reads the changelog."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import TopicPartition

from alerting.theatre import FatalChange
from schemas.alert import AlertEvent
from streams.pipeline import alert_outbox
from streams.pipeline.progress import Record
from tests.test_alert_state import CHANGELOG, Run, incident, torn_after_the_write
from tests.test_theatre_stage import CHANGELOG as THEATRE_CHANGELOG
from tests.test_theatre_stage import Theatre

ALERTS = "ceasefire.alerts"


def test_an_alert_step_written_after_its_partition_was_revoked_publishes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def run() -> None:
        a = Run()
        await a.start()
        await a.step(incident("shusha", 3))
        pack = incident("shusha", 0.5, killed=1).model_dump_json().encode()
        slow = asyncio.Event()
        write_many = a.stage.store.write_many

        async def slow_write(*args: Any, **kw: Any) -> None:  # the broker slow to take it
            await slow.wait()
            await write_many(*args, **kw)

        a.stage.store.write_many = slow_write  # type: ignore[method-assign]
        step = asyncio.create_task(a.stage._apply([Record(0, 1, pack)]))
        await asyncio.sleep(0.05)
        a.stage.revoked()  # a rebalance: the partition moves
        slow.set()
        await asyncio.wait_for(step, 5)
        assert a.producer.sent[ALERTS] == []  # its next owner publishes the journal's events

        # ... which holds them: the next owner publishes the firing event, once.
        async def nothing_published(*_: Any, **__: Any) -> dict[TopicPartition, Any]:
            return {}

        b = Run()
        b.producer.sent[CHANGELOG] = a.changelog()
        monkeypatch.setattr(alert_outbox, "read_partitions", nothing_published)
        await b.start()
        statuses = [json.loads(v)["status"] for _, _, v in b.producer.sent[ALERTS] if v]
        assert statuses == ["firing"]

    asyncio.run(run())


def test_an_alert_settle_revoked_while_reading_the_topic_publishes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic: list[bytes] = []  # the one alert topic both workers publish to

    async def run() -> None:
        r = Run()
        await r.start()
        await r.step(incident("shusha", 0.5, killed=1))
        torn = torn_after_the_write(r)  # died after writing the step, before publishing
        release = asyncio.Event()
        reads: list[int] = []

        async def read_partitions(*_: Any, **__: Any) -> dict[TopicPartition, Any]:
            reads.append(1)
            seen = [(b"", v) for v in topic]  # the topic when the read is made
            if len(reads) == 1:  # A's read: its answer is slow
                await release.wait()
            return {TopicPartition(ALERTS, 0): seen}

        monkeypatch.setattr(alert_outbox, "read_partitions", read_partitions)
        a = Run()
        a.producer.sent[CHANGELOG] = list(torn)
        await a.start(settled=False)
        await asyncio.sleep(0.05)  # A's settle is reading the alert topic
        a.stage.revoked()
        b = Run()
        b.producer.sent[CHANGELOG] = list(torn)
        await b.start()
        topic.extend(v for _, _, v in b.producer.sent[ALERTS] if v)
        release.set()  # A's read answers: it read before B published
        assert a.stage._settling is not None
        await asyncio.wait_for(a.stage._settling, 5)
        assert len(b.producer.sent[ALERTS]) == 1
        assert a.producer.sent[ALERTS] == []

    asyncio.run(run())


def test_a_theatre_settle_revoked_while_reading_the_topic_publishes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic: list[AlertEvent] = []

    async def run() -> None:
        th = Theatre()
        day = int(datetime.now(UTC).timestamp() // 86_400)
        changes = [FatalChange("shusha", "x", day, 1), FatalChange("loc-east", "y", day, 2)]
        await th.feed([(0, c.key.encode(), c.encode()) for c in changes])
        torn = th.producer.sent[THEATRE_CHANGELOG][:-1]  # died before publishing
        release = asyncio.Event()
        reads: list[int] = []

        async def read_partitions(*_: Any, **__: Any) -> dict[int, Any]:
            reads.append(1)
            seen = {0: [(b"", e.model_dump_json().encode()) for e in topic]}
            if len(reads) == 1:
                await release.wait()
            return seen

        async def publish(events: list[AlertEvent]) -> None:
            topic.extend(events)

        monkeypatch.setattr(alert_outbox, "read_partitions", read_partitions)
        a, b = Theatre(torn), Theatre(torn)
        a.stage._publish = publish  # type: ignore[method-assign]
        b.stage._publish = publish  # type: ignore[method-assign]
        settling = asyncio.create_task(a.stage.settle())
        await asyncio.sleep(0.05)
        a.stage.revoked()  # the theatre partition moves to B
        await b.stage.settle()
        release.set()
        await asyncio.wait_for(settling, 5)
        assert [e.status for e in topic] == ["firing"], topic

    asyncio.run(run())


def test_a_revocation_waits_for_the_step_being_written_within_its_bound() -> None:
    async def run() -> None:
        a = Run()
        await a.start()
        await a.stage.lock.acquire()  # a step being written

        async def finish() -> None:
            await asyncio.sleep(0.2)
            a.stage.lock.release()

        ending = asyncio.create_task(finish())
        a.stage.revoked()
        started = asyncio.get_running_loop().time()
        await a.stage.quiesce(5.0)
        assert 0.15 < asyncio.get_running_loop().time() - started < 2.0
        await ending
        await a.stage.lock.acquire()  # a step that never ends: waited for no longer
        started = asyncio.get_running_loop().time()
        await a.stage.quiesce(0.1)
        assert asyncio.get_running_loop().time() - started < 1.0
        assert a.stage.lock.locked()  # still the step's

    asyncio.run(run())


def test_zone_and_identity_steps_revoked_while_sending_write_nothing() -> None:
    """An old owner's changelog write landing after the next owner's recovery took a moved
    report back to its old zone (its withdrawal then went there) or brought a withdrawn one
    back: a step whose partitions were revoked while it sent writes nothing (`Revoked`)."""
    from tests.test_stages import Harness, report

    async def run() -> None:
        h = Harness()
        send_batch = h.producer.send_batch
        revoke_on: dict[str, Any] = {}

        async def sending(batch: Any, topic: str, partition: int) -> Any:
            stage = revoke_on.pop(topic, None)
            if stage is not None:
                stage.revoked()  # a rebalance while the step's sends are out
            return await send_batch(batch, topic, partition)

        h.producer.send_batch = sending  # type: ignore[method-assign]
        revoke_on[h.settings.zone_reports_topic] = h.identity
        before = len(h.producer.sent["identity-state-changelog"])
        await h.send(report("a"), deliver=False)
        assert len(h.producer.sent["identity-state-changelog"]) == before
        assert h.pending  # forwarded before the revocation: the next owner's replay absorbs it

        revoke_on[h.settings.incidents_topic] = h.zone
        before = len(h.producer.sent["incident-book-changelog"])
        await h.deliver()
        assert len(h.producer.sent["incident-book-changelog"]) == before

    asyncio.run(run())
