"""Ingest's loop after a failure: it goes back to its committed offsets, however long that
takes, and never stops reading while the worker answers ready (on in-memory fakes)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    IllegalStateError,
    KafkaConnectionError,
)

from streams.config import Settings
from streams.metrics import REGISTRY
from streams.pipeline import ingest as ingest_module
from streams.pipeline.ingest import Ingest
from streams.pipeline.packs import unpack
from tests.fakes import FakeBatch
from tests.test_hostile_input import CLASSIFIER, FakeProducer, record, report

pytestmark = pytest.mark.timeout(30)

TP = TopicPartition("ceasefire.reports", 0)
GONE = TopicPartition("ceasefire.reports", 1)


class LoopConsumer:
    """One owned partition holding `records` (and `GONE`, listed as assigned but revoked
    under the loop, as a rebalance does): positions, commits and seeks as aiokafka keeps
    them. `committed` fails `committed_fails` times first, as during a rebalance."""

    def __init__(self, records: list[ConsumerRecord[bytes, bytes]], committed_fails: int) -> None:
        self.records = records
        self.pos = 0
        self.commits: dict[TopicPartition, int] = {}
        self.committed_fails = committed_fails
        self.seeks: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return {TP, GONE}

    def highwater(self, tp: TopicPartition) -> int | None:
        return len(self.records) if tp == TP else None

    async def position(self, tp: TopicPartition) -> int:
        if tp != TP:
            raise IllegalStateError(f"No current assignment for partition {tp}")
        return self.pos

    async def getmany(
        self, *tps: TopicPartition, timeout_ms: int
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        batch = [r for r in self.records if r.offset >= self.pos][:2]
        if not batch:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        self.pos = batch[-1].offset + 1
        return {TP: batch}

    #: commits to refuse first, as aiokafka does once the group has rebalanced
    commit_fails = 0

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.commit_fails > 0:
            self.commit_fails -= 1
            # aiokafka's form: a CommitFailedError raised from the group's answer
            raise CommitFailedError(
                "Commit cannot be completed since the group has already..."
            ) from (IllegalGenerationError())
        self.commits.update(offsets)

    async def committed(self, tp: TopicPartition) -> int | None:
        if tp != TP:
            raise IllegalStateError(f"No current assignment for partition {tp}")
        if self.committed_fails > 0:
            self.committed_fails -= 1
            raise KafkaConnectionError("the coordinator moved")
        return self.commits.get(tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp != TP:
            raise IllegalStateError(f"No current assignment for partition {tp}")
        self.seeks.append((tp, offset))
        self.pos = offset

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.seek(tp, 0)


class FlakyProducer(FakeProducer):
    """Fails the first `fails` deliveries, as a broker that was away for a moment."""

    def __init__(self, fails: int) -> None:
        super().__init__()
        self.fails = fails

    async def send_batch(
        self, batch: FakeBatch, topic: str, partition: int
    ) -> asyncio.Future[None]:
        self.broken = self.fails > 0
        self.fails -= 1
        return await super().send_batch(batch, topic, partition)


def accepted_ids(producer: FakeProducer) -> list[str]:
    packs = [v for t, v, _ in producer.sent if t.endswith(".accepted")]
    return [json.loads(doc)["report_id"] for pack in packs for doc in unpack(pack)]


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_module, "RETRY_FIRST_SECONDS", 0.01)


def loop(
    records: int, *, committed_fails: int, send_fails: int, settings: Settings | None = None
) -> tuple[Ingest, LoopConsumer, FlakyProducer, list[str]]:
    calls: list[str] = []
    ingest = Ingest(
        settings or Settings(),
        CLASSIFIER,
        on_ready=lambda: calls.append("ready"),
        on_lost=lambda: calls.append("lost"),
    )
    consumer = LoopConsumer([record(i, report(i)) for i in range(records)], committed_fails)
    producer = FlakyProducer(send_fails)
    ingest.shared.producer, ingest.consumer = producer, consumer  # type: ignore[assignment]
    ingest.joined.set()
    return ingest, consumer, producer, calls


async def run_until(ingest: Ingest, done: Any, timeout: float = 10) -> None:
    task = asyncio.create_task(ingest._supervise())
    try:
        async with asyncio.timeout(timeout):
            while not done():
                assert not task.done(), task
                await asyncio.sleep(0.01)
    finally:
        ingest._stopping.set()
        await asyncio.wait_for(task, timeout=5)


async def test_a_rewind_that_fails_is_retried_and_nothing_is_skipped() -> None:
    """A failed commit, then the rewind's `committed` failing during the rebalance, ended
    the loop for good: the worker answered ready and read nothing."""
    ingest, consumer, producer, calls = loop(6, committed_fails=3, send_fails=1)
    await run_until(ingest, lambda: consumer.commits.get(TP) == 6)
    # the first batch failed, so the loop went back to offset 0 once `committed` answered
    assert (TP, 0) in consumer.seeks
    assert sorted(set(accepted_ids(producer))) == [f"r-{i}" for i in range(6)]
    assert calls == ["ready"]  # the batch retries are the loop's own: still ready


async def test_a_commit_after_a_rebalance_is_one_line_and_the_batch_is_read_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Routine in a group's life: it was logged as an error with aiokafka's traceback and
    its advice on poll intervals."""
    ingest, consumer, producer, _ = loop(6, committed_fails=0, send_fails=0)
    consumer.commit_fails = 1
    await run_until(ingest, lambda: consumer.commits.get(TP) == 6)
    assert (TP, 0) in consumer.seeks  # the refused batch read again from the commit
    assert sorted(set(accepted_ids(producer))) == [f"r-{i}" for i in range(6)]
    said = [r for r in caplog.records if r.name == ingest_module.log.name]
    assert [(r.levelname, r.exc_info) for r in said] == [("WARNING", None)], said
    assert "rebalanced (IllegalGenerationError)" in said[0].getMessage()


