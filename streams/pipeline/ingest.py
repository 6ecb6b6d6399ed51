"""The ingest stage: input topic -> validated, classified incidents, partitioned by report identity.

This is the stage's consumer (aiokafka); what it does to each record, bytes -> classified
document or dead letter, is pure and lives in `streams/intake.py`.

Accepted incidents are routed to the keyed topic's partition that Kafka's default
partitioner (murmur2) gives their report key, so a report and all its re-sends meet in
one partition, and those of one batch and partition travel together as one message: a
pack of newline-separated incident JSON documents.

Stateless, so it runs as a plain aiokafka consumer group inside the worker rather than
as a Faust agent: Faust's per-event machinery would double the cost of every report
for no benefit here. Offsets are committed only after every record produced from a
batch is acknowledged, so nothing is lost; a crash replays at most one batch, and the
identity stage's revision state makes that replay harmless.

One record can never stall a partition: `route` (`streams/intake.py`) turns whatever goes
wrong with a single record (hostile input, a bug in classification or serialisation) into a
bounded dead letter, so only a failing broker (a send or commit that fails) rewinds
the batch for a retry. Nor can a record the Kafka client itself cannot unpack (a header
name that is not UTF-8, a corrupt batch): its batch is read raw
(`streams/kafka/raw_records.py`) and such records are dead-lettered as `invalid_encoding`.
A batch that keeps failing for another reason makes ingest not ready until one goes
through (`STUCK_AFTER`).

A position beyond a partition's end (the broker lost its data: the embedded broker
restarted empty under a running worker, or the topic was deleted and created again) goes
back to the partition's start, with an ERROR (`beyond_end`): Tansu answers a fetch there
with nothing and no error, and ingest skipped every new record up to the old offset, as
many as the worker had read before. Apache Kafka answers OFFSET_OUT_OF_RANGE, on which
the consumer goes back to the start itself (`auto_offset_reset`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError, IllegalStateError

from streams import metrics
from streams.classify.classifier import Classifier
from streams.config import Settings
from streams.intake import Rejected, route, unreadable_rejected
from streams.kafka.offsets import beyond_end, exact_end_offsets
from streams.kafka.producer import SharedProducer
from streams.kafka.raw_records import (
    UNREADABLE_ERRORS,
    RawRecord,
    Unreadable,
    fetch_raw,
    read_raw,
)
from streams.pipeline.alignment import Alignment
from streams.pipeline.lag import LagReport
from streams.pipeline.packs import send_packs
from streams.pipeline.tuning import release_free_memory, tune_for_throughput

log = logging.getLogger(__name__)

#: Seconds between updates of the consumer-lag gauge.
LAG_INTERVAL = 5.0
#: At most this long (and half the rebalance timeout) a rebalance waits for the batch under
#: way to be committed.
REVOKE_WAIT_SECONDS = 10.0
#: How often the loop looks again while the group moves partitions.
MOVING_POLL_SECONDS = 0.05
#: Backoff after a failed batch or a failed rewind, doubled on each failure in a row.
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0
#: Batches failing this many times in a row (each retried from the same committed offsets:
#: about 30 s of retries) make ingest not ready until one goes through: a partition stuck
#: on one offset (a topic refusing writes) is not a worker answering ready.
STUCK_AFTER = 5
#: Seconds between two looks at the exact end of a partition whose position is beyond the
#: watermark of its last fetch (`beyond_end`).
BEYOND_END_RECHECK_SECONDS = 5.0


class _Joined(ConsumerRebalanceListener):  # type: ignore[misc]
    """Sets `joined` once the group gave this member an assignment, even an empty one
    (more workers than input partitions): the member has joined. `revoking` is awaited
    before the member rejoins (aiokafka awaits the listener), `assigned` called after."""

    def __init__(
        self,
        joined: asyncio.Event,
        revoking: Callable[[], Awaitable[None]],
        assigned: Callable[[], None],
    ) -> None:
        self.joined = joined
        self.revoking = revoking
        self.assigned = assigned

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.revoking()

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.assigned()
        self.joined.set()


class Ingest:
    """Consumes the input topic in batches; started and stopped by the worker.

    Two steps, because the worker's two consumer groups should join together: `join`
    (as the worker starts) subscribes the consumer, which joins the ingest group in the
    background while Faust's group joins; `start` (once Faust has declared its changelog
    topics) starts its producer (`SharedProducer`: in a worker that runs ingest inside its
    own process, the stages share it) and the loop.
    """

    def __init__(
        self,
        settings: Settings,
        classifier: Classifier,
        *,
        on_ready: Callable[[], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.classifier = classifier
        self.on_ready = on_ready
        #: called when the loop ended by an error (it runs again: `_supervise`)
        self.on_lost = on_lost
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.consumer: AIOKafkaConsumer | None = None
        self.shared = SharedProducer(settings, f"{settings.app_id}-ingest")
        self._keyed_partitions_cache: list[int] | None = None
        #: Set once the consumer has joined the ingest group (see `_Joined`).
        self.joined = asyncio.Event()
        self._lag = LagReport()
        self._alignment = Alignment(settings.ingest_align_ms, settings.ingest_align_patience)
        #: monotonic time of the first record consumed (the benchmark measures from it)
        self.first_record_at: float | None = None
        #: Cleared while the worker's stages are too far behind (`pace`).
        self.flowing = asyncio.Event()
        self.flowing.set()
        #: monotonic time each partition's exact end was last read (`_past_the_end`)
        self._end_checked: dict[TopicPartition, float] = {}
        #: partitions sent back to their start, by a position beyond their end
        self.resets = 0
        #: the offset each partition's next record should have, when known (the position
        #: ingest went on from): a batch that starts later may follow records the broker
        #: deleted unread (`_lost_to_retention`); forgotten when partitions move
        self._next: dict[TopicPartition, int] = {}
        #: Clear while a batch is under way (fetched to committed): a rebalance waits for it.
        self._idle = asyncio.Event()
        self._idle.set()
        #: Between a revocation and the next assignment: no batch is taken.
        self._moving = False
        #: offsets below this were counted lost already (a batch failing after the count
        #: is read again from the committed offset below them)
        self._lost_below: dict[TopicPartition, int] = {}
        # exported at 0 from the start, so that the first loss is an increase (an alert)
        metrics.INPUT_MISSING.labels(settings.reports_topic)

    async def join(self) -> None:
        """Subscribe the consumer: it joins the ingest group in the background (a join the
        embedded broker holds half a session timeout: it must not hold up Faust's)."""
        if self.consumer is not None:
            return
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap(),
            group_id=f"{s.app_id}-ingest",
            client_id=f"{s.app_id}-ingest",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=s.batch_size * 2,
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            rebalance_timeout_ms=int(s.rebalance_timeout * 1000),
            session_timeout_ms=int(s.session_timeout * 1000),
            heartbeat_interval_ms=int(s.heartbeat_interval * 1000),
            **s.kafka_security(),
        )
        await self.consumer.start()  # no topics yet: returns without waiting for a join
        self.consumer.subscribe(
            [s.reports_topic],
            listener=_Joined(self.joined, revoking=self._revoking, assigned=self._assigned),
        )

    async def _revoking(self) -> None:
        """Before the group moves partitions: let the batch under way finish and commit
        while this member's generation still holds (a commit after the rebalance fails, and
        its batch is read again: its dead letters were sent twice), and take no new batch
        until the assignment. Bounded, so that a batch stuck on the broker does not keep the
        member out of the group past its rebalance timeout: then the batch is read again,
        as before."""
        self._moving = True
        bound = min(REVOKE_WAIT_SECONDS, self.settings.rebalance_timeout / 2)
        try:
            await asyncio.wait_for(self._idle.wait(), bound)
        except TimeoutError:
            log.warning(
                "ingest's batch under way did not finish within %.1fs of a rebalance: it is "
                "read again from the last committed offsets",
                bound,
            )
        self._next.clear()

    def _assigned(self) -> None:
        self._moving = False
        self._next.clear()

    async def start(self) -> None:
        """Start the shared producer and the loop (joining first if not yet done)."""
        tune_for_throughput()  # the worker's logging is set up by now
        await self.join()
        await self.shared.start()
        self._task = asyncio.create_task(self._supervise(), name="ceasefire-ingest")

    async def stop(self, timeout: float | None = None) -> None:
        """Stop consuming and leave the group. `timeout` is for a child process's stop
        (this one runs in the worker's: the worker's own stop bounds it)."""
        # Idempotent (aiokafka's stops are): the worker calls it from both ingest services.
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        if self.consumer is not None:
            await self.consumer.stop()  # leaves the group, so a restart joins at once
        await self.shared.stop()

    async def _supervise(self) -> None:
        """Run the loop, and run it again if it ever ends by an error: an ingest that
        stopped reading while the worker still answered ready lost the service silently.
        Not ready (`on_lost`) until the loop has joined again."""
        delay = RETRY_FIRST_SECONDS
        while not self._stopping.is_set():
            try:
                await self._run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.critical(
                    "the ingest loop ended by an error; not ready, starting it again in %.0f s",
                    delay,
                    exc_info=True,
                )
                if self.on_lost is not None:
                    self.on_lost()
                await self._recover(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _run(self) -> None:
        assert self.consumer is not None
        ready = False
        lag_updated = 0.0
        delay = RETRY_FIRST_SECONDS  # doubles with each failed batch in a row
        failures = 0  # failed batches in a row
        while not self._stopping.is_set():
            try:
                if self._moving:
                    # between a revocation and the assignment: nothing of ours to read (the
                    # next assignment starts every partition at its committed offset)
                    await asyncio.sleep(MOVING_POLL_SECONDS)
                    continue
                took = self.flowing.is_set()
                # a batch is under way from its fetch to its commit: a revocation waits for
                # it, so that no batch is read under one assignment and committed under the
                # next (fetched records are those of the assignment of their fetch)
                self._idle.clear()
                try:
                    batches = await self._take() if took else await self._held()
                    if not ready and failures < STUCK_AFTER and self.joined.is_set():
                        ready = True  # even with no partition
                        if self.on_ready:
                            self.on_ready()
                    if batches:
                        if self.first_record_at is None:
                            self.first_record_at = time.monotonic()
                        await self._process(batches)
                        delay = RETRY_FIRST_SECONDS
                        release_free_memory()  # the batch's objects are gone (tuning.py)
                finally:
                    self._idle.set()
                if took:  # a batch went through, or nothing is there to fail
                    failures = 0
                if time.monotonic() - lag_updated >= LAG_INTERVAL:
                    lag_updated = time.monotonic()
                    await self._update_lag()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A failed send or commit: back off and retry the batch from the last
                # committed offset rather than lose it.
                # Backing off: a fault that lasts (a topic refusing writes) retried every
                # second, and wrote the batch's dead letters again each time.
                if isinstance(exc, CommitFailedError):
                    # Routine in a group's life, not a fault: one line, not aiokafka's
                    # traceback and its advice on poll intervals.
                    log.warning(
                        "ingest's commit came after its group rebalanced (%s): its batch is "
                        "read again from the last committed offsets, by whoever owns them "
                        "now, in %.0fs (its reports, sent already, count once)",
                        type(exc.__cause__).__name__ if exc.__cause__ else "generation gone",
                        delay,
                    )
                else:
                    log.exception(
                        "ingest batch failed; retrying from last committed offsets in %.0fs",
                        delay,
                    )
                failures += 1
                if failures == STUCK_AFTER and ready:
                    # the same offsets failing again and again: say so, until one goes through
                    log.critical(
                        "ingest has failed %d batches in a row from the same offsets; not "
                        "ready until one goes through",
                        failures,
                    )
                    ready = False
                    if self.on_lost is not None:
                        self.on_lost()
                await self._recover(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _take(self) -> dict[TopicPartition, list[RawRecord]]:
        """The next records, from the partitions furthest behind while a backlog lasts
        (`alignment.py`)."""
        consumer = self.consumer
        assert consumer is not None
        owned = {tp.partition: tp for tp in consumer.assignment()}
        await self._past_the_end(owned.values())
        known = {*self._alignment.last_ts, *self._alignment.untimed}
        self._alignment.forget([p for p in known if p not in owned])
        behind: dict[int, int] = {}
        for p, tp in owned.items():
            hw = consumer.highwater(tp)
            if hw is not None:
                behind[p] = hw - await consumer.position(tp)
        now = time.monotonic()
        chosen = self._alignment.choose(behind, owned, now)
        taking = owned.values() if chosen is None else [owned[p] for p in chosen]
        batches: dict[TopicPartition, list[RawRecord]]
        try:
            batches = await consumer.getmany(*taking, timeout_ms=200)
        except UNREADABLE_ERRORS:
            read = await self._read_past(taking)
            if read is None:
                raise  # not there on a second read: a failed batch, retried as any
            batches = read
        await self._lost_to_retention(batches)
        now_ms = int(time.time() * 1000)
        for tp, records in batches.items():
            if records:
                self._alignment.taken(tp.partition, records[-1].timestamp, now_ms)
        self._alignment.yielded(bool(batches), now)
        return batches

    async def _lost_to_retention(self, batches: dict[TopicPartition, list[RawRecord]]) -> None:
        """Count and log the records the broker deleted (the topic's retention: 7 days)
        before ingest read them. Apache Kafka answers a fetch of their offsets with
        OFFSET_OUT_OF_RANGE, and the consumer goes on from the partition's start
        (`auto_offset_reset`) without a word: a worker down longer than the retention lost
        them silently. A batch that starts past the offset ingest went on from (or, after
        partitions moved, its committed offset) is checked against the partition's start:
        the offsets below it were deleted unread. A gap above the start is the log's own (a
        transaction's markers, aborted records): nothing lost."""
        consumer = self.consumer
        assert consumer is not None
        for tp, records in batches.items():
            if not records:
                continue
            first = records[0].offset
            expected = self._next.get(tp)
            if expected is None:
                with contextlib.suppress(IllegalStateError):  # revoked meanwhile
                    expected = await consumer.committed(tp)
            self._next[tp] = records[-1].offset + 1
            if expected is None:
                continue  # a group that never committed starts at the start: nothing owed
            expected = max(expected, self._lost_below.get(tp, 0))
            if first <= expected:
                continue
            start = (await consumer.beginning_offsets([tp])).get(tp)
            if start is None or start <= expected:
                continue
            lost_to = min(start, first)
            self._lost_below[tp] = lost_to
            metrics.INPUT_MISSING.labels(tp.topic).inc(lost_to - expected)
            log.error(
                "%s[%d]: offsets %d..%d (%d records) were deleted by the topic's retention "
                "before ingest read them: those reports are lost to the monitor. Re-feed them "
                "from their source (a report counted already is counted once)",
                tp.topic,
                tp.partition,
                expected,
                lost_to - 1,
                lost_to - expected,
            )

    async def _past_the_end(self, owned: Iterable[TopicPartition]) -> None:
        """Send each owned partition whose position is beyond its end back to its start,
        saying so at ERROR. The watermark of the last fetch may be older than a seek (a
        batch read raw, `_read_past`), so a position beyond it is checked against the
        partition's exact end, read by a fetch of its own, before anything moves."""
        consumer = self.consumer
        assert consumer is not None
        marks = {tp: hw for tp in owned if (hw := consumer.highwater(tp)) is not None}
        positions: dict[TopicPartition, int] = {}
        for tp in marks:
            with contextlib.suppress(IllegalStateError):  # revoked meanwhile: not ours
                positions[tp] = await consumer.position(tp)
        suspects = beyond_end(positions, dict(marks))
        now = time.monotonic()
        suspects = {
            tp: v
            for tp, v in suspects.items()
            if now - self._end_checked.get(tp, -BEYOND_END_RECHECK_SECONDS)
            >= BEYOND_END_RECHECK_SECONDS
        }
        if not suspects:
            return
        self._end_checked.update(dict.fromkeys(suspects, now))
        s = self.settings
        ends: dict[TopicPartition, int | None] = {}
        ends.update(await exact_end_offsets(s.bootstrap(), suspects, **s.kafka_security()))
        for tp, (at, end) in sorted(beyond_end(positions, ends).items()):
            try:
                if await consumer.position(tp) != at:
                    continue  # moved meanwhile (a rewind): looked at again next time
                await consumer.seek_to_beginning(tp)
                self._next.pop(tp, None)
            except IllegalStateError:
                continue  # revoked meanwhile: its next owner starts from the committed offset
            log.error(
                "%s[%d]: ingest's position %d is beyond the partition's end %d: the broker "
                "lost its records (an embedded broker restarted, or the topic was created "
                "again); reading it from its start, not waiting for offset %d",
                tp.topic,
                tp.partition,
                at,
                end,
                at,
            )
            self.resets += 1

    async def _read_past(
        self, taking: Iterable[TopicPartition]
    ) -> dict[TopicPartition, list[RawRecord]] | None:
        """`getmany` failed on a record the Kafka client cannot unpack (UNREADABLE_ERRORS),
        which retrying would meet again forever. Each partition taken from is read raw from
        its position until the batch that holds it is found: that batch's records (from the
        position on) are returned as the partition's batch, such records among them as
        `Unreadable`, and the consumer goes on after the batch; the offsets are committed
        once the batch's records are processed and its dead letters acknowledged, as any
        batch's. None when no such batch is found (the failure is not there on a second read).

        The failed call may have taken other partitions' records with it (aiokafka moves a
        partition's position as it hands its records over, and the error dropped them), so
        every owned partition goes back to its committed offset first, as after a failed
        batch."""
        consumer = self.consumer
        assert consumer is not None
        await self._rewind()
        for tp in sorted(taking, key=lambda tp: tp.partition):
            position = await consumer.position(tp)
            read = read_raw(await self._fetch_raw(tp, position), tp, position)
            if read is None:
                continue
            records, after = read
            dead = [r for r in records if isinstance(r, Unreadable)]
            log.error(
                "%s[%d]: the Kafka client cannot read the record batch ending before offset "
                "%d (%s); read raw from offset %d: %d records, %d of them dead-lettered as "
                "invalid_encoding",
                tp.topic,
                tp.partition,
                after,
                dead[0].why if dead else f"a record before offset {position}",
                position,
                len(records),
                len(dead),
            )
            consumer.seek(tp, after)
            return {tp: records} if records else {}
        return None

    async def _fetch_raw(self, tp: TopicPartition, offset: int) -> bytes:
        assert self.consumer is not None
        return await fetch_raw(self.consumer, tp, offset)

    def pace(self, behind: int) -> None:
        """Hold while the worker's stages have more than `ingest_lead_packs` packs of the
        keyed topic to apply (`behind`), go on once they are down to half. Reading far ahead
        of the stages undid the alignment of event time (`alignment.py`): the stages' Faust
        consumer reads its partitions unevenly, and old days were closed and reopened."""
        lead = self.settings.ingest_lead_packs
        if behind > lead:
            self.flowing.clear()
        elif behind <= lead // 2:
            self.flowing.set()

    async def _held(self) -> dict[TopicPartition, list[RawRecord]]:
        """No records while held (`pace`); back within 0.2 s to keep the loop's other work."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flowing.wait(), timeout=0.2)
        return {}

    async def _update_lag(self) -> None:
        """Lag per owned input partition: the fetch high watermark minus our position
        (exact on every broker, unlike ListOffsets)."""
        assert self.consumer is not None
        lag: dict[tuple[str, int], int] = {}
        for tp in self.consumer.assignment():
            hw = self.consumer.highwater(tp)
            if hw is None:
                continue
            lag[(tp.topic, tp.partition)] = hw - await self.consumer.position(tp)
        self._lag.publish(lag)

    async def _recover(self, delay: float) -> None:
        """Back off, then seek every owned partition back to its committed offset, retried
        until that holds: reading on from the fetch positions would skip the records of
        the batch that failed (a failed rewind used to end the loop for good)."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            try:
                await self._rewind()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ingest could not go back to its committed offsets; retrying")
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _rewind(self) -> None:
        assert self.consumer is not None
        for tp in self.consumer.assignment():
            try:
                committed = await self.consumer.committed(tp)
                if committed is None:
                    await self.consumer.seek_to_beginning(tp)
                    self._next.pop(tp, None)
                else:
                    self.consumer.seek(tp, committed)
                    self._next[tp] = committed
            except IllegalStateError:
                # Revoked meanwhile (a rebalance): whoever owns it now starts from its
                # committed offset.
                continue

    async def _keyed_partitions(self) -> list[int]:
        if self._keyed_partitions_cache is None:
            self._keyed_partitions_cache = await self.shared.partitions_of(
                self.settings.keyed_topic
            )
        return self._keyed_partitions_cache

    @property
    def producer(self) -> AIOKafkaProducer | None:
        """The producer, or None before it started."""
        return self.shared.producer

    async def _process(self, batches: dict[TopicPartition, list[RawRecord]]) -> None:
        assert self.producer is not None and self.consumer is not None
        s = self.settings
        sends: list[asyncio.Future[Any]] = []
        offsets: dict[TopicPartition, int] = {}
        partitions = await self._keyed_partitions()
        accepted: list[tuple[bytes, bytes]] = []
        now = datetime.now(UTC)
        # where each report was read, for a conflict's dead letter (workers reading whole
        # documents strictly, format 1, would refuse the field)
        keep_origin = s.internal_format >= 2
        keep_sent = s.internal_format >= 3  # the same: e68db41's alert stage refused it
        rejected: Counter[str] = Counter()
        for tp, records in batches.items():
            for record in records:
                routed = (
                    unreadable_rejected(record, now)
                    if isinstance(record, Unreadable)
                    else route(record, self.classifier, now, keep_origin, keep_sent)
                )
                if isinstance(routed, Rejected):
                    rejected[routed.reason.value] += 1
                    sends.append(
                        await self.producer.send(s.dlq_topic, routed.value, key=routed.key)
                    )
                else:
                    accepted.append(routed)
            offsets[tp] = records[-1].offset + 1
        sends.extend(await send_packs(self.producer, s.keyed_topic, accepted, partitions))
        if sends:
            await asyncio.gather(*sends)
        await self.consumer.commit(offsets)
        # Counted once the batch is done: a batch that failed is read and rejected again.
        for reason, n in rejected.items():
            metrics.REJECTED.labels(reason).inc(n)
