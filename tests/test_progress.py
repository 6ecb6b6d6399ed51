"""A stage's own progress: every input offset applied once, in order, whatever the
delivery skips or repeats (the loss of issue 9). Pure, and on in-memory fakes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.config import Settings
from streams.pipeline import stage_input
from streams.pipeline.progress import Gap, Progress, Record
from streams.pipeline.stage_input import StageInput

pytestmark = pytest.mark.timeout(60)


def rec(p: int, o: int) -> Record:
    return Record(p, o, f"{p}:{o}".encode())


def test_plan_drops_replays_and_foreign_partitions_and_finds_gaps() -> None:
    progress = Progress()
    progress.reset([0, 1], {0: 4})
    plan = progress.plan([rec(0, 3), rec(0, 4), rec(0, 5), rec(0, 8), rec(1, 2), rec(7, 0)])
    assert plan.replayed == 2
    assert plan.foreign == 1
    assert plan.fresh == [rec(0, 5), rec(0, 8), rec(1, 2)]
    assert plan.gaps == [Gap(0, 6, 8), Gap(1, 0, 2)]
    progress.advance(plan.fresh)
    progress.advance([rec(7, 9)])  # not owned: no effect
    assert progress.applied == {0: 8, 1: 2}
    assert progress.behind({0: 9, 1: 10, 7: 100}) == [Gap(1, 3, 10)]


class FakeTopic:
    """An input topic held in memory, read as `read_range` reads a real one."""

    def __init__(self, partitions: dict[int, int], deleted_below: int = 0) -> None:
        self.records = {p: [rec(p, o) for o in range(n)] for p, n in partitions.items()}
        self.log_start = deleted_below  # retention deleted every record before it

    async def read_range(
        self,
        bootstrap: str,
        ranges: object,
        reached: dict[Any, int] | None = None,
        **_: object,
    ) -> object:
        out = {}
        for tp, start, end in ranges:  # type: ignore[attr-defined]
            held = self.records[tp.partition]
            out[tp] = [(r.offset, r.value) for r in held[max(start, self.log_start) : end]]
            if reached is not None:
                reached[tp] = min(end, len(held))
        return out


def make_stage(
    monkeypatch: pytest.MonkeyPatch, topic: FakeTopic, fail_first: int = 0
) -> tuple[StageInput, list[Record]]:
    monkeypatch.setattr(stage_input, "read_range", topic.read_range)
    monkeypatch.setattr(stage_input, "RETRY_FIRST", 0.001)
    applied: list[Record] = []
    failures = [fail_first]

    async def apply(step: Sequence[Record]) -> None:
        if failures[0] > 0:
            failures[0] -= 1
            raise ConnectionError("broker unavailable")
        applied.extend(step)

    stage = StageInput("in", Settings(), apply, asyncio.Lock())
    return stage, applied


@settings(max_examples=60, deadline=None)
@given(
    deliveries=st.lists(
        st.lists(st.tuples(st.integers(0, 2), st.integers(0, 39)), max_size=30), max_size=12
    ),
    fail_first=st.integers(0, 2),
)
def test_every_offset_is_applied_once_in_order_whatever_is_delivered(
    deliveries: list[list[tuple[int, int]]], fail_first: int
) -> None:
    """Deliveries skip, repeat and reorder records (as Faust does around rebalances);
    after the tail check, the stage applied each offset exactly once, in order."""
    topic = FakeTopic({0: 40, 1: 40, 2: 40})
    with pytest.MonkeyPatch.context() as mp:
        stage, applied = make_stage(mp, topic, fail_first)

        async def run() -> None:
            stage.reset([0, 1, 2], {})
            for batch in deliveries:
                # a delivery is in offset order per partition, with anything missing
                await stage.offer(sorted({rec(p, o) for p, o in batch}))
            hw = {0: 40, 1: 40, 2: 40}
            await stage.check_tail(hw)  # notes where each partition stands
            await stage.check_tail(hw)  # no progress since: reads the tails

        asyncio.run(run())
    for p in (0, 1, 2):
        assert [r.offset for r in applied if r.partition == p] == list(range(40))


def test_a_step_failing_is_retried_not_skipped_and_stops_when_revoked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = FakeTopic({0: 5})
    stage, applied = make_stage(monkeypatch, topic, fail_first=3)

    async def run() -> None:
        stage.reset([0], {})
        await stage.offer(topic.records[0])
        assert [r.offset for r in applied] == [0, 1, 2, 3, 4]
        assert stage.progress.applied == {0: 4}
        # revoked while a step keeps failing: the stage gives the step up, unapplied
        stage.reset([0], {0: 4})
        topic.records[0].append(rec(0, 5))
        monkeypatch.setattr(stage, "apply", _always_failing)
        task = asyncio.create_task(stage.offer([rec(0, 5)]))
        await asyncio.sleep(0.05)
        stage.clear()
        await asyncio.wait_for(task, timeout=5)
        assert stage.progress.applied == {}

    asyncio.run(run())


async def _always_failing(step: Sequence[Record]) -> None:
    raise ConnectionError("broker unavailable")


def test_a_partition_that_cannot_progress_is_reported_stalled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streams import metrics

    topic = FakeTopic({3: 2})
    stage, _ = make_stage(monkeypatch, topic)
    monkeypatch.setattr(stage_input, "STALL_SECONDS", 0.0)

    async def run() -> None:
        stage.reset([3], {})
        lock_held = asyncio.Event()

        async def hold() -> None:  # a step stuck retrying holds the lock
            async with stage.lock:
                lock_held.set()
                await asyncio.sleep(0.2)

        holder = asyncio.create_task(hold())
        await lock_held.wait()
        await stage.check_tail({3: 2})
        assert stage.stalled == set()
        await stage.check_tail({3: 2})
        assert stage.stalled == {3}
        assert metrics.PARTITION_STALLED.labels("in", "3")._value.get() == 1
        await holder
        await stage.check_tail({3: 2})  # the lock is free: the tail is read and applied
        await stage.check_tail({3: 2})
        assert stage.stalled == set()
        assert metrics.PARTITION_STALLED.labels("in", "3")._value.get() == 0

    asyncio.run(run())


@pytest.mark.parametrize("deleted_below", [100, 70])
def test_a_tail_deleted_by_retention_is_gone_past_not_stalled_on(
    monkeypatch: pytest.MonkeyPatch, deleted_below: int
) -> None:
    """A stage behind for longer than its input's retention: the records it had not
    applied are gone. It reported the partition stalled, and the worker not ready, until
    a new record arrived, saying the records were "read and applied"."""
    from streams import metrics

    topic = FakeTopic({0: 100}, deleted_below=deleted_below)
    stage, applied = make_stage(monkeypatch, topic)
    monkeypatch.setattr(stage_input, "STALL_SECONDS", 0.0)
    missing = metrics.INPUT_MISSING.labels("in")

    async def run() -> None:
        stage.reset([0], {0: 41})
        before = missing._value.get()
        for _ in range(4):
            await stage.check_tail({0: 100})
        assert stage.progress.applied == {0: 99}
        assert stage.stalled == set()
        assert [r.offset for r in applied] == list(range(deleted_below, 100))
        assert missing._value.get() - before == deleted_below - 42
        await stage.offer([rec(0, 100)])  # and the next record is applied as ever
        assert applied[-1].offset == 100 and stage.progress.applied == {0: 100}

    asyncio.run(run())


def test_only_owned_partitions_export_a_stalled_series(monkeypatch: pytest.MonkeyPatch) -> None:
    """A partition given up kept its series at 0 for as long as the worker ran, beside its
    new owner's: duplicate series, and a wrong count of the partitions watched."""
    from streams import metrics

    stage, _ = make_stage(monkeypatch, FakeTopic({}))
    stage.topic = "owned-only"  # a topic of this test alone: the registry is the process's

    def exported() -> set[str]:
        return {
            s.labels["partition"]
            for family in metrics.PARTITION_STALLED.collect()
            for s in family.samples
            if s.labels["topic"] == "owned-only"
        }

    stage.reset([0, 1, 2, 3], {})
    assert exported() == {"0", "1", "2", "3"}
    stage.clear()  # revoked
    assert exported() == set()
    stage.reset([0, 1], {})
    assert exported() == {"0", "1"}
    stage.reset([1, 5], {})
    assert exported() == {"1", "5"}


