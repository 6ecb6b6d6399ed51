"""Incident tallies by event time: exact windows, revisions that move cells, merges."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codes import Category, Severity, Verification
from streams.record.incident import IncidentFields, IncidentRecord, Status
from streams.tallies.state import IncidentTally, merge_rows, query
from streams.tallies.windows import QueryError

pytestmark = pytest.mark.timeout(60)

AS_OF = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


def fields(
    seconds_before: float,
    *,
    zone: str = "shusha",
    party: str = "az",
    category: Category = Category.SMALL_ARMS_FIRE,
    verification: Verification = Verification.OBSERVED,
    reports: int = 1,
    killed: int = 0,
    wounded: int = 0,
) -> IncidentFields:
    return IncidentFields(
        occurred=AS_OF - seconds_before,
        zone=zone,
        category=category,
        severity=Severity.MEDIUM,
        verification=verification,
        attribution=party,
        claims=(),
        killed=killed,
        wounded=wounded,
        reports=tuple((f"s{i}", "r", 0) for i in range(reports)),
    )


def opened(iid: str, f: IncidentFields, version: int = 1) -> IncidentRecord:
    return IncidentRecord(iid, version, Status.OPEN, None, f)


def test_window_edges_are_exact_to_the_second() -> None:
    tally = IncidentTally()
    # [as_of - w, as_of), as the series' buckets and the incident list's from/to
    # (each one's killed figure tells which are counted)
    tally.apply(opened("a", fields(0, killed=1)))  # exactly at as_of: the next window's
    tally.apply(opened("b", fields(3600, killed=10)))  # an hour before: inside the 1h window
    tally.apply(opened("c", fields(3599, killed=100)))
    tally.apply(opened("d", fields(-1, killed=1000)))  # after as_of: outside
    tally.apply(opened("e", fields(86_400, killed=10_000)))  # a day before: inside 24h
    tally.apply(opened("f", fields(86_401, killed=100_000)))

    def killed(window: str, as_of: float) -> int:
        return int(query([tally], window=window, by="zone", as_of=as_of)[0]["killed"])

    assert killed("1h", AS_OF) == 110
    assert killed("24h", AS_OF) == 10_110
    # the window starting where this one ends holds what this one leaves out
    assert killed("1h", AS_OF + 3600) == 1_001


def test_incidents_and_reports_differ_and_casualties_are_the_incidents() -> None:
    tally = IncidentTally()
    tally.apply(opened("a", fields(60, reports=3, killed=2, wounded=1)))
    tally.apply(opened("b", fields(120, party="contested", verification=Verification.ALLEGED)))
    rows = query([tally], window="24h", by="party", as_of=AS_OF)
    assert rows == [
        {"party": "az", "incidents": 1, "reports": 3, "killed": 2, "wounded": 1},
        {"party": "contested", "incidents": 1, "reports": 1, "killed": 0, "wounded": 0},
    ]
    by_verification = query([tally], window="24h", by="verification", as_of=AS_OF)
    assert [r["verification"] for r in by_verification] == ["alleged", "observed"]


def test_a_new_version_moves_the_cell_and_merged_or_withdrawn_leave() -> None:
    tally = IncidentTally()
    tally.apply(opened("a", fields(60, killed=1)))
    tally.apply(opened("a", fields(90000, zone="lachin", killed=49), version=2))  # revised
    assert query([tally], window="24h", by="zone", as_of=AS_OF) == []
    rows = query([tally], window="7d", by="zone", as_of=AS_OF)
    assert rows == [{"zone": "lachin", "incidents": 1, "reports": 1, "killed": 49, "wounded": 0}]
    tally.apply(IncidentRecord("a", 3, Status.MERGED, "b", fields(90000, zone="lachin")))
    assert query([tally], window="7d", by="zone", as_of=AS_OF) == []
    assert len(tally) == 0 and tally.hour_count() == 0 and tally.members == {}


@pytest.mark.parametrize("withdrawn_last", [True, False])
def test_a_report_moved_to_another_zone_of_the_partition_counts_once_there(
    withdrawn_last: bool,
) -> None:
    """A revision moving a report from shusha to lachin publishes its incident id open in
    lachin and withdrawn in shusha, in either order (an ACLED re-export found 7 of 3,080
    events lost when the withdrawal came last)."""
    tally = IncidentTally()
    tally.apply(opened("a", fields(60, killed=1)))
    moved = opened("a", fields(60, zone="lachin", killed=3), version=1)
    left = IncidentRecord("a", 2, Status.WITHDRAWN, None, fields(60, killed=1))
    for record in (moved, left) if withdrawn_last else (left, moved):
        tally.apply(record)
    rows = query([tally], window="24h", by="zone", as_of=AS_OF)
    assert rows == [{"zone": "lachin", "incidents": 1, "reports": 1, "killed": 3, "wounded": 0}]
    tally.apply(IncidentRecord("a", 2, Status.WITHDRAWN, None, fields(60, zone="lachin")))
    assert query([tally], window="24h", by="zone", as_of=AS_OF) == []


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_whole_hours_and_edge_hours_agree_with_a_scan(seed: int) -> None:
    rng = random.Random(seed)
    tally = IncidentTally()
    current: dict[str, IncidentFields] = {}
    for step in range(400):
        iid = f"i{rng.randrange(150)}"
        if rng.random() < 0.15:
            # a withdrawal carries the last open version's fields (IncidentRecord)
            last = current.pop(iid, None) or fields(0)
            tally.apply(IncidentRecord(iid, step, Status.WITHDRAWN, None, last))
            continue
        f = fields(
            rng.uniform(-7200, 40 * 86400),
            zone=rng.choice(["a", "b"]),
            party=rng.choice(["az", "am", "contested"]),
            reports=rng.randint(1, 3),
            killed=rng.choice([0, 0, 1]),
            wounded=rng.choice([0, 2]),
        )
        tally.apply(opened(iid, f, step))
        current[iid] = f
    for window, secs in (("1h", 3600), ("24h", 86400), ("7d", 7 * 86400), ("30d", 30 * 86400)):
        for as_of in (AS_OF, AS_OF - 12345.5, AS_OF - 5 * 86400):
            expected: dict[tuple[str, str], list[int]] = {}
            for f in current.values():
                if as_of - secs <= f.occurred < as_of:
                    t = expected.setdefault((f.zone, f.attribution), [0, 0, 0, 0])
                    t[0] += 1
                    t[1] += len(f.reports)
                    t[2] += f.killed
                    t[3] += f.wounded
            rows = query([tally], window=window, by="zone,party", as_of=as_of)
            got = {
                (str(x["zone"]), str(x["party"])): [
                    x["incidents"],
                    x["reports"],
                    x["killed"],
                    x["wounded"],
                ]
                for x in rows
            }
            assert got == expected, (window, as_of)


def test_partitions_sum_and_merge_rows() -> None:
    a, b = IncidentTally(), IncidentTally()
    a.apply(opened("x", fields(60, killed=1)))
    b.apply(opened("y", fields(60, party="am")))
    b.apply(opened("z", fields(70)))
    both = query([a, b], window="1h", by="party", as_of=AS_OF)
    merged = merge_rows(
        [
            query([a], window="1h", by="party", as_of=AS_OF),
            query([b], window="1h", by="party", as_of=AS_OF),
        ],
        ("party",),
    )
    assert both == merged
    assert {r["party"]: r["incidents"] for r in both} == {"am": 1, "az": 2}


def test_unknown_window_or_grouping_is_a_clear_error() -> None:
    with pytest.raises(QueryError, match="unknown window"):
        query([], window="2h", by="zone", as_of=AS_OF)
    with pytest.raises(QueryError, match="unknown grouping"):
        query([], window="1h", by="severity", as_of=AS_OF)


def test_an_hour_whose_incidents_all_closed_is_packed_and_reads_the_same() -> None:
    """Closing the last open incident of an hour packs its cells; a reopen unpacks them;
    a recovery packs what it loads closed; answers and cells are the same throughout."""
    from streams.record.archive import summary_of
    from streams.tallies.series import rows_between

    def answers(t: IncidentTally) -> tuple[object, ...]:
        return (
            sorted(t.cell_items()),
            query([t], window="24h", by="zone,party", as_of=AS_OF),
            rows_between([t], start=AS_OF - 5 * 3600, end=AS_OF - 1800, by="category"),
        )

    tally = IncidentTally()
    a = fields(4 * 3600 + 10, killed=2, reports=3)  # one hour: a, b (another cell)
    b = fields(4 * 3600 + 20, party="am", wounded=1)
    c = fields(3600 + 5)  # an hour before the last
    for iid, f in (("a", a), ("b", b), ("c", c)):
        tally.apply(opened(iid, f))
    before = answers(tally)
    hour_ab = int(a.occurred // 3600)
    tally.close("a")
    assert hour_ab in tally.hours and not tally.packed  # b is still open there
    tally.close("b")
    assert hour_ab in tally.packed and hour_ab not in tally.hours
    assert answers(tally) == before
    recovered = IncidentTally()
    recovered.apply(opened("c", c))
    recovered.load_closed([summary_of(a), summary_of(b)])
    assert hour_ab in recovered.packed and answers(recovered) == before
    # one not closed in that hour is a KeyError (the search for it looped for good)
    with pytest.raises(KeyError, match="not closed in hour"):
        tally.reopen("x", fields(4 * 3600 + 30, killed=7))
    tally.reopen("a", a)
    assert hour_ab in tally.hours and hour_ab not in tally.packed
    assert answers(tally) == before
    tally.apply(opened("a", fields(4 * 3600 + 10, killed=3, reports=3), version=2))
    assert query([tally], window="24h", by="zone", as_of=AS_OF)[0]["killed"] == 3


def test_an_hour_whose_casualties_pass_32_bits_closes_and_recovers() -> None:
    """4,295 incidents of a million killed in one hour's cell (a million is a report's
    bound, and reports of one source never link): the hour's sum passed 32 bits, and
    packing it lost the hour's counts and failed every recovery of the partition."""
    from streams.record.archive import summary_of

    n, killed = 4_300, 1_000_000
    many = {f"i{i}": fields(4 * 3600 - 600 + i / 10, killed=killed) for i in range(n)}
    tally = IncidentTally()
    for iid, f in many.items():
        tally.apply(opened(iid, f))
    for iid in many:
        tally.close(iid)
    assert query([tally], window="24h", by="zone", as_of=AS_OF)[0]["killed"] == n * killed
    recovered = IncidentTally()
    recovered.load_closed(summary_of(f) for f in many.values())
    assert query([recovered], window="24h", by="zone", as_of=AS_OF)[0]["killed"] == n * killed
