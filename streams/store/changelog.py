"""The one changelog-backed store of the stateful stages.

A stage's state is a function of the entries of its changelog topic (key -> value, the
latest value per key wins, so the topic may be compacted). Per partition the store also
keeps the last input offset whose effects the entries hold (`APPLIED_KEY`, see
`streams/pipeline/progress.py`), written after the entries it covers in the same
partition, in their last batch, which is sent once the others are acknowledged: a
reader that sees it sees them.

One write path: entries go out with the worker's own producer, in hand-built batches per
partition (`batches.py`), and every write is awaited (a step is done when the broker has
it). One recovery: each owned partition is read from
its start to its exact end, the fetch high watermark (Tansu under-reports ListOffsets).
Faust's tables only name the topics and carry partition ownership; they keep nothing
(`streams/store/faust_store.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer, TopicPartition

from streams.config import Settings
from streams.kafka.offsets import read_partitions
from streams.store.batches import send_to_partition

#: No entry key of a stage starts with NUL.
APPLIED_KEY = b"\x00applied"

Entry = tuple[bytes, bytes | None]


@dataclass(slots=True)
class Recovered:
    """What one partition's changelog holds: its entries in the order written (latest per
    key last) and the input offset they cover (-1: none)."""

    entries: list[tuple[bytes, bytes]] = field(default_factory=list)
    applied: int = -1
    read: int = 0


class ChangelogStore:
    def __init__(
        self,
        topic: str,
        settings: Settings,
        producer: Callable[[], Awaitable[AIOKafkaProducer]],
    ) -> None:
        self.topic = topic
        self.settings = settings
        self._producer = producer

    async def write(
        self, partition: int, entries: Iterable[Entry], applied: int | None = None
    ) -> None:
        """Write entries to a partition, then the input offset they cover; awaited. Batch
        by batch, each acknowledged before the next is sent: what lands of a write that
        fails is a prefix of it (`send_to_partition`, `in_order`)."""
        producer = await self._producer()
        records: list[Entry] = list(entries)
        if applied is not None:  # last: in the same partition, after what it covers
            records.append((APPLIED_KEY, str(applied).encode()))
        sends = await send_to_partition(
            producer,
            self.topic,
            partition,
            records,
            in_order=True,
        )
        if sends:
            await asyncio.gather(*sends)

    async def write_many(
        self, entries: Mapping[int, Iterable[Entry]], applied: Mapping[int, int]
    ) -> None:
        await asyncio.gather(
            *(self.write(p, entries.get(p, ()), applied.get(p)) for p in {*entries, *applied})
        )

    async def recover(self, partitions: Iterable[int]) -> dict[int, Recovered]:
        s = self.settings
        wanted = sorted(set(partitions))
        rows = await read_partitions(
            s.bootstrap(), [TopicPartition(self.topic, p) for p in wanted], **s.kafka_security()
        )
        out = {p: Recovered() for p in wanted}
        for tp, records in rows.items():
            rec = out[tp.partition]
            latest: dict[bytes, bytes | None] = {}
            for key, value in records:
                rec.read += 1
                if key == APPLIED_KEY:
                    try:
                        rec.applied = int(value or b"-1")
                    except ValueError:
                        continue
                    continue
                latest.pop(key, None)  # keep write order: a re-written key moves last
                latest[key] = value
            rec.entries = [(k, v) for k, v in latest.items() if v is not None]
        return out
