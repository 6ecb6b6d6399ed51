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
    last_after_the_rest: bool = False,
    first_before_the_rest: bool = False,
) -> list[asyncio.Future[Any]]:
    """Queue (key, value) records for `partition` of `topic`, one Kafka record each;
    returns the delivery futures of the batches (none for no records).

    `last_after_the_rest`: the last batch is sent only once every earlier one is
    acknowledged (raising what a failed one raised, the last unsent). Each batch succeeds
    or fails alone: a first batch that expired while the partition had no leader failed,
    and the next, sent after it, could still land. A batch itself is all or nothing, so a
    record in the last batch is never on the broker without every record before it.

    `first_before_the_rest`: no other batch is sent until the first is acknowledged, so
    that no record after the first batch lands without it (a journal: the alert stage's
    changes and events, which its recovery replays; a part landing without the journal
    was state no event was published for).

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
            futures.append(await producer.send_batch(batch, topic, partition=partition))
            if first_before_the_rest and len(futures) == 1:
                await futures[0]
        batch = producer.create_batch()
        batch.append(key=key, value=value, timestamp=None)  # an empty batch takes any
    if batch is not None:
        if last_after_the_rest and futures:
            await asyncio.gather(*futures)
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
