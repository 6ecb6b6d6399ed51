"""Exact end offsets.

Some Kafka-protocol brokers (Tansu among them) answer ListOffsets(latest) with the
base offset of the partition's last record batch + 1 rather than the last offset + 1.
The high watermark carried in every fetch response is right on every broker, so we
read it: fetch from just below the ListOffsets answer and take the fetch's
watermark. Table recovery and lag metrics both depend on this being exact.

The watermark is the end even when it is below the ListOffsets answer: nothing past it can
be read. A broker that lists more than it serves has lost data, or holds a write it never
completed (measured: Tansu, restarted empty while a worker's write was pending, listed 1 for
partitions whose watermark was 0, and a read waiting for offset 1 waited for good).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger(__name__)

#: A partition, of aiokafka or kafka-python (both name tuples of topic and partition)
P = TypeVar("P")

#: Seconds a read of a partition up to its end may go without advancing before it fails.
#: The end is known, so a read that stands still this long will not get there (a broker
#: that lost the records, a partition that went away): it fails, and its caller retries.
STALL_SECONDS = 30.0


def beyond_end(
    positions: Mapping[P, int], ends: Mapping[P, int | None]
) -> dict[P, tuple[int, int]]:
    """(position, end) of the partitions whose position is beyond their end: records the
    consumer would wait for at an offset the partition does not reach (its broker lost
    them, or it was created again; Tansu answers a fetch there with nothing and no error).
    An end of None is unknown (no fetch answered yet)."""
    return {
        tp: (at, end)
        for tp, at in positions.items()
        if (end := ends.get(tp)) is not None and at > end
    }


def moved_back(before: Mapping[P, int], after: Mapping[P, int]) -> dict[P, tuple[int, int]]:
    """(position before, position after) of the partitions a consumer now reads from an
    earlier offset than it had read up to, though nothing seeked there: Apache Kafka
    answers a fetch beyond a partition's end with OFFSET_OUT_OF_RANGE and the consumer
    resets to `auto_offset_reset`, so a topic that was lost or deleted and created again is
    read from its new start with no error (Tansu answers nothing instead: `beyond_end`)."""
    return {
        tp: (was, now)
        for tp, now in after.items()
        if (was := before.get(tp)) is not None and now < was
    }


def partition_end(listed: int, highwater: int | None) -> int:
    """The exact end of a partition: the high watermark of a fetch answered after the
    ListOffsets answer `listed` (what any reader can read), or `listed` when no fetch
    answered. Never the larger of the two: the watermark of a fetch sent after ListOffsets
    answered is never below it on a broker that keeps what it listed (Tansu lists less,
    Apache Kafka lists the watermark itself for a read_uncommitted reader), so `listed`
    above it is an offset no reader will reach (`hw_below_listed` says so)."""
    return listed if highwater is None else highwater


def hw_below_listed(tp: TopicPartition, listed: int, highwater: int | None) -> bool:
    """Log that a broker lists an end it does not serve; whether it does."""
    if highwater is None or highwater >= listed:
        return False
    log.warning(
        "%s[%d]: the broker gave its end as offset %d but serves records up to offset %d "
        "only (data lost, or a write it never completed); reading up to %d",
        tp.topic,
        tp.partition,
        listed,
        highwater,
        highwater,
    )
    return True


async def exact_end_offsets(
    bootstrap: str,
    tps: Iterable[TopicPartition],
    *,
    listed: Mapping[TopicPartition, int] | None = None,
    timeout: float = 10.0,
    **client_opts: Any,
) -> dict[TopicPartition, int]:
    """The high watermark of each partition, read from fetch responses (`partition_end`).
    The probe is a consumer of its own, assigned here: the only watermark it knows is that
    of a fetch at the offset it seeks, sent after `listed` was answered (aiokafka keeps
    the watermark of a fetch answered without error at the current position only)."""
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
                    hw_below_listed(tp, listed[tp], hw)
                    result[tp] = partition_end(listed[tp], hw)
                    pending.remove(tp)
        for tp in pending:  # no fetch answer in time: fall back to what the broker listed
            result[tp] = partition_end(listed[tp], None)
        return result
    finally:
        await probe.stop()


async def read_partitions(
    bootstrap: str,
    tps: Iterable[TopicPartition],
    *,
    timeout: float = STALL_SECONDS,
    since_ms: int | None = None,
    **client_opts: Any,
) -> dict[TopicPartition, list[tuple[bytes, bytes | None]]]:
    """Every (key, value) of each partition from its start to its exact end; with
    `since_ms`, from its first record stamped at or after that time (from its start when
    the broker gives no usable answer, as Tansu does when there is no such record).

    A read takes as long as it advances: `timeout` is the most seconds it may go without
    reading further before it fails (TimeoutError, naming each partition's position, end
    and watermark). A partition whose watermark falls below the end found first (the
    broker lost its records meanwhile) is read up to the watermark (`hw_below_listed`)."""
    wanted = list(tps)
    ends = await exact_end_offsets(bootstrap, wanted, **client_opts)
    out: dict[TopicPartition, list[tuple[bytes, bytes | None]]] = {tp: [] for tp in wanted}
    pending = {tp for tp in wanted if ends[tp] > 0}
    if not pending:
        return out
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, **client_opts
    )
    await reader.start()
    try:
        reader.assign(list(pending))
        await reader.seek_to_beginning(*pending)
        if since_ms is not None:
            found = await reader.offsets_for_times({tp: since_ms for tp in pending})
            for tp, at in found.items():
                if at is None:  # Kafka: no record that recent
                    reader.seek(tp, ends[tp])
                elif at.timestamp >= 0:
                    reader.seek(tp, at.offset)
        loop = asyncio.get_running_loop()
        positions: dict[TopicPartition, int] = {}
        advanced = loop.time()
        while pending:
            batches = await reader.getmany(*pending, timeout_ms=500, max_records=10_000)
            for tp, records in batches.items():
                out[tp].extend((r.key or b"", r.value) for r in records)
            for tp in list(pending):
                position = await reader.position(tp)
                if positions.get(tp) != position:
                    positions[tp] = position
                    advanced = loop.time()
                hw = reader.highwater(tp)
                if position >= ends[tp]:
                    pending.discard(tp)
                elif hw is not None and position >= hw and hw_below_listed(tp, ends[tp], hw):
                    pending.discard(tp)  # nothing more to read: the broker lost the rest
            if pending and loop.time() - advanced > timeout:
                raise TimeoutError(
                    f"reading stood still for {timeout:g}s short of the end: "
                    + ", ".join(
                        f"{tp.topic}[{tp.partition}] at offset {positions.get(tp)} of end "
                        f"{ends[tp]} (watermark {reader.highwater(tp)})"
                        for tp in sorted(pending)
                    )
                )
        return out
    finally:
        await reader.stop()


async def read_range(
    bootstrap: str,
    ranges: Iterable[tuple[TopicPartition, int, int]],
    *,
    timeout: float = 60.0,
    reached: dict[TopicPartition, int] | None = None,
    **client_opts: Any,
) -> dict[TopicPartition, list[tuple[int, bytes]]]:
    """(offset, value) of the records in [start, end) of each partition: what a stage
    reads itself when records were skipped before reaching it. Stops at the partition's
    high watermark when that comes first (records deleted or never written). `reached`:
    filled with the offset each partition was read up to (exclusive), records or not: the
    offsets before it that gave no record are no longer on the broker (retention)."""
    wanted = {tp: (start, end) for tp, start, end in ranges if end > start}
    out: dict[TopicPartition, list[tuple[int, bytes]]] = {tp: [] for tp in wanted}
    if not wanted:
        return out
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",  # a start deleted by retention: from what is left
        **client_opts,
    )
    await reader.start()
    try:
        reader.assign(list(wanted))
        for tp, (start, _) in wanted.items():
            reader.seek(tp, start)
        pending = set(wanted)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pending:
            if loop.time() > deadline:
                raise TimeoutError(
                    f"offsets not read within {timeout}s: {sorted(map(str, pending))}"
                )
            batches = await reader.getmany(*pending, timeout_ms=500, max_records=10_000)
            for tp, records in batches.items():
                end = wanted[tp][1]
                out[tp].extend(
                    (r.offset, r.value if r.value is not None else b"")
                    for r in records
                    if r.offset < end
                )
            for tp in list(pending):
                position = await reader.position(tp)
                hw = reader.highwater(tp)
                if position >= wanted[tp][1] or (hw is not None and position >= hw):
                    pending.discard(tp)
                    if reached is not None:
                        reached[tp] = min(position, wanted[tp][1])
        return out
    finally:
        await reader.stop()


async def read_records(
    bootstrap: str,
    topic: str,
    wanted: Iterable[tuple[int, int]],
    *,
    timeout: float = 10.0,
    **client_opts: Any,
) -> dict[tuple[int, int], bytes]:
    """The values of the records at (partition, offset) of `topic`: those still there
    (retention may have deleted some). One read per partition, from its first offset
    wanted to its last."""
    asked = set(wanted)
    spans: dict[int, tuple[int, int]] = {}
    for partition, offset in asked:
        low, high = spans.get(partition, (offset, offset))
        spans[partition] = (min(low, offset), max(high, offset))
    ranges = [(TopicPartition(topic, p), low, high + 1) for p, (low, high) in spans.items()]
    found = await read_range(bootstrap, ranges, timeout=timeout, **client_opts)
    return {
        (tp.partition, offset): value
        for tp, records in found.items()
        for offset, value in records
        if (tp.partition, offset) in asked
    }
