"""Feeds a stateful stage its input in offset order, whatever the delivery did.

The Faust agent hands its batches to `StageInput.offer`; a timer calls `check_tail`.
Both apply records through the stage's `apply` callback under the stage's lock, in
offset order per partition, each offset once per state (see `progress.py` for why).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from aiokafka import TopicPartition

from streams import metrics
from streams.config import Settings
from streams.kafka.offsets import read_range
from streams.pipeline.packs import STEP_RECORDS, steps
from streams.pipeline.progress import Gap, Progress, Record
from streams.pipeline.tuning import release_free_memory

log = logging.getLogger(__name__)

#: How often the stages look for input they were not handed (see progress.py).
TAIL_INTERVAL = 3.0
#: A partition whose end stays ahead of what is applied for this long is reported stalled.
STALL_SECONDS = 60.0
#: Backoff bounds while a step cannot be applied (the broker, most likely).
RETRY_FIRST, RETRY_MAX = 0.5, 15.0

#: A step's processing holds the event loop: the API, the health check and the group's
#: heartbeats wait for it. Steps are sized from the last one's pace to take about this long
#: (a dense zone's backlog of linked reports held the loop for tens of seconds a step).
STEP_SECONDS = 1.0
#: The fewest records a step is cut to (a pack is never cut).
STEP_LEAST = 256

Apply = Callable[[Sequence[Record]], Awaitable[None]]


class StepPace:
    """How many records the next step takes: at most `most`, and about as many as the
    last step's pace processes in `seconds`; it grows at most twofold a step, so that one
    fast step (all duplicates, say) does not let a slow one run long."""

    def __init__(self, most: int, seconds: float = STEP_SECONDS) -> None:
        self.most = most
        self.seconds = seconds
        self.limit = most

    def took(self, records: int, seconds: float) -> None:
        if records <= 0:
            return
        paced = self.most if seconds <= 0 else int(records * self.seconds / seconds)
        self.limit = max(STEP_LEAST, min(self.most, paced, 2 * self.limit))


class StageInput:
    def __init__(
        self,
        topic: str,
        settings: Settings,
        apply: Apply,
        lock: asyncio.Lock,
        step_records: int = STEP_RECORDS,
    ) -> None:
        self.topic = topic
        #: most records of a step (or a single pack)
        self.step_records = step_records
        #: records of the next step, by the pace of the last (`took`)
        self.pace = StepPace(step_records)
        self.settings = settings
        self.apply = apply
        self.lock = lock
        self.progress = Progress()
        #: Per partition: (applied offset, monotonic time it was first seen so).
        self._unchanged: dict[int, tuple[int, float]] = {}
        self.stalled: set[int] = set()
        #: The partitions whose stalled series this stage exports: the owned ones.
        self._exported: set[int] = set()
        #: Changes on every reset and clear, so that work begun before a rebalance
        #: does not advance the progress recovered after it.
        self._generation = 0
        metrics.SKIPPED_RECOVERED.labels(topic)  # the series exist from the start
        metrics.INPUT_MISSING.labels(topic)

    def took(self, step: Sequence[Record], seconds: float) -> None:
        """The stage processed `step` in `seconds` (of the loop's time, writes not counted)."""
        self.pace.took(sum(r.value.count(b"\n") + 1 for r in step), seconds)

    def reset(self, owned: Iterable[int], applied: Mapping[int, int]) -> None:
        self._generation += 1
        self.progress.reset(owned, applied)
        self._unchanged.clear()
        self._set_stalled(set())
        owned = set(self.progress.applied)
        self._unexport(self._exported - owned)
        for p in owned:  # every owned partition exports its 0
            metrics.PARTITION_STALLED.labels(self.topic, str(p)).set(0)
        self._exported = owned

    def clear(self) -> None:
        self._generation += 1
        self.progress.clear()
        self._unchanged.clear()
        self.stalled = set()
        # Partitions given up export nothing (their new owner exports them): a 0 kept here
        # duplicated the owner's series for as long as this worker ran.
        self._unexport(self._exported)
        self._exported = set()

    def _unexport(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            with contextlib.suppress(KeyError):
                metrics.PARTITION_STALLED.remove(self.topic, str(p))

    async def offer(self, records: Sequence[Record]) -> None:
        """Apply what is new among `records` (a delivered batch), after any records
        skipped before them. A record without a value (a tombstone, which Faust hands over
        as None) is applied as b"", as `read_range` reads it: the stage dead-letters it."""
        records = [r if r.value is not None else r._replace(value=b"") for r in records]
        async with self.lock:
            plan = self.progress.plan(records)
            if plan.foreign:
                log.debug(
                    "%s: %d records of partitions not owned dropped", self.topic, plan.foreign
                )
            missing = await self._read(plan.gaps) if plan.gaps else []
            await self._apply_in_order([*missing, *plan.fresh])

    async def check_tail(self, highwaters: Mapping[int, int]) -> None:
        """Apply the tail of any partition that stays behind its high watermark with
        nothing arriving (its last records were skipped), and report stalls."""
        now = time.monotonic()
        behind = {g.partition: g for g in self.progress.behind(highwaters)}
        stuck: list[Gap] = []
        stalled: set[int] = set()
        for p in list(self._unchanged):
            if p not in behind:
                del self._unchanged[p]
        for p, gap in behind.items():
            applied = gap.start - 1
            seen = self._unchanged.get(p)
            if seen is None or seen[0] != applied:
                self._unchanged[p] = (applied, now)
                continue
            stuck.append(gap)  # no progress over a whole check interval
            if now - seen[1] >= STALL_SECONDS:
                stalled.add(p)
        self._set_stalled(stalled)
        if not stuck or self.lock.locked():
            return  # a step is running (or retrying): it is not a skipped tail
        async with self.lock:
            current = {g.partition: g for g in self.progress.behind(highwaters)}
            gaps = [current[g.partition] for g in stuck if g.partition in current]
            if not gaps:
                return
            generation = self._generation
            reached: dict[int, int] = {}
            await self._apply_in_order(await self._read(gaps, reached))
            if generation == self._generation:
                # A tail the broker no longer holds (retention deleted it while the stage
                # was behind) gives no record to apply: without this the partition stayed
                # behind, stalled and the worker not ready, until a new record came.
                for p, end in reached.items():
                    self.progress.skip(p, end - 1)

    async def _read(
        self, gaps: Sequence[Gap], reached: dict[int, int] | None = None
    ) -> list[Record]:
        """The records of `gaps`; `reached`: filled with the offset each partition was
        read up to (exclusive)."""
        s = self.settings
        spans: dict[int, tuple[int, int]] = {}  # one read per partition, over all its gaps
        for g in gaps:
            start, end = spans.get(g.partition, (g.start, g.end))
            spans[g.partition] = (min(start, g.start), max(end, g.end))
        positions: dict[TopicPartition, int] = {}
        got = await read_range(
            s.bootstrap(),
            [(TopicPartition(self.topic, p), start, end) for p, (start, end) in spans.items()],
            reached=positions,
            **s.kafka_security(),
        )
        records = [
            Record(tp.partition, o, v)
            for tp, rows in got.items()
            for o, v in rows
            if any(g.partition == tp.partition and g.start <= o < g.end for g in gaps)
        ]
        if reached is not None:
            reached.update((tp.partition, at) for tp, at in positions.items())
        where = ", ".join(f"[{g.partition}] {g.start}..{g.end - 1}" for g in gaps)
        metrics.SKIPPED_RECOVERED.labels(self.topic).inc(len(records))
        log.warning(
            "%s: %d records were skipped before reaching this stage (%s); read and applied",
            self.topic,
            len(records),
            where,
        )
        missing = sum(g.end - g.start for g in gaps) - len(records)
        if missing > 0:
            metrics.INPUT_MISSING.labels(self.topic).inc(missing)
            log.error(
                "%s: %d offsets of %s held no record to read: deleted by the topic's "
                "retention before this stage applied them (a stage behind for longer than "
                "the retention), so lost to it; it goes on after them",
                self.topic,
                missing,
                where,
            )
        return records

    async def _apply_in_order(self, records: Sequence[Record]) -> None:
        ordered = sorted(records, key=lambda r: (r.partition, r.offset))
        for step in steps(ordered, lambda r: r.value, lambda: self.pace.limit):
            generation = self._generation
            if not await self._apply_retrying(step, generation):
                return
            if generation != self._generation:
                return  # revoked while applying: the next recovery reads what was written
            self.progress.advance(step)
            release_free_memory()  # the step's objects are gone: their pages can go back

    async def _apply_retrying(self, step: Sequence[Record], generation: int) -> bool:
        """Apply a step until it succeeds (records are never skipped) or its partitions
        are revoked."""
        delay = RETRY_FIRST
        while generation == self._generation:
            try:
                await self.apply(step)
                return True
            except asyncio.CancelledError:
                raise
            except Exception:  # the broker, most likely: one bad record is dead-lettered
                log.exception("%s: applying a step failed; retrying in %.1fs", self.topic, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
        return False

    def _set_stalled(self, stalled: set[int]) -> None:
        for p in self.stalled - stalled:
            metrics.PARTITION_STALLED.labels(self.topic, str(p)).set(0)
        for p in stalled:
            metrics.PARTITION_STALLED.labels(self.topic, str(p)).set(1)
        self.stalled = stalled
