"""History since the ceasefire, pure: `window=all`, the previous window, series by event time.

Expected figures come from scanning the incidents one by one, never from the cells."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codes import Category, Severity, Verification
from streams.record.incident import IncidentFields, IncidentRecord, Status
from streams.tallies.series import (
    Buckets,
    compare_rows,
    merge_series,
    previous_as_of,
    rows_between,
    series,
    tally,
)
from streams.tallies.state import IncidentTally, Row, query
from streams.tallies.windows import QueryError, to_micros

pytestmark = pytest.mark.timeout(120)

CEASEFIRE = datetime(2020, 11, 9, 21, 0, tzinfo=UTC).timestamp()
AS_OF = datetime(2026, 11, 29, 12, 0, tzinfo=UTC).timestamp()
DAY = 86_400
MICRO = 1_000_000


def fields(
    occurred: float,
    *,
    zone: str = "shusha",
    party: str = "az",
    reports: int = 1,
    killed: int = 0,
    wounded: int = 0,
) -> IncidentFields:
    return IncidentFields(
        occurred=occurred,
        zone=zone,
        category=Category.SMALL_ARMS_FIRE,
        severity=Severity.MEDIUM,
        verification=Verification.OBSERVED,
        attribution=party,
        claims=(),
        killed=killed,
        wounded=wounded,
        reports=tuple((f"s{i}", "r", 0) for i in range(reports)),
    )


def opened(iid: str, f: IncidentFields, version: int = 1) -> IncidentRecord:
    return IncidentRecord(iid, version, Status.OPEN, None, f)


def scan(
    incidents: dict[str, IncidentFields],
    keep: Callable[[IncidentFields], bool],
    keys: tuple[str, ...] = ("zone", "party"),
) -> dict[tuple[str, ...], list[int]]:
    """Expected rows, by looking at every incident."""
    out: dict[tuple[str, ...], list[int]] = {}
    for f in incidents.values():
        if not keep(f):
            continue
        named = {"zone": f.zone, "party": f.attribution}
        t = out.setdefault(tuple(named[k] for k in keys), [0, 0, 0, 0])
        t[0] += 1
        t[1] += len(f.reports)
        t[2] += f.killed
        t[3] += f.wounded
    return out


def as_dict(
    rows: list[Row], keys: tuple[str, ...] = ("zone", "party")
) -> dict[tuple[str, ...], list[int]]:
    return {
        tuple(str(r[k]) for k in keys): [
            int(r["incidents"]),
            int(r["reports"]),
            int(r["killed"]),
            int(r["wounded"]),
        ]
        for r in rows
    }


# -- rolling windows at their edges ------------------------------------------------------------
#: 2**30 s after 1970 (2004-01-10T13:37:04Z), where a float's step passes a microsecond's
#: share: `as_of - window` in float seconds could land a fraction of a microsecond beside the
#: incident at the window's start when the two straddle it.
STEP = 2**30 * MICRO


@settings(max_examples=300, deadline=None)
@given(
    as_of=st.one_of(
        st.integers(STEP - 40 * DAY * MICRO, STEP + 40 * DAY * MICRO),
        st.integers(2 * STEP - 40 * DAY * MICRO, 2 * STEP + 40 * DAY * MICRO),  # 2038
        # where a float still tells microseconds apart (1834 to 2106)
        st.integers(-(2**32) * MICRO, 2**32 * MICRO - 1),
    ),
    window=st.sampled_from(["1h", "24h", "7d", "30d"]),
)
def test_a_rolling_window_holds_its_first_microsecond_and_not_as_of(
    as_of: int, window: str
) -> None:
    """An incident at exactly as_of - window counts, one a microsecond earlier or at as_of
    does not: the window [as_of - window, as_of) in whole microseconds, as the incident list
    and the series count it (a 24 h window across 2004-01-10 lost its first incident in 49,916
    of 200,000 random microseconds)."""
    seconds = {"1h": 3600, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}[window]
    start = as_of - seconds * MICRO
    tally_ = IncidentTally()
    for iid, at in (("first", start), ("before", start - 1), ("at-as-of", as_of)):
        tally_.apply(opened(iid, fields(at / MICRO, party=iid)))
    rows = query([tally_], window=window, by="party", as_of=as_of / MICRO)
    assert [r["party"] for r in rows] == ["first"]
    previous = previous_as_of(window, as_of / MICRO)
    assert to_micros(previous) == start
    assert [r["party"] for r in query([tally_], window=window, by="party", as_of=previous)] == [
        "before"
    ]


# -- window=all -------------------------------------------------------------------------------
def test_all_counts_from_the_ceasefire_inclusive_to_as_of_exclusive() -> None:
    tally_ = IncidentTally()
    tally_.apply(opened("war", fields(CEASEFIRE - 1)))  # the last second of the war
    tally_.apply(opened("first", fields(CEASEFIRE)))  # the ceasefire's first instant
    tally_.apply(opened("2021", fields(CEASEFIRE + 200 * DAY, killed=2)))
    tally_.apply(opened("before", fields(AS_OF - 1)))
    tally_.apply(opened("now", fields(AS_OF)))  # [since, as_of), as the series' buckets
    tally_.apply(opened("later", fields(AS_OF + 1)))
    rows = tally([tally_], window="all", by="zone", as_of=AS_OF, since=CEASEFIRE)
    assert rows == [{"zone": "shusha", "incidents": 3, "reports": 3, "killed": 2, "wounded": 0}]
    # before the ceasefire the range is empty, not an error
    assert tally([tally_], window="all", by="zone", as_of=CEASEFIRE - 10, since=CEASEFIRE) == []
    # rolling windows are the state's query, unchanged
    assert tally([tally_], window="24h", by="zone", as_of=AS_OF, since=CEASEFIRE) == query(
        [tally_], window="24h", by="zone", as_of=AS_OF
    )


@pytest.mark.timeout(60)  # the bound: no wall-clock assert, which a busy machine broke
def test_all_iterates_the_hours_held_not_every_hour_of_the_range() -> None:
    """From year 1 to year 9999 is 87 million hours: iterating them would take minutes."""
    tally_ = IncidentTally()
    for i in range(3):
        tally_.apply(opened(f"i{i}", fields(CEASEFIRE + i * 400 * DAY + 1800)))
    start = datetime(1, 1, 1, tzinfo=UTC).timestamp()
    end = datetime(9999, 12, 31, tzinfo=UTC).timestamp()
    assert rows_between([tally_], start=start, end=end, by="zone")[0]["incidents"] == 3
    every_day = Buckets(to_micros(start), DAY * MICRO, 3_652_000)
    assert sum(len(b) for b in series([tally_], every_day, by="zone")) == 3


def test_unknown_window_grouping_or_compare_of_all_are_clear_errors() -> None:
    with pytest.raises(QueryError, match=r"unknown window 'forever'.*all"):
        tally([], window="forever", by="zone", as_of=AS_OF, since=CEASEFIRE)
    with pytest.raises(QueryError, match="unknown grouping"):
        rows_between([], start=0, end=1, by="severity")
    with pytest.raises(QueryError, match="compare=previous needs a rolling window"):
        previous_as_of("all", AS_OF)
    assert previous_as_of("24h", AS_OF) == AS_OF - DAY


# -- compare=previous -------------------------------------------------------------------------
def test_compare_lists_groups_of_either_window_with_previous_figures() -> None:
    tally_ = IncidentTally()
    tally_.apply(opened("a", fields(AS_OF - 60, killed=1)))
    tally_.apply(opened("b", fields(AS_OF - DAY - 60, zone="lachin", reports=2)))
    tally_.apply(opened("c", fields(AS_OF - DAY - 120)))
    keys = ("zone",)
    now = query([tally_], window="24h", by="zone", as_of=AS_OF)
    before = query([tally_], window="24h", by="zone", as_of=previous_as_of("24h", AS_OF))
    assert compare_rows(now, before, keys) == [
        {
            "zone": "lachin",
            "incidents": 0,
            "reports": 0,
            "killed": 0,
            "wounded": 0,
            "previous_incidents": 1,
            "previous_reports": 2,
            "previous_killed": 0,
            "previous_wounded": 0,
        },
        {
            "zone": "shusha",
            "incidents": 1,
            "reports": 1,
            "killed": 1,
            "wounded": 0,
            "previous_incidents": 1,
            "previous_reports": 1,
            "previous_killed": 0,
            "previous_wounded": 0,
        },
    ]
    assert compare_rows([], [], keys) == []


# -- series -----------------------------------------------------------------------------------
def test_buckets_hold_from_their_start_inclusive_to_their_end_exclusive() -> None:
    tally_ = IncidentTally()
    day0 = datetime(2021, 5, 1, tzinfo=UTC).timestamp()
    tally_.apply(opened("midnight", fields(day0)))  # day 0
    tally_.apply(opened("last", fields(day0 + DAY - 1e-6)))  # day 0, its last microsecond
    tally_.apply(opened("next", fields(day0 + DAY, party="am")))  # day 1
    tally_.apply(opened("after", fields(day0 + 2 * DAY)))  # after the range
    days = series([tally_], Buckets(to_micros(day0), DAY * MICRO, 2), by="party")
    assert [[(r["party"], r["incidents"]) for r in b] for b in days] == [[("az", 2)], [("am", 1)]]
    # Moscow days (from 21:00 UTC) cut no hour but move the edges: 23:59 UTC is the next day
    moscow = Buckets(to_micros(day0 - 3 * 3600), DAY * MICRO, 2)
    days = series([tally_], moscow, by="party")
    assert [[(r["party"], r["incidents"]) for r in b] for b in days] == [
        [("az", 1)],
        [("am", 1), ("az", 1)],
    ]
    # buckets starting at minute 30 cut every edge hour in two
    half = Buckets(to_micros(day0 - 1800), 3600 * MICRO, 25)
    hours = series([tally_], half, by="zone")
    assert [sum(int(r["incidents"]) for r in b) for b in hours] == [1] + [0] * 23 + [2]


def test_merging_series_checks_their_shape() -> None:
    keys = ("zone",)
    row: Row = {"zone": "a", "incidents": 1, "reports": 1, "killed": 0, "wounded": 0}
    assert merge_series([[[row], []], [[row], [row]]], 2, keys) == [
        [{**row, "incidents": 2, "reports": 2}],
        [row],
    ]
    with pytest.raises(ValueError):
        merge_series([[[row]]], 2, keys)
    with pytest.raises(TypeError):
        merge_series([[[{**row, "incidents": "1"}]]], 1, keys)
    with pytest.raises(LookupError):
        merge_series([[[{"zone": "a"}]]], 1, keys)


HOURS = 6 * 365 * 24  # six years of hours from the ceasefire


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str, IncidentFields | None]]:
    """Incidents over six years (some on hour and day edges), revised or withdrawn."""
    n = draw(st.integers(1, 60))
    span = draw(st.sampled_from([72, 2000, HOURS]))  # dense or sparse
    out: list[tuple[str, IncidentFields | None]] = []
    for i in range(n):
        hour = draw(st.integers(-48, span))
        offset = draw(
            st.one_of(
                st.just(0),  # on an hour's (maybe a day's) edge
                st.integers(0, 3600 * MICRO - 1),
            )
        )
        occurred = (to_micros(CEASEFIRE) + hour * 3600 * MICRO + offset) / MICRO
        f = fields(
            occurred,
            zone=draw(st.sampled_from(["a", "b", "c"])),
            party=draw(st.sampled_from(["az", "am", "contested"])),
            reports=draw(st.integers(1, 3)),
            killed=draw(st.integers(0, 2)),
            wounded=draw(st.integers(0, 2)),
        )
        out.append((f"i{i}", f))
        if draw(st.integers(0, 9)) == 0:
            out.append((f"i{i}", None))  # withdrawn later
    return out


def build(
    history: list[tuple[str, IncidentFields | None]], parts: int
) -> tuple[list[IncidentTally], dict[str, IncidentFields]]:
    tallies = [IncidentTally() for _ in range(parts)]
    current: dict[str, IncidentFields] = {}
    for step, (iid, f) in enumerate(history):
        tally_ = tallies[int(iid[1:]) % parts]
        if f is None:
            # a withdrawal carries the last open version's fields (IncidentRecord)
            last = current.pop(iid, None) or fields(0)
            tally_.apply(IncidentRecord(iid, step + 2, Status.WITHDRAWN, None, last))
        else:
            tally_.apply(opened(iid, f, step + 1))
            current[iid] = f
    return tallies, current


def in_order(
    history: list[tuple[str, IncidentFields | None]], order: list[int]
) -> list[tuple[str, IncidentFields | None]]:
    """The same incidents arriving in another order (an incident's own versions in theirs)."""
    ids = sorted({iid for iid, _ in history})
    rank = {iid: order[i] for i, iid in enumerate(ids)}
    return sorted(history, key=lambda e: rank[e[0]])


@settings(max_examples=60, deadline=None)
@given(
    history=histories(),
    order_seed=st.integers(0, 2**32),
    parts=st.integers(1, 3),
    interval=st.sampled_from([3600, DAY, 7 * DAY]),
    start_hour=st.one_of(st.integers(-24, 48), st.integers(-24, HOURS)),
    shift=st.sampled_from([0, 1800 * MICRO, 3 * 3600 * MICRO, 1]),
)
def test_a_series_summed_over_its_buckets_equals_the_tallies_of_its_range(
    history: list[tuple[str, IncidentFields | None]],
    order_seed: int,
    parts: int,
    interval: int,
    start_hour: int,
    shift: int,
) -> None:
    import random

    ids = sorted({iid for iid, _ in history})
    order = list(range(len(ids)))
    random.Random(order_seed).shuffle(order)
    tallies, current = build(in_order(history, order), parts)
    start = to_micros(CEASEFIRE) + start_hour * 3600 * MICRO + shift
    count = min(1 + (HOURS * 3600 // interval), 2000)
    buckets = Buckets(start, interval * MICRO, count)
    got = series(tallies, buckets, by="zone,party")
    keys = ("zone", "party")

    # each bucket, as a scan of the incidents
    for k, rows in enumerate(got):
        lo, hi = start + k * interval * MICRO, start + (k + 1) * interval * MICRO

        def inside(f: IncidentFields, lo: int = lo, hi: int = hi) -> bool:
            return lo <= to_micros(f.occurred) < hi

        assert as_dict(rows) == scan(current, inside)

    # summed over its buckets: the tallies of the same range, [start, end)
    summed: dict[tuple[str, ...], list[int]] = {}
    for rows in got:
        for key, t in as_dict(rows).items():
            acc = summed.setdefault(key, [0, 0, 0, 0])
            for i in range(4):
                acc[i] += t[i]
    first, end = buckets.start / MICRO, buckets.end / MICRO
    between = rows_between(tallies, start=first, end=end, by="zone,party")
    assert summed == as_dict(between)

    # and window=all at any as_of is the scan since the ceasefire
    as_of = end
    expected = scan(current, lambda f: CEASEFIRE <= f.occurred < as_of)
    all_rows = tally(tallies, window="all", by="zone,party", as_of=as_of, since=CEASEFIRE)
    assert as_dict(all_rows, keys) == expected

    # whatever the order the incidents arrived in, and however partitioned
    again, _ = build(history, 1)
    assert series(again, buckets, by="zone,party") == got
