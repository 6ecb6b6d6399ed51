"""In-memory stand-ins for aiokafka objects, shared by the stage tests."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from aiokafka.record.default_records import DefaultRecordBatchBuilder

#: The producer's request limit (max_request_size), which a batch must stay under.
KAFKA_LIMIT = 1024 * 1024


class FakeBatch:
    """aiokafka's BatchBuilder as far as the stages use it: full past KAFKA_LIMIT."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []
        self.size = 0

    def append(self, key: bytes | None, value: bytes | None, timestamp: None) -> object | None:
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, [])
        if self.records and self.size + size > KAFKA_LIMIT:
            return None
        self.records.append((key, value))
        self.size += size
        return object()


class FakeProducer:
    """An AIOKafkaProducer that keeps what it is sent: topic -> [(partition, key, value)],
    every send acknowledged at once."""

    def __init__(self) -> None:
        self.sent: dict[str, list[tuple[int | None, bytes | None, bytes | None]]] = defaultdict(
            list
        )

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[None]:
        self.sent[topic].append((partition, key, value))
        return _done()

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(
        self, batch: FakeBatch, topic: str, partition: int
    ) -> asyncio.Future[None]:
        self.sent[topic].extend((partition, key, value) for key, value in batch.records)
        return _done()


def _done() -> asyncio.Future[None]:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done


def fail_next_write(stage: Any, *, after: int = 0, method: str = "write_many") -> None:
    """The stage's next changelog write fails (the broker away), later ones succeed;
    `after`: that many writes succeed first (the tombstone after a step's write)."""
    original = getattr(stage.store, method)
    left = [after, 1]  # to let through, to fail

    async def flaky(*args: Any, **kwargs: Any) -> None:
        if left[0]:
            left[0] -= 1
        elif left[1]:
            left[1] -= 1
            raise ConnectionError("broker away")
        await original(*args, **kwargs)

    setattr(stage.store, method, flaky)
