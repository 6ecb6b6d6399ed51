"""A process paused longer than its session timeout writes nothing of the step it was in
(`streams/pipeline/stall_fence.py`, `Stage.check_owned`): its partitions may be another
worker's by then, and a write landing after that worker read the changelog leaves a state
older than the one it went on from. Pure fence, and a stage on fakes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest
from aiokafka import TopicPartition

from streams.pipeline import alert_outbox
from streams.pipeline.progress import Record
from streams.pipeline.stall_fence import StallFence
from tests.test_alert_state import CHANGELOG, Run, incident

ALERTS = "ceasefire.alerts"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_pause_is_counted_once_by_whichever_looks_first_after_it() -> None:
    clock = Clock()
    fence = StallFence(6.0, clock)
    clock.now += 60  # before the ticker runs (the worker starting): not the loop's pause
    assert fence.look() == 0
    asyncio.run(fence.tick())
    clock.now += 5.9  # the loop busy, within the session timeout
    assert fence.look() == 0
    clock.now += 12  # paused: a question after it counts it ...
    assert fence.look() == 1 and fence.last_pause == 12
    asyncio.run(fence.tick())  # ... and the ticker after the question does not again
    assert fence.pauses == 1
    clock.now += 7
    asyncio.run(fence.tick())  # the ticker first this time
    assert fence.look() == 1 + 1


def paused_run(clock: Clock) -> tuple[Run, StallFence]:
    run = Run()
    fence = StallFence(6.0, clock)
    stage = run.stage
    stage.ports = dataclasses.replace(
        stage.ports,
        fence=fence,
        settings=stage.ports.settings.model_copy(
            update={"session_timeout": 0.02, "rebalance_timeout": 0.01, "heartbeat_interval": 0.01}
        ),
    )
    fence.listen(stage._paused)  # as `Stage.__init__` does with the ports' fence
    return run, fence


def nothing_on_the_alert_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    """The alert topic as the settle after a recovery reads it: empty."""

    async def nothing_published(*_: Any, **__: Any) -> dict[TopicPartition, Any]:
        return {}

    monkeypatch.setattr(alert_outbox, "read_partitions", nothing_published)


def counted_recoveries(run: Run) -> list[int]:
    """One item for each recovery of the stage's changelog from now on."""
    recoveries: list[int] = []
    recover = run.stage.store.recover

    async def counted(partitions: Any) -> Any:
        recoveries.append(1)
        return await recover(partitions)

    run.stage.store.recover = counted  # type: ignore[method-assign]
    return recoveries


async def started_paused_run() -> tuple[Clock, Run, StallFence, list[int]]:
    """`paused_run`, started, its fence armed, and its recoveries counted from now on."""
    clock = Clock()
    a, fence = paused_run(clock)
    await a.start()
    await fence.tick()
    return clock, a, fence, counted_recoveries(a)


def test_a_step_paused_while_written_publishes_nothing_and_the_stage_recovers_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nothing_on_the_alert_topic(monkeypatch)

    async def run() -> None:
        clock = Clock()
        a, fence = paused_run(clock)
        await a.start()
        await fence.tick()
        await a.step(incident("shusha", 3))
        recoveries = counted_recoveries(a)
        write_many = a.stage.store.write_many

        async def paused_writing(*args: Any, **kw: Any) -> None:
            await write_many(*args, **kw)  # the journal landed ...
            clock.now += 15  # ... and the process was stopped (SIGSTOP) for 15 s

        a.stage.store.write_many = paused_writing  # type: ignore[method-assign]
        pack = incident("shusha", 0.5, killed=1).model_dump_json().encode()
        await a.stage._apply([Record(0, a.offset, pack)])
        # Nothing published, no tombstone: whoever recovers the partition next publishes
        # the journal's events, once (the alert stage's outbox)
        assert a.producer.sent[ALERTS] == []
        assert not a.stage.ready.is_set()  # as after a revocation
        a.stage.store.write_many = write_many  # type: ignore[method-assign]
        await asyncio.wait_for(a.stage.ready.wait(), 5)  # recovered again, by itself
        assert recoveries == [1]
        statuses = [json.loads(v)["status"] for _, _, v in a.producer.sent[ALERTS] if v]
        assert statuses == ["firing"]  # by this worker's own recovery here

    asyncio.run(run())