def test_a_tombstone_is_applied_as_empty_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Faust hands a record without a value (a tombstone on an internal topic) over as None:
    counting the batch's lines raised AttributeError out of `offer`, nothing applied. It is
    applied as b"", as `read_range` reads it, for the stage to dead-letter."""
    stage, applied = make_stage(monkeypatch, FakeTopic({}))

    async def run() -> None:
        stage.reset([0], {})
        await stage.offer([rec(0, 0), Record(0, 1, None), rec(0, 2)])  # type: ignore[arg-type]

    asyncio.run(run())
    assert applied == [rec(0, 0), Record(0, 1, b""), rec(0, 2)]
    assert stage.progress.applied == {0: 2}


# -- steps paced to the loop's time ----------------------------------------------------------
def test_a_step_takes_about_a_second_of_processing_at_the_last_step_s_pace() -> None:
    """A dense zone's backlog held the loop (and the API's health check with it) for tens
    of seconds a step: after a slow step the next takes what the pace fits in a second; it
    grows back at most twofold a step, never past the most, never below a pack's worth."""
    pace = stage_input.StepPace(16_384, seconds=1.0)
    assert pace.limit == 16_384
    pace.took(16_384, 8.0)  # 2,048 a second
    assert pace.limit == 2_048
    pace.took(2_048, 0.05)  # a fast step (duplicates): twice as many, no more
    assert pace.limit == 4_096
    pace.took(4_096, 0.0)
    assert pace.limit == 8_192
    pace.took(10, 100.0)
    assert pace.limit == stage_input.STEP_LEAST
    pace.took(0, 5.0)  # nothing processed says nothing
    assert pace.limit == stage_input.STEP_LEAST


def test_a_batch_is_cut_into_steps_by_the_pace_of_the_one_before() -> None:
    """The stage says how long each step's processing took (`took`); the rest of a delivered
    batch is cut to the new pace, every record applied once, in order."""
    per_record = 0.001  # a slow zone: 1,000 records a second
    sizes: list[int] = []
    stage: StageInput

    async def apply(step: Sequence[Record]) -> None:
        n = sum(r.value.count(b"\n") + 1 for r in step)
        sizes.append(n)
        stage.took(step, n * per_record)

    stage = StageInput("in", Settings(), apply, asyncio.Lock())
    pack = b"\n".join([b"{}"] * 256)
    batch = [Record(0, o, pack) for o in range(200)]  # 51,200 records

    async def run() -> None:
        stage.reset([0], {})
        await stage.offer(batch)

    asyncio.run(run())
    assert sum(sizes) == 51_200 and sizes[0] == 16_384
    assert all(n <= 1_024 for n in sizes[1:]), sizes  # a second's worth: 4 packs
