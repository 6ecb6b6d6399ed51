"""Recently resolved alerts, as every worker can answer for them: read from the alert topic.

Firing alerts come from the zones' state, which moves with its partitions. Resolved ones
are history: each worker follows `ceasefire.alerts` (a plain consumer, no group) from
`LOOKBACK` ago and keeps the latest `KEPT` resolved events published within it (by the
record's timestamp: a long-running worker, or a broker that cannot seek by time, would
otherwise answer older ones), so the answer survives restarts and does not depend on which
worker resolved the alert. Latest by when they were published, not by when they were read:
the topic's partitions are read one after another, and keeping the last read let older
resolutions of a partition read later push out the newest of one read first. An event
published twice (a new owner settling an outbox) is kept once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from schemas.alert import AlertEvent
from streams.config import Settings
from streams.kafka.offsets import beyond_end, moved_back

log = logging.getLogger(__name__)

KEPT = 500
LOOKBACK_SECONDS = 7 * 86_400


class ResolvedHistory:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: alert id -> (published at, ms since the epoch; when read; the event): the latest
        #: KEPT
        self.events: dict[str, tuple[int, int, AlertEvent]] = {}
        #: (published at, arrival, alert id) of every event kept, and of some replaced
        #: (skipped when they come up): the oldest first out
        self._oldest: list[tuple[int, int, str]] = []
        self._arrival = itertools.count()
        self._caught_up = False

    @property
    def caught_up(self) -> bool:
        """Whether the look-back has been read to the end of every partition since the read
        last (re)started: until then, resolutions published lately may be missing, or an
        episode's older resolution held where its newer one is not read yet."""
        return self._caught_up

    def latest(self, now_ms: int | None = None) -> list[AlertEvent]:
        """The resolved events published within the look-back, oldest first."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        since = now_ms - LOOKBACK_SECONDS * 1000
        recent = [e for at, _, e in self.events.values() if at >= since]
        return sorted(recent, key=lambda e: (e.ends_at or e.starts_at, e.alert_id))

    def published_since(self, since_ms: int) -> list[AlertEvent]:
        """The resolved events published at or after `since_ms`, in the order read: each
        fingerprint's in the order published (they share a partition, read in offset order;
        record timestamps come from the clocks of whichever workers published them)."""
        recent = [(n, e) for at, n, e in self.events.values() if at >= since_ms]
        return [e for _, e in sorted(recent, key=lambda pair: pair[0])]

    def clear(self) -> None:
        self.events.clear()
        self._oldest.clear()
        self._caught_up = False

    async def follow(self) -> None:
        """Runs for the life of the worker; a broker outage only pauses it."""
        delay = 1.0
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except _CreatedAgain as exc:
                log.warning(
                    "the alert topic was created again (the broker lost it, or it was deleted "
                    "and created): %s; reading it anew, the resolved alerts read before "
                    "forgotten",
                    exc,
                )
            except Exception as exc:
                log.error("following the alert topic failed, retrying in %.0fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _follow(self) -> None:
        s = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # Apache Kafka, the topic created again: all of it
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            **s.kafka_security(),
        )
        await consumer.start()
        try:
            while not (partitions := consumer.partitions_for_topic(s.alerts_topic)):
                await consumer.force_metadata_update()  # the topic may still be being created
                await asyncio.sleep(1.0)
            tps = [TopicPartition(s.alerts_topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            self.clear()  # a retry reads the look-back again
            since = int((time.time() - LOOKBACK_SECONDS) * 1000)
            found = await consumer.offsets_for_times({tp: since for tp in tps})
            for tp in tps:
                at = found.get(tp)
                if at is None:  # nothing that recent
                    await consumer.seek_to_end(tp)
                elif at.timestamp >= 0:
                    consumer.seek(tp, at.offset)
                else:  # no usable answer (Tansu): read the partition from its start
                    await consumer.seek_to_beginning(tp)
            read_to = {tp: await consumer.position(tp) for tp in tps}
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
                for records in batches.values():
                    for record in records:
                        self._add(record.value, record.timestamp)
                positions = {tp: await consumer.position(tp) for tp in tps}
                ends = {tp: consumer.highwater(tp) for tp in tps}  # of the last fetch: exact
                # the topic was lost and created again: the resolutions held are of the lost
                # one (and, once the consumer was reset, some of the new one's too)
                if gone := beyond_end(positions, ends):  # Tansu: the position waits there
                    raise _CreatedAgain(
                        ", ".join(
                            f"partition {tp.partition} was read up to offset {at}, its end is "
                            f"now {end}"
                            for tp, (at, end) in sorted(gone.items())
                        )
                    )
                if reset := moved_back(read_to, positions):  # Apache Kafka: reset to start
                    raise _CreatedAgain(
                        ", ".join(
                            f"partition {tp.partition} was read up to offset {was}, the broker "
                            f"had it read again from offset {now}"
                            for tp, (was, now) in sorted(reset.items())
                        )
                    )
                read_to = positions
                self._caught_up = self._caught_up or all(
                    (end := ends[tp]) is not None and positions[tp] >= end for tp in tps
                )
        finally:
            await consumer.stop()

    def _add(self, value: bytes | None, published_ms: int) -> None:
        if not value:
            return
        try:
            event = AlertEvent.model_validate_json(value)
        except ValidationError as exc:
            log.warning("ignoring a record on the alert topic that is not an alert: %s", exc)
            return
        if event.status != "resolved":
            return
        held = self.events.get(event.alert_id)
        if held is not None and held[0] >= published_ms:
            return  # published again: kept once, at its latest
        arrival = next(self._arrival)
        self.events[event.alert_id] = (published_ms, arrival, event)
        heapq.heappush(self._oldest, (published_ms, arrival, event.alert_id))
        while len(self.events) > KEPT:
            at, _, alert_id = heapq.heappop(self._oldest)
            if self.events.get(alert_id, (None,))[0] == at:  # else replaced by a later copy
                del self.events[alert_id]
        if len(self._oldest) > 2 * KEPT:  # replaced copies' entries: dropped now and then
            self._oldest = [
                (at, n, i) for at, n, i in self._oldest if self.events.get(i, (None,))[0] == at
            ]
            heapq.heapify(self._oldest)


class _CreatedAgain(Exception):
    """A partition's position is beyond its end, or the broker had it read from an earlier
    offset: the topic is not the one read so far. (A topic created again that already holds
    more records than were read of the lost one cannot be told from it: its records are
    read on from the old position.)"""
