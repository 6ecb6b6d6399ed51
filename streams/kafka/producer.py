"""The producer a worker process shares among its stages, started once Faust's topics exist.

It must not start earlier: aiokafka's producer, sending to a topic missing from the
metadata it began with, narrows its metadata to that topic, and sends to the others
stalled 40 s.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from streams.config import Settings


class SharedProducer:
    def __init__(self, settings: Settings, client_id: str) -> None:
        self.settings = settings
        self.client_id = client_id
        #: None until started.
        self.producer: AIOKafkaProducer | None = None
        self.started_event = asyncio.Event()

    async def start(self) -> None:
        if self.producer is not None:
            return
        s = self.settings
        self.producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap(),
            client_id=self.client_id,
            acks="all",
            linger_ms=5,
            max_batch_size=256 * 1024,
            **s.kafka_security(),
        )
        await self.producer.start()
        self.started_event.set()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()  # idempotent

    async def started(self) -> AIOKafkaProducer:
        """The producer, once started (the agents may get records before that)."""
        await self.started_event.wait()
        assert self.producer is not None
        return self.producer

    async def reachable(self, timeout: float) -> bool:
        """Whether a broker answers a metadata request within `timeout` seconds (True
        before the producer has started: nothing to ask with yet)."""
        if self.producer is None:
            return True
        return await self.topics(timeout) is not None

    async def topics(self, timeout: float) -> dict[str, int] | None:
        """The topics the broker has and the partitions of each, from a metadata request
        answered within `timeout` seconds; None when none answered, or before the producer
        has started."""
        if self.producer is None:
            return None
        try:
            cluster = await asyncio.wait_for(self.producer.client.fetch_all_metadata(), timeout)
        except Exception:  # unreachable, refused, timed out: all the same here
            return None
        return {t: len(cluster.partitions_for_topic(t) or ()) for t in cluster.topics()}

    async def partitions_of(self, topic: str) -> list[int]:
        """The partitions of `topic`, sorted."""
        producer = self.producer or await self.started()
        return sorted(await producer.partitions_for(topic))