@pytest.mark.parametrize(
    ("internal_format", "fields"),
    [(1, set()), (2, {"input"}), (3, {"input", "sent_digest"}), (8, {"input", "sent_digest"})],
)
async def test_documents_carry_only_the_fields_workers_of_the_format_read(
    internal_format: int, fields: set[str]
) -> None:
    """An upgrade from e68db41 with CEASEFIRE_INTERNAL_FORMAT=1 dead-lettered 374 alert
    inputs in an old worker ("sent_digest: Extra inputs are not permitted"): documents
    carried the sent digest, which workers before format 3 neither wrote nor read."""
    settings = Settings(internal_format=internal_format)
    ingest, consumer, producer, _ = loop(2, committed_fails=0, send_fails=0, settings=settings)
    await run_until(ingest, lambda: consumer.commits.get(TP) == 2)
    packs = [v for t, v, _ in producer.sent if t.endswith(".accepted")]
    docs = [json.loads(doc) for pack in packs for doc in unpack(pack)]
    assert len(docs) >= 2
    for doc in docs:
        assert {"input", "sent_digest"} & set(doc) == fields, doc


async def test_a_partition_revoked_under_the_rewind_is_left_to_its_new_owner() -> None:
    ingest, consumer, _, _ = loop(2, committed_fails=0, send_fails=0)
    consumer.pos = 2
    consumer.commits[TP] = 1
    await ingest._rewind()  # GONE raises IllegalStateError: skipped, TP still rewound
    assert consumer.seeks == [(TP, 1)]


async def test_a_loop_that_ends_by_an_error_is_not_ready_then_runs_again() -> None:
    ingest, consumer, producer, calls = loop(4, committed_fails=0, send_fails=0)
    run = ingest._run
    ended = False

    async def ends_once() -> None:
        nonlocal ended
        if not ended:
            ended = True
            raise RuntimeError("a defect in the loop")
        await run()

    ingest._run = ends_once  # type: ignore[method-assign]
    await run_until(ingest, lambda: consumer.commits.get(TP) == 4)
    assert calls == ["lost", "ready"]
    assert sorted(accepted_ids(producer)) == [f"r-{i}" for i in range(4)]