def test_a_step_paused_while_processed_sends_nothing() -> None:
    async def run() -> None:
        clock = Clock()
        a, fence = paused_run(clock)
        await a.start()
        await fence.tick()
        process = a.stage.process

        def paused_processing(records: Any, out: Any) -> None:
            process(records, out)
            clock.now += 15  # paused after the state changed in memory, before any send

        a.stage.process = paused_processing  # type: ignore[method-assign]
        sent = {topic: len(records) for topic, records in a.producer.sent.items()}
        await a.stage._apply(
            [Record(0, 0, incident("shusha", 0.5, killed=1).model_dump_json().encode())]
        )
        assert {topic: len(records) for topic, records in a.producer.sent.items()} == sent
        assert a.producer.sent[ALERTS] == []
        await asyncio.wait_for(a.stage.ready.wait(), 5)

    asyncio.run(run())


def test_a_step_within_the_session_timeout_is_written() -> None:
    async def run() -> None:
        clock = Clock()
        a, fence = paused_run(clock)
        await a.start()
        await fence.tick()
        written = len(a.producer.sent[CHANGELOG])
        clock.now += 5  # busy, not paused past the timeout
        await a.step(incident("shusha", 0.5, killed=1))
        assert len(a.producer.sent[CHANGELOG]) > written
        assert a.stage.ready.is_set()

    asyncio.run(run())


def test_a_step_begun_on_waking_from_a_pause_is_not_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Paused while idle: the first step after it (before the ticker or a heartbeat saw
    the pause) is not the stage's to write; a rebalance heard meanwhile leaves the
    recovery to Faust's (none here by the stage)."""

    nothing_on_the_alert_topic(monkeypatch)

    async def run() -> None:
        clock, a, _fence, recoveries = await started_paused_run()
        sent = {topic: len(records) for topic, records in a.producer.sent.items()}
        clock.now += 20  # stopped while idle
        await a.stage._apply(
            [Record(0, 0, incident("shusha", 0.5, killed=1).model_dump_json().encode())]
        )
        assert {topic: len(records) for topic, records in a.producer.sent.items()} == sent
        assert not a.stage.ready.is_set()
        a.stage.revoked()  # the rebalance the pause brought, heard at the next heartbeat
        await asyncio.sleep(0.2)
        assert recoveries == []  # the new assignment's recovery is Faust's

    asyncio.run(run())


def test_an_assignment_without_a_revocation_after_a_pause_is_the_only_recovery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A member the group no longer knows is assigned anew without a revocation: Faust's
    recovery of that assignment is the one; the stage adds none of its own."""

    nothing_on_the_alert_topic(monkeypatch)

    async def run() -> None:
        clock, a, fence, recoveries = await started_paused_run()
        clock.now += 20
        await fence.tick()  # the ticker sees the pause: every stage revoked
        assert not a.stage.ready.is_set()
        await a.stage._on_recovered()  # Faust's recovery of the new assignment
        await asyncio.sleep(0.2)  # past the stage's own wait (0.05 s here)
        assert recoveries == [1] and a.stage.ready.is_set()

    asyncio.run(run())


def test_a_rebalance_recovery_still_reading_when_the_wait_ends_is_the_only_recovery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Faust's recovery of the new assignment reads the changelog to its end, which can
    outlast the stage's wait after a pause: the stage then began a second recovery of its
    own."""

    nothing_on_the_alert_topic(monkeypatch)

    async def run() -> None:
        clock, a, fence, recoveries = await started_paused_run()
        counted = a.stage.store.recover

        async def slow(partitions: Any) -> Any:
            await asyncio.sleep(0.2)  # longer than the stage's wait (0.05 s here)
            return await counted(partitions)

        a.stage.store.recover = slow  # type: ignore[method-assign]
        clock.now += 20
        await fence.tick()  # the pause: every stage revoked
        faust = asyncio.create_task(a.stage._on_recovered())  # the rebalance's recovery
        await asyncio.sleep(0.5)  # past the wait and the slow read
        await faust
        assert recoveries == [1] and a.stage.ready.is_set()

    asyncio.run(run())
