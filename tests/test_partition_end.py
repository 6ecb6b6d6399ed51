"""The exact end of a partition is what a fetch serves, even below what ListOffsets lists.

Measured on Tansu restarted empty under a running worker: the alert-state changelog's
partitions were listed at 1 with a fetch high watermark of 0, and a recovery waiting for
offset 1 waited 300 s per attempt, for good. These tests run on a fake consumer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiokafka import TopicPartition

from streams.kafka import offsets
from streams.kafka.offsets import exact_end_offsets, read_partitions

pytestmark = pytest.mark.timeout(30)

TP = TopicPartition("ceasefire-monitor-alert-state-changelog", 0)


def test_the_end_is_the_fetch_watermark_when_a_fetch_answered() -> None:
    partition_end = offsets.partition_end
    assert partition_end(11, 17) == 17  # Tansu lists the last batch's base + 1
    assert partition_end(17, 17) == 17  # Apache Kafka lists the watermark
    assert partition_end(1, 0) == 0  # listed, never served: nothing to wait for
    assert partition_end(5, None) == 5  # no fetch answered: what the broker listed


class FakeConsumer:
    """A partition of `records` that a fetch serves up to `served`, listed at `listed`."""

    listed = 1
    served = 0
    records: list[tuple[bytes, bytes]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.positions: dict[TopicPartition, int] = {}
        self.fetched: set[TopicPartition] = set()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.listed for tp in tps}

    def assign(self, tps: list[TopicPartition]) -> None:
        self.positions = dict.fromkeys(tps, 0)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.positions[tp] = 0

    async def getmany(self, *tps: TopicPartition, **kwargs: Any) -> dict[TopicPartition, Any]:
        await asyncio.sleep(0.01)
        out: dict[TopicPartition, Any] = {}
        for tp in tps:
            self.fetched.add(tp)
            at = self.positions[tp]
            taken = self.records[at : self.served]
            if taken:
                out[tp] = [Rec(k, v) for k, v in taken]
                self.positions[tp] = at + len(taken)
        return out

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.served if tp in self.fetched else None

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]


class Rec:
    def __init__(self, key: bytes, value: bytes) -> None:
        self.key, self.value = key, value


def fake_broker(
    monkeypatch: pytest.MonkeyPatch, listed: int, served: int, records: int = 0
) -> None:
    monkeypatch.setattr(FakeConsumer, "listed", listed)
    monkeypatch.setattr(FakeConsumer, "served", served)
    rows = [(b"k%d" % i, b"v%d" % i) for i in range(records)]
    monkeypatch.setattr(FakeConsumer, "records", rows)
    monkeypatch.setattr(offsets, "AIOKafkaConsumer", FakeConsumer)


def test_a_partition_listed_beyond_what_it_serves_ends_where_it_serves(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake_broker(monkeypatch, listed=1, served=0)
    with caplog.at_level(logging.WARNING, logger=offsets.__name__):
        ends = asyncio.run(exact_end_offsets("fake:9092", [TP]))
    assert ends == {TP: 0}
    assert "gave its end as offset 1 but serves records up to offset 0" in caplog.text


def test_a_partition_tansu_under_lists_ends_at_its_watermark(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake_broker(monkeypatch, listed=11, served=17, records=17)
    with caplog.at_level(logging.WARNING, logger=offsets.__name__):
        ends = asyncio.run(exact_end_offsets("fake:9092", [TP]))
    assert ends == {TP: 17}
    assert caplog.text == ""  # the usual Tansu answer says nothing


def test_a_recovery_read_of_such_a_partition_ends_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_broker(monkeypatch, listed=1, served=0)

    async def read() -> Any:
        return await read_partitions("fake:9092", [TP])

    # before: it waited 300 s for offset 1, and failed; every retry again
    assert asyncio.run(asyncio.wait_for(read(), timeout=5)) == {TP: []}


def test_a_recovery_read_reads_what_is_served(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_broker(monkeypatch, listed=3, served=5, records=5)
    got = asyncio.run(asyncio.wait_for(read_partitions("fake:9092", [TP]), timeout=5))
    assert got == {TP: [(b"k%d" % i, b"v%d" % i) for i in range(5)]}


def test_a_read_that_stands_still_short_of_the_end_fails_soon_saying_where(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The watermark the end was taken from, then records that never come (a fetch that
    answers nothing): the read fails after `timeout` seconds without advancing, naming the
    partition, its position, end and watermark."""
    fake_broker(monkeypatch, listed=4, served=4, records=4)
    monkeypatch.setattr(FakeConsumer, "records", [])  # served, never delivered
    with pytest.raises(TimeoutError) as failed:
        asyncio.run(asyncio.wait_for(read_partitions("fake:9092", [TP], timeout=0.3), 5))
    assert "ceasefire-monitor-alert-state-changelog[0] at offset 0 of end 4" in str(failed.value)
    assert "(watermark 4)" in str(failed.value)