async def test_a_rejection_in_a_batch_that_failed_is_counted_once() -> None:
    """The rejection was counted before the batch's sends were acknowledged: each retry of
    the batch counted it again (its dead letter may be sent again: at least once)."""

    def counted() -> float:
        value = REGISTRY.get_sample_value(
            "ceasefire_reports_rejected_total", {"reason": "invalid_json"}
        )
        return value or 0.0

    ingest, consumer, producer, _ = loop(0, committed_fails=0, send_fails=2)
    consumer.records = [record(0, report(0)), record(1, b"{oops"), record(2, report(2))]
    before = counted()
    await run_until(ingest, lambda: consumer.commits.get(TP) == 3)
    assert counted() - before == 1
    dead = [v for t, v, _ in producer.sent if t.endswith(".dlq")]
    assert len(dead) >= 1  # each attempt sends it: at least once


async def test_batches_failing_in_a_row_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each failed batch waited 1 s, however long the fault lasted (a topic refusing
    writes): the batch and its dead letters were sent again every second."""
    monkeypatch.setattr(ingest_module, "RETRY_FIRST_SECONDS", 1.0)
    ingest, consumer, _, _ = loop(3, committed_fails=0, send_fails=5)
    delays: list[float] = []
    recover = ingest._recover

    async def quick(delay: float) -> None:
        delays.append(delay)
        await recover(0.0)

    ingest._recover = quick  # type: ignore[method-assign]
    await run_until(ingest, lambda: consumer.commits.get(TP) == 3)
    assert len(delays) >= 3
    assert delays == [min(2.0**n, ingest_module.RETRY_MAX_SECONDS) for n in range(len(delays))]


class CommitFailing(LoopConsumer):
    """Fails its first `fails` commits, as a coordinator that does not answer."""

    def __init__(self, records: list[ConsumerRecord[bytes, bytes]], fails: int) -> None:
        super().__init__(records, committed_fails=0)
        self.fails = fails

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fails > 0:
            self.fails -= 1
            raise KafkaConnectionError("the coordinator is away")
        await super().commit(offsets)


@pytest.mark.parametrize(("fails", "readiness"), [(4, ["ready"]), (6, ["ready", "lost", "ready"])])
async def test_a_batch_failing_again_and_again_makes_ingest_not_ready_until_one_goes_through(
    fails: int, readiness: list[str]
) -> None:
    """The loop retried the same committed offsets forever (backing off to 30 s) while the
    worker answered ready: a partition stuck on one offset was silent. Five failures in a
    row (about 30 s of retries) now make ingest not ready; a batch that goes through makes
    it ready again. A failure or a few (a broker away for a moment) change nothing."""
    ingest, _, producer, calls = loop(0, committed_fails=0, send_fails=0)
    consumer = CommitFailing([record(i, report(i)) for i in range(3)], fails)
    ingest.consumer = consumer  # type: ignore[assignment]
    await run_until(ingest, lambda: consumer.commits.get(TP) == 3)
    assert calls == readiness
    assert sorted(set(accepted_ids(producer))) == ["r-0", "r-1", "r-2"]


class GatedProducer(FlakyProducer):
    """Holds every delivery until `gate` opens, as a broker slow to acknowledge."""

    def __init__(self) -> None:
        super().__init__(0)
        self.gate = asyncio.Event()

    async def send_batch(
        self, batch: FakeBatch, topic: str, partition: int
    ) -> asyncio.Future[None]:
        await self.gate.wait()
        return await super().send_batch(batch, topic, partition)


async def test_a_rebalance_waits_for_the_batch_under_way_and_nothing_is_dead_lettered_twice() -> (
    None
):
    """A worker joining at full speed: the group moved the partitions while a batch was
    under way, its commit came after and failed, and the batch was read again: its dead
    letters were sent twice (tallies exact: the identity stage knew the reports)."""
    ingest, consumer, _, _ = loop(0, committed_fails=0, send_fails=0)
    producer = GatedProducer()
    ingest.shared.producer = producer  # type: ignore[assignment]
    consumer.records = [record(i, report(i) if i % 2 else b"{oops") for i in range(6)]
    listener = ingest_module._Joined(ingest.joined, ingest._revoking, ingest._assigned)
    task = asyncio.create_task(ingest._supervise())
    try:
        async with asyncio.timeout(10):
            while ingest._idle.is_set():  # the first batch under way, held by the broker
                await asyncio.sleep(0.01)
            revoking = asyncio.create_task(listener.on_partitions_revoked({TP}))
            await asyncio.sleep(0.1)
            assert not revoking.done()  # the member does not rejoin before the commit
            producer.gate.set()
            await revoking
            assert consumer.commits == {TP: 2}
            await asyncio.sleep(0.5)  # batches read before the assignment are left
            assert consumer.commits == {TP: 2}
            consumer.pos = 2  # assigned again: aiokafka starts from the committed offset
            listener.on_partitions_assigned({TP})
            while consumer.commits.get(TP) != 6:
                await asyncio.sleep(0.01)
    finally:
        ingest._stopping.set()
        await asyncio.wait_for(task, timeout=5)
    dead = [v for t, v, _ in producer.sent if t.endswith(".dlq")]
    assert len(dead) == 3  # offsets 0, 2, 4: once each
    assert sorted(accepted_ids(producer)) == ["r-1", "r-3", "r-5"]


async def test_a_batch_that_does_not_finish_lets_the_rebalance_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bounded: a batch stuck on the broker must not keep the member out of its group past
    the rebalance timeout (it is read again, as after any failed commit)."""
    monkeypatch.setattr(ingest_module, "REVOKE_WAIT_SECONDS", 0.2)
    ingest, _, _, _ = loop(0, committed_fails=0, send_fails=0)
    ingest._idle.clear()  # a batch under way that never finishes
    async with asyncio.timeout(2):
        await ingest._revoking()
    assert ingest._moving


