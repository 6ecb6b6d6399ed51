"""Exact end offsets.

Some Kafka-protocol brokers (Tansu among them) answer ListOffsets(latest) with the
base offset of the partition's last record batch + 1 rather than the last offset + 1.
The high watermark carried in every fetch response is right on every broker, so we
read it: fetch from just below the ListOffsets answer and take the fetch's
watermark. Table recovery and lag metrics both depend on this being exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition


async def exact_end_offsets(
    bootstrap: str,
    tps: Iterable[TopicPartition],
    *,
    listed: Mapping[TopicPartition, int] | None = None,
    timeout: float = 10.0,
    **client_opts: Any,
) -> dict[TopicPartition, int]:
    """The high watermark of each partition, read from fetch responses."""
    wanted = list(tps)
    if not wanted:
        return {}
    probe = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        fetch_max_bytes=1 << 20,
        max_partition_fetch_bytes=1 << 16,
        **client_opts,
    )
    await probe.start()
    try:
        if listed is None:
            listed = await probe.end_offsets(wanted)
        result: dict[TopicPartition, int] = {}
        pending = [tp for tp in wanted if listed.get(tp, 0) > 0]
        for tp in wanted:
            if listed.get(tp, 0) <= 0:
                result[tp] = 0
        if not pending:
            return result
        probe.assign(pending)
        for tp in pending:
            probe.seek(tp, max(listed[tp] - 1, 0))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pending and loop.time() < deadline:
            await probe.getmany(*pending, timeout_ms=200)
            for tp in list(pending):
                hw = probe.highwater(tp)
                if hw is not None:
                    result[tp] = max(hw, listed[tp])
                    pending.remove(tp)
        for tp in pending:  # no fetch answer in time: fall back to what the broker listed
            result[tp] = listed[tp]
        return result
    finally:
        await probe.stop()


def patch_faust_highwaters(bootstrap: str, client_opts: dict[str, Any]) -> None:
    """Make Faust's table recovery read changelogs to their true end.

    Faust asks its consumer for `end_offsets` (ListOffsets) to know where recovery
    stops; on brokers that under-report it, recovery would stop short and silently
    lose state. We route that one call through `exact_end_offsets`.
    """
    from faust.transport.drivers import aiokafka as faust_aiokafka

    thread_cls = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread_cls, "_ceasefire_patched", False):
        return
    original = thread_cls._highwaters

    async def _highwaters(self: Any, partitions: list[Any]) -> Mapping[Any, int]:
        if self.consumer.in_transaction:
            return await original(self, partitions)
        consumer = self._ensure_consumer()
        listed = await consumer.end_offsets(partitions)
        exact = await exact_end_offsets(
            bootstrap,
            [TopicPartition(tp.topic, tp.partition) for tp in partitions],
            listed={TopicPartition(tp.topic, tp.partition): v for tp, v in listed.items()},
            **client_opts,
        )
        return {tp: exact[TopicPartition(tp.topic, tp.partition)] for tp in partitions}

    thread_cls._highwaters = _highwaters
    thread_cls._ceasefire_patched = True
