"""Ingest whose position is beyond its partition's end (the embedded broker restarted empty
under a running worker): it reads the partition from its start, saying so at ERROR, rather
than wait at the old offset while the new records go by (on in-memory fakes: Tansu answers
a fetch beyond the end with nothing and no error)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiokafka import TopicPartition

from streams.pipeline import ingest as ingest_module
from tests.test_hostile_input import record, report
from tests.test_ingest_recovery import TP, accepted_ids, loop, run_until

pytestmark = pytest.mark.timeout(30)

OTHER = TopicPartition("ceasefire.reports", 2)


def test_a_position_beyond_the_end_is_found() -> None:
    beyond_end = ingest_module.beyond_end
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