async def test_a_revocation_during_a_fetch_waits_for_that_batch_s_commit() -> None:
    """The group moved the partitions while a batch was being read (`_take` awaits after its
    fetch): the batch was committed after the rebalance or, the partition kept, read again
    from the committed offset, its dead letters sent twice."""
    at_revocation: list[dict[TopicPartition, int]] = []

    class Rebalancing(LoopConsumer):
        revoking: asyncio.Task[None] | None = None

        async def getmany(
            self, *tps: TopicPartition, timeout_ms: int
        ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
            batch = await super().getmany(*tps, timeout_ms=timeout_ms)
            if batch and self.revoking is None:
                self.revoking = asyncio.create_task(listener.on_partitions_revoked({TP}))
                self.revoking.add_done_callback(lambda _: at_revocation.append(dict(self.commits)))
                await asyncio.sleep(0.05)  # the group moves on while the batch is read
                assert not self.revoking.done()
            return batch

    ingest, _, producer, _ = loop(0, committed_fails=0, send_fails=0)
    listener = ingest_module._Joined(ingest.joined, ingest._revoking, ingest._assigned)
    consumer = Rebalancing([record(i, report(i) if i % 2 else b"{oops") for i in range(4)], 0)
    ingest.consumer = consumer  # type: ignore[assignment]

    def moved_on() -> bool:
        if consumer.revoking is None or not consumer.revoking.done():
            return False
        if ingest._moving:  # assigned again: aiokafka starts from the committed offset
            consumer.pos = consumer.commits.get(TP, 0)
            listener.on_partitions_assigned({TP})
        return consumer.commits.get(TP) == 4

    await run_until(ingest, moved_on)
    assert at_revocation == [{TP: 2}]  # the member rejoined once its batch was committed
    dead = [v for t, v, _ in producer.sent if t.endswith(".dlq")]
    assert len(dead) == 2  # offsets 0 and 2: once each
    assert sorted(accepted_ids(producer)) == ["r-1", "r-3"]
