"""Ingest whose position is beyond its partition's end (the embedded broker restarted empty
under a running worker): it reads the partition from its start, saying so at ERROR, rather
than wait at the old offset while the new records go by (on in-memory fakes: Tansu answers
a fetch beyond the end with nothing and no error)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiokafka import TopicPartition

from streams.metrics import REGISTRY
from streams.pipeline import ingest as ingest_module
from tests.test_hostile_input import record, report
from tests.test_ingest_recovery import (
    TP,
    FlakyProducer,
    LoopConsumer,
    accepted_ids,
    loop,
    run_until,
)

pytestmark = pytest.mark.timeout(30)

OTHER = TopicPartition("ceasefire.reports", 2)


def test_a_position_beyond_the_end_is_found() -> None:
    from streams.kafka.offsets import beyond_end  # ingest's, the history's, the subscriber's

    positions = {TP: 1217, OTHER: 40}
    assert beyond_end(positions, {TP: 0, OTHER: 40}) == {TP: (1217, 0)}
    assert beyond_end(positions, {TP: 1217, OTHER: 41}) == {}
    assert beyond_end(positions, {TP: None}) == {}  # no fetch answered yet: unknown


async def test_ingest_beyond_the_end_reads_the_new_records_from_the_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ingest, consumer, producer, _ = loop(0, committed_fails=0, send_fails=0)
    consumer.pos = 1217  # read on the broker before it restarted empty
    consumer.records = [record(i, report(i)) for i in range(10)]  # the re-fed reports
    looked: list[Any] = []

    async def exact_end_offsets(bootstrap: str, tps: Any, **opts: Any) -> dict[Any, int]:
        looked.append(sorted(tps))
        return {tp: len(consumer.records) for tp in tps}

    # (raising=False: the test also runs on the code from before the fix, which failed it)
    monkeypatch.setattr(ingest_module, "exact_end_offsets", exact_end_offsets, raising=False)
    with caplog.at_level(logging.ERROR, logger=ingest_module.__name__):
        await run_until(ingest, lambda: consumer.commits.get(TP) == 10)
    assert sorted(accepted_ids(producer)) == sorted(f"r-{i}" for i in range(10))
    assert len(accepted_ids(producer)) == 10  # each once
    assert looked == [[TP]] and ingest.resets == 1
    assert "position 1217 is beyond the partition's end 10" in caplog.text


async def test_a_watermark_older_than_a_seek_moves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last fetch's watermark below the position, the exact end not: nothing moves,
    and the end is not read again for a while."""
    ingest, consumer, _, _ = loop(5, committed_fails=0, send_fails=0)
    consumer.pos = 5
    consumer.records = consumer.records[:3]  # the last fetch saw 3; the partition has 5
    ends = []

    async def exact_end_offsets(bootstrap: str, tps: Any, **opts: Any) -> dict[Any, int]:
        ends.append(5)
        return dict.fromkeys(tps, 5)

    monkeypatch.setattr(ingest_module, "exact_end_offsets", exact_end_offsets)
    await ingest._past_the_end([TP])
    await ingest._past_the_end([TP])
    assert consumer.pos == 5 and ingest.resets == 0 and ends == [5]


# -- records deleted unread ---------------------------------------------------------------
def missing() -> float:
    return (
        REGISTRY.get_sample_value("ceasefire_input_records_missing_total", {"topic": TP.topic})
        or 0.0
    )


class Retained(LoopConsumer):
    """A partition whose records below `start` the broker deleted (retention): a fetch of
    their offsets goes on from the start, as aiokafka's `auto_offset_reset` does."""

    def __init__(self, records: list[Any], start: int) -> None:
        super().__init__(records, committed_fails=0)
        self.start = start

    async def getmany(self, *tps: TopicPartition, timeout_ms: int) -> dict[Any, list[Any]]:
        self.pos = max(self.pos, self.start)
        return await super().getmany(*tps, timeout_ms=timeout_ms)

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.start for tp in tps}


def retained(records: int, start: int, committed: int) -> tuple[Any, Retained, Any]:
    ingest, _, producer, _ = loop(0, committed_fails=0, send_fails=0)
    consumer = Retained([record(i, report(i)) for i in range(records)], start)
    consumer.commits[TP] = consumer.pos = committed
    ingest.consumer = consumer
    return ingest, consumer, producer


async def test_records_deleted_before_ingest_read_them_are_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker down longer than the input topic's retention: Apache Kafka answers the
    committed offset OFFSET_OUT_OF_RANGE and the consumer goes on from the partition's
    start, silently. Ingest counts the offsets it never read and says so at ERROR."""
    ingest, consumer, producer = retained(12, start=7, committed=3)
    before = missing()
    with caplog.at_level(logging.ERROR, logger=ingest_module.__name__):
        await run_until(ingest, lambda: consumer.commits.get(TP) == 12)
    assert sorted(accepted_ids(producer)) == sorted(f"r-{i}" for i in range(7, 12))
    assert missing() - before == 4  # offsets 3..6
    assert "offsets 3..6 (4 records) were deleted by the topic's retention" in caplog.text


async def test_lost_records_are_counted_once_when_their_batch_is_read_again() -> None:
    """The first batch after the gap fails to send: read again from the committed offset,
    below the gap, it is not counted a second time."""
    ingest, consumer, _ = retained(12, start=7, committed=3)
    ingest.shared.producer = FlakyProducer(fails=1)
    before = missing()
    await run_until(ingest, lambda: consumer.commits.get(TP) == 12)
    assert missing() - before == 4


async def test_a_gap_above_the_partition_s_start_is_not_counted() -> None:
    """Offsets a partition's log skips on its own (a transaction's markers, aborted
    records) are no loss: only offsets below the partition's start are."""
    ingest, consumer, producer = retained(12, start=0, committed=3)
    consumer.records = [r for r in consumer.records if r.offset not in (5, 6)]
    before = missing()
    await run_until(ingest, lambda: consumer.commits.get(TP) == 12)
    assert missing() == before
    assert len(accepted_ids(producer)) == 7  # 3, 4, 7..11
