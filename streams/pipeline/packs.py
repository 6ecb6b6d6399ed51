"""Packs: many records for one partition of an internal topic, in one Kafka message.

Faust's cost is per event, so the internal hops carry packs of newline-separated JSON
documents. A record's partition is what Kafka's default partitioner (murmur2) gives its
key, so records with equal keys always meet in one partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

#: Records per pack, and bytes: a pack stays under the producer's 1 MiB request limit
#: whatever the records hold (256 incidents with 4,000-character Cyrillic descriptions
#: made a 2.1 MB pack that no producer could send: issue 9). A record larger than
#: PACK_BYTES travels alone.
PACK_SIZE = 256
PACK_BYTES = 512 * 1024
#: Most records an agent expands into objects at once. A backlog gives it batches of up
#: to CEASEFIRE_BATCH_SIZE full packs (256,000 records by default); it works through
#: them in steps of this many, so memory does not grow with the batch.
STEP_RECORDS = 16_384

_partitioner = DefaultPartitioner()
T = TypeVar("T")


def partition_for(key: bytes, partitions: Sequence[int]) -> int:
    p: int = _partitioner(key, list(partitions), list(partitions))
    return p


def packs(
    records: Iterable[tuple[bytes, bytes]], partitions: Sequence[int]
) -> Iterator[tuple[int, bytes]]:
    """(key, JSON document) -> (partition, pack) with at most PACK_SIZE documents each."""
    grouped: dict[int, list[bytes]] = {}
    known: dict[bytes, int] = {}  # zone keys repeat: hash each once per call
    for key, value in records:
        p = known.get(key)
        if p is None:
            p = known[key] = partition_for(key, partitions)
        grouped.setdefault(p, []).append(value)
    for p, values in grouped.items():
        start, size = 0, 0
        for i, value in enumerate(values):
            if i > start and (i - start >= PACK_SIZE or size + len(value) > PACK_BYTES):
                yield p, b"\n".join(values[start:i])
                start, size = i, 0
            size += len(value) + 1
        if start < len(values):
            yield p, b"\n".join(values[start:])


def unpack(pack: bytes) -> list[bytes]:
    return pack.split(b"\n")


def steps(events: Sequence[T], records: Callable[[T], bytes]) -> Iterator[Sequence[T]]:
    """Consecutive runs of `events` (each carrying a pack, given by `records`) holding at
    most STEP_RECORDS records, or a single pack."""
    start, held = 0, 0
    for i, event in enumerate(events):
        n = records(event).count(b"\n") + 1
        if held and held + n > STEP_RECORDS:
            yield events[start:i]
            start, held = i, 0
        held += n
    if start < len(events):
        yield events[start:]


async def send_each(
    producer: AIOKafkaProducer,
    topic: str,
    records: Iterable[tuple[bytes, bytes]],
    partitions: Sequence[int],
) -> list[asyncio.Future[Any]]:
    """Send (key, value) records one per message, in aiokafka batches built per partition:
    far cheaper than one `send` per record. Returns the batches' delivery futures."""
    grouped: dict[int, list[tuple[bytes, bytes]]] = {}
    for key, value in records:
        grouped.setdefault(partition_for(key, partitions), []).append((key, value))
    futures: list[asyncio.Future[Any]] = []
    for p, items in grouped.items():
        batch = producer.create_batch()
        for key, value in items:
            if batch.append(key=key, value=value, timestamp=None) is None:
                futures.append(await producer.send_batch(batch, topic, partition=p))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        futures.append(await producer.send_batch(batch, topic, partition=p))
    return futures
