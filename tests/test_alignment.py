"""Ingest's choice of input partitions while a backlog lasts (streams/pipeline/alignment.py):
pure, no broker."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.pipeline.alignment import Alignment


def test_no_backlog_takes_from_all() -> None:
    a = Alignment(skew_ms=100)
    assert a.choose({0: 0, 1: 0}, [0, 1], now=0.0) is None
    assert a.choose({}, [0, 1], now=0.0) is None  # ends not known yet
    a.taken(0, 5_000)
    assert a.choose({0: 10, 1: 0}, [0, 1], now=0.0) is None  # one partition behind


def test_the_partitions_ahead_wait_for_the_one_behind() -> None:
    a = Alignment(skew_ms=100)
    for p, ts in {0: 1_000, 1: 1_050, 2: 9_000, 3: 500}.items():
        a.taken(p, ts)
    # 3 is caught up: always taken from, whatever its time
    assert a.choose({0: 10, 1: 10, 2: 10, 3: 0}, [0, 1, 2, 3], now=0.0) == {0, 1, 3}


def test_a_partition_not_read_yet_is_read_first() -> None:
    a = Alignment(skew_ms=100)
    a.taken(0, 1_000)
    assert a.choose({0: 10, 1: 10}, [0, 1], now=0.0) == {1}


def test_a_partition_that_yields_nothing_is_not_waited_for_past_the_patience() -> None:
    a = Alignment(skew_ms=100, patience=1.0)
    a.taken(0, 1_000)
    a.taken(1, 9_000)
    assert a.choose({0: 10, 1: 10}, [0, 1], now=0.0) == {0}
    a.yielded(False, now=0.0)
    assert a.choose({0: 10, 1: 10}, [0, 1], now=0.5) == {0}
    a.yielded(False, now=0.5)
    assert a.choose({0: 10, 1: 10}, [0, 1], now=1.0) is None  # 0 is absent now
    assert a.absent == {0}
    a.taken(0, 1_010)  # it came back: waited for again
    assert a.choose({0: 10, 1: 10}, [0, 1], now=1.5) == {0}


def test_partitions_no_longer_owned_hold_nothing() -> None:
    a = Alignment(skew_ms=100)
    a.taken(0, 1_000)
    a.taken(1, 9_000)
    a.forget([0])
    assert a.choose({1: 10, 2: 10}, [1, 2], now=0.0) == {2}  # 2 not read yet


def drain(
    backlog: list[list[int]],
    align: Alignment | None,
    batch: int,
    yields: Callable[[int, int], bool],
) -> tuple[int, int]:
    """Simulate a consumer over per-partition record timestamps: each round it takes up to
    `batch` records from each partition it chooses that `yields(partition, round)`. Returns
    the rounds it took and the largest lead (ms) of a partition's last record over the
    next record of a partition still behind."""
    position = [0] * len(backlog)
    owned = list(range(len(backlog)))
    lead = 0
    now = 0.0
    for round_ in range(20_000):
        behind = {p: len(backlog[p]) - position[p] for p in owned}
        if not any(behind.values()):
            return round_, lead
        chosen = None if align is None else align.choose(behind, owned, now)
        got = False
        for p in owned if chosen is None else sorted(chosen):
            if not behind[p] or not yields(p, round_):
                continue
            position[p] += len(backlog[p][position[p] : position[p] + batch])
            if align is not None:
                align.taken(p, backlog[p][position[p] - 1])
            got = True
        if align is not None:
            align.yielded(got, now)
        for p in owned:
            if position[p]:
                for q in owned:
                    if position[q] < len(backlog[q]):
                        lead = max(lead, backlog[p][position[p] - 1] - backlog[q][position[q]])
        now += 0.2
    raise AssertionError("the backlog did not drain")


def test_a_partition_fetched_slowly_is_waited_for() -> None:
    """Four partitions fed round-robin (one record a millisecond), one of which yields only
    every third round: without alignment the others run ahead by most of the backlog."""
    backlog = [list(range(p, 40_000, 4)) for p in range(4)]

    def slow_partition_3(p: int, round_: int) -> bool:
        return p != 3 or round_ % 3 == 0

    rounds, lead = drain(backlog, None, 500, slow_partition_3)
    assert lead > 20_000
    rounds_aligned, lead_aligned = drain(backlog, Alignment(skew_ms=100), 500, slow_partition_3)
    assert lead_aligned <= 100 + 2_000  # the skew and one batch's span
    assert rounds_aligned <= 3 * rounds  # it waits for the slow one, no longer


@st.composite
def backlogs(draw: st.DrawFn) -> list[list[int]]:
    """Per partition, the record timestamps (ms) of a backlog, in order."""
    n = draw(st.integers(2, 5))
    return [
        sorted(draw(st.lists(st.integers(0, 5_000), min_size=0, max_size=60))) for _ in range(n)
    ]


@settings(max_examples=200, deadline=None)
@given(backlogs(), st.integers(0, 300), st.integers(1, 8), st.sets(st.integers(0, 4)), st.data())
def test_a_backlog_always_drains(
    backlog: list[list[int]], skew: int, batch: int, dead: set[int], data: st.DataObject
) -> None:
    """Whatever the timestamps, and with partitions that yield nothing for a long time
    (`dead`: for the first 50 rounds) or at random, the backlog drains."""
    flaky = data.draw(st.lists(st.booleans(), min_size=64, max_size=64))

    def yields(p: int, round_: int) -> bool:
        if p in dead and round_ < 50:
            return False
        return flaky[(p * 7 + round_) % 64] or round_ % 8 == 0  # a fetch comes, now and then

    rounds, _ = drain(backlog, Alignment(skew_ms=skew, patience=1.0), batch, yields)
    assert rounds < 5_000


@pytest.mark.parametrize("stamp", [4_102_444_800_000, 2**63 - 1, 0, -1])
def test_a_partition_whose_records_have_no_usable_time_neither_waits_nor_holds(
    stamp: int,
) -> None:
    """A producer stamps records as it likes. Partition 2's said 2100: it was left out of
    every choice while partitions 0 and 1 drained a backlog (clamping the stamp to the clock
    would not do: every record of a backlog is older than the clock). They said 0 or -1
    (none): partitions 0 and 1 waited for it instead."""
    backlog_start = int(time.time() * 1000) - 3_600_000  # a backlog sent over the last hour
    a = Alignment(skew_ms=100, patience=1.0)
    left_out, now = 0, 0.0
    for i in range(600):
        chosen = a.choose({0: 1000, 1: 1000, 2: 1000}, [0, 1, 2], now)
        if chosen is not None:
            left_out += 1
        for p in chosen or (0, 1, 2):
            a.taken(p, stamp if p == 2 else backlog_start + i * 10)
        a.yielded(True, now)
        now += 0.2
    assert left_out == 0


def test_a_partition_without_a_usable_time_is_aligned_again_once_it_has_one() -> None:
    clock = 1_700_000_000_000
    a = Alignment(skew_ms=100)
    a.taken(0, clock - 50_000, clock)
    a.taken(1, clock + 60_000, clock)  # ahead of the clock: says nothing
    assert a.untimed == {1} and 1 not in a.last_ts
    assert a.choose({0: 10, 1: 10, 2: 10}, [0, 1, 2], now=0.0) == {1, 2}  # 2 not read yet
    a.taken(2, clock - 40_000, clock)
    assert a.choose({0: 10, 1: 10, 2: 10}, [0, 1, 2], now=0.0) == {0, 1}  # 1 not waited for
    a.taken(1, clock - 30_000, clock)  # a time again: it waits for 0 like 2 does
    assert a.untimed == set()
    assert a.choose({0: 10, 1: 10, 2: 10}, [0, 1, 2], now=0.0) == {0}
    a.taken(1, 0, clock)
    a.forget([1])
    assert a.untimed == set()
