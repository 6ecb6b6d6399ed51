"""Many records to one partition, in aiokafka batches built by hand.

`AIOKafkaProducer.send` costs a future, a debug-log call and a queue hop per record; a
stage writes several records per report (changelog entries, incident versions), so that
cost was a tenth of the pipeline's CPU. A `BatchBuilder` takes records at C speed and the
whole batch is one future. Records of one call reach the partition in the order given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.record.default_records import DefaultRecordBatchBuilder

#: aiokafka's default `max_request_size`, for a producer that does not say its own.
DEFAULT_MAX_REQUEST_SIZE = 1_048_576


async def send_to_partition(
    producer: AIOKafkaProducer,
    topic: str,
    partition: int,
    records: Iterable[tuple[bytes | None, bytes | None]],
    *,
    in_order: bool = False,
) -> list[asyncio.Future[Any]]:
    """Queue (key, value) records for `partition` of `topic`, one Kafka record each;
    returns the delivery futures of the batches (none for no records).

    `in_order`: each batch is sent once the one before it is acknowledged (raising what a
    failed one raised, the rest unsent), so that what lands of the records is always a
    prefix of them. Batches sent together succeed or fail alone: a first batch that expired
    while the partition had no leader failed, and the next could still land. A changelog
    write needs the prefix: the input offset it covers is its last record, a journal its
    first, and new copies come before the deletes of what they replace. (Sent together, a
    later batch of a backlog's step landed while an earlier failed: the step's replay
    skipped what had landed and never made again what had not, publishing an incident
    version lower than one already out, or counting one event as two incidents.) A batch
    itself is all or nothing.

    A record larger than the producer's `max_request_size` raises ValueError, unsent (the
    batches before it are sent: a failed write, as one of their own failing is). A record
    alone in a batch is taken whatever its size, and `send_batch` checks none (`send`
    does): the broker refused it later, past its `message.max.bytes` (a closed day's unit
    did, before units were cut into parts: its close failed at every sweep, logged only).
    Only a batch's first record is checked: one that joins a batch is within its size."""
    limit: int = getattr(producer, "_max_request_size", DEFAULT_MAX_REQUEST_SIZE)
    futures: list[asyncio.Future[Any]] = []
    batch = None
    for key, value in records:
        if batch is not None and batch.append(key=key, value=value, timestamp=None) is not None:
            continue
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, [])
        if size > limit:
            for sent in futures:  # (their outcome is the caller's no more: this raises)
                sent.add_done_callback(_retrieved)
            raise ValueError(
                f"a record of {size:,} bytes for {topic} partition {partition} (key "
                f"{(key or b'')[:40]!r}) is larger than the producer's max_request_size "
                f"({limit:,}): not sent"
            )
        if batch is not None:  # full
            if in_order and futures:
                await futures[-1]
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        batch = producer.create_batch()
        batch.append(key=key, value=value, timestamp=None)  # an empty batch takes any
    if batch is not None:
        if in_order and futures:
            await futures[-1]
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
