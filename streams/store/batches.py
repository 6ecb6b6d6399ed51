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


async def send_to_partition(
    producer: AIOKafkaProducer,
    topic: str,
    partition: int,
    records: Iterable[tuple[bytes | None, bytes | None]],
    *,
    last_after_the_rest: bool = False,
) -> list[asyncio.Future[Any]]:
    """Queue (key, value) records for `partition` of `topic`, one Kafka record each;
    returns the delivery futures of the batches (none for no records).

    `last_after_the_rest`: the last batch is sent only once every earlier one is
    acknowledged (raising what a failed one raised, the last unsent). Each batch succeeds
    or fails alone: a first batch that expired while the partition had no leader failed,
    and the next, sent after it, could still land. A batch itself is all or nothing, so a
    record in the last batch is never on the broker without every record before it."""
    futures: list[asyncio.Future[Any]] = []
    batch = None
    for key, value in records:
        if batch is None:
            batch = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:  # full
            futures.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)  # an empty batch takes any
    if batch is not None:
        if last_after_the_rest and futures:
            await asyncio.gather(*futures)
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures
