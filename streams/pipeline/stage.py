"""What every stateful stage shares: ownership, recovery, ordered input, the write path.

A stage is a Faust agent over one internal topic with state in one changelog
(`streams/store/changelog.py`). This base class owns the lifecycle, so that the stages
hold only their logic:

- on assignment (the Faust table's recovery callback) it reads the changelog of the owned
  partitions to its exact end and hands each partition's entries to `restore`; then it
  applies input in offset order from where the changelog says (`StageInput`);
- each step runs `process` (over the stage's memory, filling an output) and then
  `commit` (publish, then write the changelog and the applied offsets). If `commit` fails
  the step is retried with the output kept: the in-memory state already holds the step,
  so only the commit is repeated (a recovery, which rebuilds memory, drops the output);
- readiness: unset from revocation until the recovery of the new assignment is done,
  and, for a stage that has something to settle after a recovery (`unsettled`: an outbox
  a previous owner left), until `settle` has succeeded (retried with backoff).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import faust
from aiokafka import AIOKafkaProducer

from streams import metrics
from streams.config import Settings
from streams.kafka.topics import durability
from streams.pipeline import packs
from streams.pipeline.progress import Record
from streams.pipeline.stage_input import StageInput
from streams.pipeline.stall_fence import StallFence
from streams.pipeline.tuning import release_free_memory
from streams.store import faust_store
from streams.store.changelog import ChangelogStore, Recovered

log = logging.getLogger(__name__)

#: Backoff of a failed recovery's retries: doubling from the first to the most.
RECOVERY_RETRY_FIRST_SECONDS = 1.0
RECOVERY_RETRY_MAX_SECONDS = 30.0

#: (partition, offset, value, error) of internal records that cannot be processed.
DeadRecord = tuple[int, int, bytes, str]


class DeadLetterPort(Protocol):
    """(topic, records, reason code) -> records on the dead-letter topic; `keys`, when
    given, the Kafka key of each record's dead letter, in order (a report's identity)."""

    def __call__(
        self,
        topic: str,
        records: Sequence[DeadRecord],
        reason: str,
        keys: Sequence[bytes | None] | None = None,
    ) -> Awaitable[None]: ...


#: (partition, offset) of input-topic records -> the values of those still there
InputReader = Callable[[set[tuple[int, int]]], Awaitable[dict[tuple[int, int], bytes]]]


@dataclass(frozen=True)
class Ports:
    """What a stage may use of the worker: nothing else."""

    settings: Settings
    app: faust.App
    producer: Callable[[], Awaitable[AIOKafkaProducer]]
    partitions_of: Callable[[str], Awaitable[list[int]]]
    #: (topic, records, reason code) -> records on the dead-letter topic
    dead_letter: DeadLetterPort
    readiness_changed: Callable[[], None]
    #: (partition, offset) of input-topic records -> their values, those still there: the
    #: reports as sent, for the dead letters of revision conflicts (None: not read back)
    read_input: InputReader | None = None
    #: the process's loop pauses longer than the session timeout (None: not watched)
    fence: StallFence | None = None


OutT = TypeVar("OutT")


def describe(exc: BaseException) -> str:
    """An error as a log line says it: its type and what it says."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc)


class Revoked(Exception):
    """A step's partitions were revoked while it was being written: it writes no more (the
    next owner redoes it from the input offset the changelog holds)."""


class Stage(Generic[OutT]):
    """Subclasses give `restore`, `new_output`, `process`, `commit`, `committed`."""

    #: Partitions of the input topic whose state this worker holds now.
    owned: set[int]
    #: Most input records of one step (or a single pack): what one write covers.
    STEP_RECORDS = packs.STEP_RECORDS

    def __init__(
        self,
        ports: Ports,
        *,
        topic: str,
        table: str,
        agent: str,
        partitions: int | None = None,
        changelog_app_id: str | None = None,
    ) -> None:
        """`partitions`: of the input topic and the changelog (default: the settings').
        `changelog_app_id`: the app id the changelog is named for, when the stage runs in
        an app of another id (a process of its own): the same state wherever it runs."""
        self.ports = ports
        s = ports.settings
        app = ports.app
        n = s.partitions if partitions is None else partitions
        self.topic_name = topic
        self.topic = app.topic(
            topic,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=n,
        )
        changelog = None
        if changelog_app_id is not None:
            # Given to the table as it is made: the app's tables pause their changelogs by
            # name, and one they did not know would be consumed as a stream, every state
            # record through Faust (as Faust's own changelog topics are declared)
            changelog = app.topic(
                f"{changelog_app_id}-{table}-changelog",
                key_type=bytes,
                value_type=bytes,
                partitions=n,
                compacting=True,
                acks=False,
                internal=True,
                maxsize=131_072,
                allow_empty=True,
                config=durability(ports.settings),
            )
        self.table = app.Table(
            table,
            partitions=n,
            key_type=bytes,
            value_type=bytes,
            store=faust_store.register(),
            changelog_topic=changelog,
            extra_topic_configs=durability(s),  # the changelog Faust declares
        )
        self.store = ChangelogStore(self.table.changelog_topic.get_topic_name(), s, ports.producer)
        self.lock = asyncio.Lock()
        self.input = StageInput(topic, s, self._apply, self.lock, self.STEP_RECORDS)
        self.ready = asyncio.Event()
        self.owned = set()
        self._pending: OutT | None = None
        #: bumped by every revocation and recovery: a settle started before gives up
        self.generation = 0
        self._settling: asyncio.Task[None] | None = None
        self._recovering: asyncio.Task[None] | None = None  # a failed recovery's retries
        self._after_pause: asyncio.Task[None] | None = None  # `_recover_after_pause`
        #: revocations and recoveries begun so far (a recovery after a pause is not wanted
        #: after either: `_recover_after_pause`)
        self._revocations = 0
        self._recoveries = 0
        if ports.fence is not None:
            ports.fence.listen(self._paused)
        #: maintenance work waiting for the lock (an ordered set: each runs once)
        self._due: dict[Callable[[OutT], bool], None] = {}
        self.table.on_recover(self._on_recovered)
        app.agent(self.topic, name=agent)(self._agent)

    # -- to give ---------------------------------------------------------------------
    def restore(self, partitions: dict[int, Recovered]) -> None:
        raise NotImplementedError

    async def restore_yielding(self, partitions: dict[int, Recovered]) -> None:
        """`restore`, as the recovery runs it: a stage whose state takes long to rebuild
        gives the event loop a turn between parts of it, so that its process's other work
        (a child's status reports, which the worker watches) goes on meanwhile."""
        self.restore(partitions)

    def new_output(self) -> OutT:
        raise NotImplementedError

    def process(self, records: Sequence[Record], out: OutT) -> None:
        """Apply records to the in-memory state, adding what to publish and write to
        `out`. Must not raise on a bad record: it dead-letters it through `out`."""
        raise NotImplementedError

    async def commit(self, out: OutT, applied: dict[int, int]) -> None:
        """Publish, then write the changelog entries and `applied` (awaited)."""
        raise NotImplementedError

    def committed(self, out: OutT) -> None:
        """After a successful commit: metrics and query views."""

    def unsettled(self) -> bool:
        """After `restore`: whether `settle` must run before the stage is ready."""
        return False

    async def settle(self) -> None:
        """Complete what a previous owner left half done (an outbox: events it wrote but
        did not confirm published). Runs after the recovery, outside the lock (publishing
        needs the producer, which may still be starting); takes the lock to write, and
        writes nothing if `generation` moved meanwhile. Raises to be retried."""

    # -- lifecycle -------------------------------------------------------------------
    def owned_partitions(self) -> set[int]:
        return {
            tp.partition
            for tp in self.ports.app.assignor.assigned_actives()
            if tp.topic == self.topic_name
        }

    def revoked(self) -> None:
        self._revocations += 1
        self.generation += 1  # a settle under way gives up: its partitions may have moved
        self.ready.clear()
        self.input.clear()
        self.ports.readiness_changed()

    def check_owned(self, generation: int) -> None:
        """Raise `Revoked` if the partitions moved since `generation` (between a commit's
        awaited writes: an old owner's write landing after the next owner's recovery read
        the changelog took a moved report back, or brought a withdrawn one back). A pause of
        the process longer than the session timeout, not seen yet, revokes the stage here
        (`_paused`): its partitions may have moved without its knowing (`stall_fence.py`)."""
        if self.ports.fence is not None:
            self.ports.fence.look()  # a pause not seen yet is dealt with now (`_paused`)
        if generation != self.generation:
            raise Revoked(self.topic_name)

    def _begin_step(self) -> None:
        """Before a step's work: a pause the loop just woke from revokes the stage first."""
        if self.ports.fence is not None:
            self.ports.fence.look()

    def _paused(self, seconds: float, limit: float) -> None:
        """The process was paused longer than the session timeout: its partitions may be
        another worker's. Revoked as by a rebalance (a step being written writes no more,
        none is taken until a recovery), then recovered again from the changelog, by this
        stage unless a rebalance's own recovery comes first."""
        log.warning(
            "%s: this process was paused %.1fs, longer than the session timeout (%.0fs): "
            "its partitions may be another worker's now. The step is not written; the "
            "state is recovered again from the changelog",
            self.topic_name,
            seconds,
            limit,
        )
        self.revoked()
        # its own reference: one in `_recovering` would drop a retrying recovery's task
        # (the loop keeps only weak ones)
        self._after_pause = asyncio.create_task(
            self._recover_after_pause(self._revocations, self._recoveries)
        )

    async def _recover_after_pause(self, revocations: int, recoveries: int) -> None:
        # A pause longer than the session timeout put the worker out of its group: on
        # waking it rejoins (revoking first, or not: a member the group no longer knows
        # is assigned anew without a revocation) and Faust recovers the new assignment.
        # That took up to 13 s with a 6 s session timeout; recovering after 2 s here made
        # this worker a second owner of partitions already given to another (its writes
        # left wrong tallies on every worker). Only when neither a revocation nor a
        # recovery came within twice the session timeout and a rebalance's does the stage
        # recover by itself.
        s = self.ports.settings
        await asyncio.sleep(2 * s.session_timeout + s.rebalance_timeout)
        if revocations == self._revocations and recoveries == self._recoveries:
            log.warning(
                "%s: no rebalance followed the pause: recovering the state of the partitions "
                "this worker holds",
                self.topic_name,
            )
            await self._on_recovered()

    async def quiesce(self, timeout: float) -> None:
        """After `revoked`: wait, `timeout` at most, for the step or the maintenance holding
        the lock to end (revoked, the stage starts no other: `StageInput`, `maintain`)."""
        try:
            async with asyncio.timeout(timeout):
                await self.lock.acquire()
        except TimeoutError:
            log.warning(
                "%s: a step was still being written %.1fs after its partitions were revoked",
                self.topic_name,
                timeout,
            )
            return
        self.lock.release()

    async def _on_recovered(self) -> None:
        """Faust's recovery calls this in a task it awaits with `asyncio.wait`, which drops
        what it raises: a failed recovery (the broker away for a moment, a changelog entry
        `restore` refuses, a changelog the broker no longer serves to its end) left the
        stage not ready, its partitions unread, until the next rebalance. It is retried
        here, with backoff, until it succeeds or the partitions move again; every failure
        is an ERROR naming what the recovery waits for (the read of a changelog fails after
        `offsets.STALL_SECONDS` without advancing, not minutes later)."""
        generation = self.generation
        # counted as it begins: a rebalance's recovery still reading the changelog when the
        # stage's wait after a pause ends is the recovery (`_recover_after_pause`)
        self._recoveries += 1
        try:
            await self._recover()
        except Exception as exc:  # the broker, most likely
            if generation == self.generation:
                self._recovering = asyncio.create_task(self._recover_retrying(generation, exc))
            else:  # revoked meanwhile: the next recovery is Faust's
                log.error(
                    "%s: recovering the state failed, the stage is not ready until the "
                    "recovery of its new assignment: %s",
                    self.topic_name,
                    describe(exc),
                )

    async def _recover_retrying(self, generation: int, exc: Exception) -> None:
        delay = RECOVERY_RETRY_FIRST_SECONDS
        attempt = 1
        while generation == self.generation:
            log.error(
                "%s: recovering the state failed, the stage is not ready; retrying in %.0fs "
                "(attempt %d): %s",
                self.topic_name,
                delay,
                attempt,
                describe(exc),
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECOVERY_RETRY_MAX_SECONDS)
            if generation != self.generation:
                return  # revoked meanwhile: the next recovery is Faust's
            attempt += 1
            try:
                await self._recover()
            except Exception as again:
                exc = again
                continue
            log.warning("%s: recovered the state at attempt %d", self.topic_name, attempt)
            return

    async def _recover(self) -> None:
        async with self.lock:  # a step still being written lands before we read
            started = time.monotonic()
            owned = self.owned_partitions()
            recovered = await self.store.recover(owned)
            self._pending = None
            before, self.owned = self.owned, owned
            await self.restore_yielding(recovered)
            self.generation += 1
            self.input.reset(owned, {p: r.applied for p, r in recovered.items()})
            read = sum(r.read for r in recovered.values())
            del recovered  # the changelog's records: their pages go back now
            release_free_memory(now=True)
            elapsed = time.monotonic() - started
            metrics.STATE_RECOVERY_SECONDS.labels(self.topic_name).set(elapsed)
            metrics.STATE_RECOVERED_ENTRIES.labels(self.topic_name).set(read)
            log.info(
                "%s: state of partitions %s recovered from %d changelog records in %.2fs",
                self.topic_name,
                sorted(owned),
                read,
                elapsed,
            )
            if before and owned - before:
                # the other side of a worker's death or stop: the only line a takeover
                # leaves here besides the rebalance itself
                log.warning(
                    "%s: took over partitions %s (another worker left the group: stopped, "
                    "crashed, or cut off from the broker); gave up %s",
                    self.topic_name,
                    sorted(owned - before),
                    sorted(before - owned) or "none",
                )
            unsettled = self.unsettled()
        if unsettled:
            self._settling = asyncio.create_task(self._settle_retrying(self.generation))
        else:
            self._set_ready()

    def _set_ready(self) -> None:
        self.ready.set()
        self.ports.readiness_changed()

    async def _settle_retrying(self, generation: int) -> None:
        delay = 1.0
        while generation == self.generation:
            try:
                await self.settle()
            except Revoked:
                return  # the partitions' next owner settles
            except Exception as exc:  # the broker, most likely: the stage stays not ready
                log.error("%s: settling failed, retrying in %.0fs: %s", self.topic_name, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            if generation == self.generation:
                self._set_ready()
            return

    async def _agent(self, stream: Any) -> None:  # faust.Stream; its stubs lack take_events
        """Hands each delivered batch to `self.input`. A batch it fails on (the read of a gap
        timing out, the broker away), or delivered while the stage is not ready, is left:
        Faust has acknowledged it already, and raising would end the agent, so the stage
        would take no more input. Nothing is lost: what was not applied stays beyond the
        stage's progress, which the next batch's gap read or the tail check
        (`StageInput.check_tail`) reads and applies, each offset once."""
        s = self.ports.settings
        async for events in stream.take_events(s.batch_size, within=s.batch_within):
            if not self.ready.is_set():
                # Revoked (a rebalance, a pause) or still recovering: left, as a failed
                # batch is. Waiting for the stage to be ready held the batch unacknowledged,
                # and Faust's revocation waits for every taken event to be: a worker waking
                # from a pause rejoined 19-29 s later instead of 3-5, and a recovery of its
                # old assignment could come first and apply the batch as its owner.
                log.debug(
                    "%s: a batch delivered while not ready left (%d records)",
                    self.topic_name,
                    len(events),
                )
                continue
            batch = [Record(e.message.partition, e.message.offset, e.value) for e in events]
            try:
                await self.input.offer(batch)
            except Exception:
                log.exception(
                    "%s: a delivered batch (%d records) could not be applied; the gap read "
                    "or the tail check applies what it held",
                    self.topic_name,
                    len(batch),
                )

    async def maintain(self, work: Callable[[OutT], bool]) -> None:
        """A step with no input (a timer's): `work` changes the state and fills an output,
        saying whether there is anything to write. Skipped until the stage is ready or while
        a step's commit is being retried. Work of this kind must leave a state equivalent to
        the one written, so a failed commit loses nothing (the next recovery rebuilds memory
        from what was written); the query views follow memory either way.

        A delivered batch holds the lock through all its steps (in a backlog: a minute), so
        work that finds the lock taken is left due, and the batch runs it at its next step's
        end: a timer's work keeps its pace under load (the sweep that closes old days, above
        all: without this, measured, it ran once a minute while a million reports drained).

        A failed write is logged, never raised: a timer that raises would crash the worker
        (mode's services do), and the next tick writes what this one did not."""
        if not self.ready.is_set():
            return
        self._due[work] = None
        if self.lock.locked():
            return  # the step holding it runs the work at its end, or the next tick does
        async with self.lock:
            try:
                await self._run_due()
            except Exception as exc:  # the broker, most likely
                log.error(
                    "%s: maintenance failed, the next tick tries again: %s", self.topic_name, exc
                )

    async def _run_due(self) -> None:
        """Under the lock: the maintenance work due, each once."""
        while self._due:
            work = next(iter(self._due))
            del self._due[work]
            if self._pending is not None or not self.ready.is_set():
                continue
            out = self.new_output()
            generation = self.generation
            self._begin_step()
            if generation != self.generation:
                return  # revoked by a pause it woke from: not this stage's to do
            if not work(out):
                continue
            try:
                self.check_owned(generation)  # paused in the work: nothing sent
                await self.commit(out, {})
            except Revoked:
                return  # the next recovery rebuilds from what was written
            finally:
                self.committed(out)

    async def _apply(self, records: Sequence[Record]) -> None:
        """Called by `self.input` under the lock, again with the same records until it
        succeeds: a retry commits what the first attempt processed."""
        generation = self.generation
        self._begin_step()
        if generation != self.generation:
            return  # revoked by a pause it woke from: the input is not advanced
        if self._pending is None:
            out = self.new_output()
            began = time.perf_counter()
            self.process(records, out)
            self.input.took(records, time.perf_counter() - began)
            self._pending = out
        applied: dict[int, int] = {}
        for r in records:
            applied[r.partition] = r.offset
        try:
            self.check_owned(generation)  # paused in `process`: nothing sent
            await self.commit(self._pending, applied)
        except Revoked:
            self._pending = None  # the input is not advanced: the next owner redoes it
            return
        done, self._pending = self._pending, None
        try:
            self.committed(done)
        except Exception:  # a defect: the step is written, so it is not processed again
            log.exception("%s: after a step was written, updating memory failed", self.topic_name)
        if self._due:
            try:
                await self._run_due()
            except Exception:  # the step is done; the next timer tick tries the work again
                log.exception("%s: maintenance between steps failed", self.topic_name)
