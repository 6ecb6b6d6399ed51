"""Closed days (streams/record/archive.py): closing and reopening are invisible. Whatever
the order of reports, revisions and withdrawals and wherever sweeps fall between them, a
book that closes publishes exactly what a book that never closes publishes; its tally
answers the same to the second; its changelog (even a write torn between a unit and the
copies it replaces) rebuilds it."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codes import TimePrecision
from streams.record.archive import (
    DAY,
    Archive,
    PackedIndex,
    day_of,
    decode_body,
    encode_unit,
    id_hash,
    read_head,
)
from streams.record.book import IncidentBook
from streams.record.changelog import Entry
from streams.record.incident import IncidentFields, IncidentRecord, Status, derive, incident_id
from streams.record.linking import LinkRule
from streams.record.record import Record
from streams.record.revisions import ENTRY_PREFIX
from streams.tallies.series import rows_between
from streams.tallies.state import BUCKET_SECONDS, Edge, IncidentTally
from tests.published import cells, feed
from tests.record_helpers import MIN, rv
from tests.test_record_properties import Scenario, scenarios

BASE = 1_700_000_000.0
#: Far enough after every report that all of them are closable.
LATER = BASE + 40 * DAY

# Reports over six days, many near a UTC midnight (the days closed are UTC's), so that
# incidents and the reach of changes cross days.
spread = st.tuples(st.integers(0, 5), st.sampled_from([0, 10, 20, 90, 600, 1420, 1430])).map(
    lambda dm: dm[0] * DAY + dm[1] * MIN
)


def everything(book: IncidentBook) -> dict[str, tuple[int, IncidentFields]]:
    """Every incident the book holds, open or closed: id -> (version, fields)."""
    out = {r.incident_id: (r.version, r.fields) for r in book.incidents()}
    for r in book.closed_incidents():
        assert r.incident_id not in out
        out[r.incident_id] = (r.version, r.fields)
    return out


def sweep(record: Record, tally: IncidentTally, entries: list[Entry]) -> None:
    change = record.book.sweep(LATER)  # no change counts as recent
    assert not change.incidents
    entries.extend(change.entries)
    entries.extend(change.later)
    moves(tally, change.moves)


def moves(tally: IncidentTally, done: list[tuple[str, str, IncidentFields]]) -> None:
    for move, iid, fields in done:
        if move == "close":
            tally.close(iid)
        else:
            tally.reopen(iid, fields)


def edges(tally: IncidentTally) -> dict[int, list[Edge]]:
    hours = set(tally.members) | set(tally.closed)
    return {h: sorted(tally.edge(h)) for h in hours}


#: Chains everywhere: a component of three precise reports is one, cut at the hour.
CHAINS = LinkRule(chain_limit=2, chain_block_seconds=3600)


WIDE_PRECISIONS = frozenset({TimePrecision.WEEK, TimePrecision.MONTH})
#: with week and month reports, which stay open, and whose reach a change they can be moved
#: by reopens (`_open_near`; a recent one's is kept open, `_held_by_wide`)
WIDE = st.sampled_from(
    [TimePrecision.EXACT] * 4 + [TimePrecision.DAY, TimePrecision.WEEK, TimePrecision.MONTH]
)


@pytest.mark.parametrize(
    ("rule", "precisions"),
    [(LinkRule(), None), (CHAINS, None), (LinkRule(), WIDE)],
    ids=["default", "chains", "week and month"],
)
@settings(max_examples=250, deadline=None)
@given(data=st.data(), sweeps=st.lists(st.booleans(), min_size=60, max_size=60))
def test_a_book_that_closes_publishes_what_one_that_never_closes_does(
    rule: LinkRule,
    precisions: st.SearchStrategy[TimePrecision] | None,
    data: st.DataObject,
    sweeps: list[bool],
) -> None:
    s = data.draw(scenarios(when=spread) if precisions is None else scenarios(spread, precisions))
    plain, closing = Record(rule), Record(rule)
    plain_tally, tally = IncidentTally(), IncidentTally()
    entries: list[Entry] = []
    for i, v in enumerate(s.arrivals):
        if sweeps[i % len(sweeps)]:
            sweep(closing, tally, entries)
        a, b = plain.apply(v), closing.apply(v)
        assert b.incidents == a.incidents  # the same versions, in the same order
        feed(plain_tally, a.incidents)
        moves(tally, b.moves)
        feed(tally, b.incidents)
        entries.extend(b.entries)
    sweep(closing, tally, entries)
    last_day = day_of(LATER) - 1
    for r in closing.book.incidents():  # all of it closed but what a week or a month holds
        wide = any(
            closing.book.report((s, i)).time_precision in WIDE_PRECISIONS  # type: ignore[union-attr]
            for s, i, _ in r.fields.reports
        )
        held = closing.book._held_by_wide(r.fields.zone, last_day)
        assert wide or day_of(r.fields.occurred) in held, r
    assert everything(closing.book) == everything(plain.book)
    assert closing.book.tally() == plain.book.tally()
    # The tally the stage keeps: the same cells, and the same incidents at every edge.
    assert cells(tally) == cells(plain_tally)
    assert edges(tally) == edges(plain_tally)
    for start, end in ((BASE - 1, LATER), (BASE + 0.3 * DAY, BASE + 2.7 * DAY + 17)):
        assert rows_between([tally], start=start, end=end, by="zone,party") == rows_between(
            [plain_tally], start=start, end=end, by="zone,party"
        )
    # The changelog rebuilds it, closed days closed.
    rebuilt = IncidentBook(rule)
    rebuilt_tally = IncidentTally()
    book_entries = [e for e in entries if not e[0].startswith(ENTRY_PREFIX)]
    rebuilt.restore(book_entries, rebuilt_tally.load_closed)
    for r in rebuilt.incidents():
        rebuilt_tally.apply(r)
    assert everything(rebuilt) == everything(plain.book)
    assert len(rebuilt.archive) == len(closing.book.archive)
    assert cells(rebuilt_tally) == cells(plain_tally)
    assert edges(rebuilt_tally) == edges(plain_tally)


@settings(max_examples=150, deadline=None)
@given(scenarios(when=spread), st.integers(0, 40), st.randoms(use_true_random=False))
def test_a_rebuilt_book_goes_on_as_the_one_it_was_rebuilt_from(
    s: Scenario, cut: int, rnd: random.Random
) -> None:
    """Restored after closing (some writes torn at random between a unit and the copies it
    replaces), a book publishes the same as the original for what comes after."""
    original = Record()
    entries: list[Entry] = []
    head, tail = s.arrivals[:cut], s.arrivals[cut:]
    for v in head:
        step = original.apply(v)
        entries.extend(e for e in step.entries if not (e[0][:1] == b"u" and rnd.random() < 0.3))
    change = original.book.sweep(LATER)
    entries.extend(change.entries)
    if rnd.random() < 0.5:  # the close's tombstones torn away
        entries.extend(change.later[: rnd.randint(0, len(change.later))])
    else:
        entries.extend(change.later)
    rebuilt = Record()
    rebuilt.restore(entries)
    assert everything(rebuilt.book) == everything(original.book)
    for v in tail:
        a, b = original.apply(v), rebuilt.apply(v)
        assert a.incidents == b.incidents
    assert everything(rebuilt.book) == everything(original.book)


def test_a_late_report_reopens_the_closed_day_and_joins_its_incident() -> None:
    book = IncidentBook()
    book.upsert(rv("op-1", "a", t=0))
    book.upsert(rv("op-2", "b", t=10 * DAY))  # another day, stays open
    closed = book.sweep(BASE + 5 * DAY)
    assert [m[0] for m in closed.moves] == ["close"]
    assert len(book) == 1 and book.archive.reports == 1
    late = book.upsert(rv("patrol", "c", t=5 * MIN, km=1))
    assert [m[0] for m in late.moves] == ["reopen"]
    (incident,) = late.incidents
    assert [r[0] for r in incident.fields.reports] == ["op-1", "patrol"]
    assert incident.version == 2
    # Changed within the last 2 changes, and not before clock 0: left open a while.
    assert not book.sweep(BASE + 5 * DAY, idle=2, idle_since=0.0).moves
    book.upsert(rv("op-3", "d", t=20 * DAY))  # elsewhere
    assert not book.sweep(BASE + 5 * DAY, idle=2, idle_since=0.0).moves
    book.upsert(rv("op-3", "e", t=30 * DAY))
    assert book.sweep(BASE + 5 * DAY, idle=2, idle_since=0.0).moves  # 2 changes ago
    # And changes older than `idle_since` count as idle however few came since.
    book.clock = 5.0
    book.upsert(rv("op-4", "f", t=MIN, km=2))
    assert not book.sweep(BASE + 5 * DAY, idle=100, idle_since=5.0).moves
    assert book.sweep(BASE + 5 * DAY, idle=100, idle_since=5.5).moves


def test_a_revision_and_a_withdrawal_of_a_closed_report_reopen_it() -> None:
    book = IncidentBook()
    book.upsert(rv("acled", "1", t=0, killed=1))
    book.sweep(BASE + 5 * DAY)
    revised = book.upsert(rv("acled", "1", t=0, killed=49, revision=5))
    (incident,) = revised.incidents
    assert (incident.fields.killed, incident.version) == (49, 2)
    book.sweep(BASE + 5 * DAY)
    gone = book.remove("acled", "1", 6)
    (withdrawn,) = gone.incidents
    assert (withdrawn.status.value, withdrawn.version) == ("withdrawn", 3)
    assert len(book) == 0 and not book.archive


def test_a_report_closed_again_elsewhere_is_found_where_it_is_now() -> None:
    """Closed in one zone, revised into another and closed there: the index kept both units
    for it (after a restore and a merge of its entries), the first was taken, and a
    withdrawal looked there, missed the report, and left it counted for good."""
    from streams.record.model import Withdrawal

    entries: list[Entry] = []
    record = Record()
    for version in (rv("op-1", "x", t=0, zone="z1"), rv("op-2", "y", t=0, km=50, zone="z1")):
        entries.extend(record.apply(version).entries)
    swept = record.book.sweep(BASE + 10 * DAY)
    entries.extend(swept.entries + swept.later)
    record = Record()
    record.restore(entries)  # the index holds x in (z1, day) from the unit's head
    record.apply(rv("op-1", "x", t=0, zone="z2", revision=1))
    record.book.sweep(BASE + 10 * DAY)
    record.book.archive._members._merge()  # as it does when it grows
    assert sorted(z for z, _ in record.book.archive.units()) == ["z1", "z2"]
    step = record.apply(Withdrawal("op-1", "x", 2))
    assert [i.status.value for i in step.incidents] == ["withdrawn"]
    held = [*record.book.closed_incidents(), *record.book.incidents()]
    assert [r.fields.reports for r in held] == [(("op-2", "y", 0),)]


def test_week_and_month_reports_stay_open() -> None:
    book = IncidentBook()
    book.upsert(rv("news", "w", t=0, time_precision=TimePrecision.WEEK))
    book.upsert(rv("op", "x", t=20 * DAY))  # beyond the week report's reach
    book.sweep(BASE + 30 * DAY)
    assert [r.source for r in book.reports()] == ["news"]


@pytest.mark.parametrize(
    ("precision", "later"), [(TimePrecision.WEEK, 5 * DAY), (TimePrecision.MONTH, 20 * DAY)]
)
def test_the_days_a_week_or_month_report_can_reach_stay_open(
    precision: TimePrecision, later: float
) -> None:
    """A late report takes the week (month) report from its incident; the report left
    alone is then the better choice of a day report in a day the sweep had closed, which
    nothing re-decided: the book ended grouped otherwise than one that never closes
    (a review's case). Held open while the reach is recent (an old one's closes, and the
    late report reopens it: `tests/test_record_archive_wide.py`)."""
    wide = rv("s1", "W", t=0, km=2.5, time_precision=precision)
    p1 = rv("s2", "P1", t=4200)
    p2 = rv("s2", "P2", t=10800, km=-1.0)
    day = rv("s3", "R", t=3600, time_precision=TimePrecision.DAY)
    late = rv("s4", "N", t=later, km=2.5)
    plain, closing = Record(), Record()
    for v in (wide, p1, p2, day):
        plain.apply(v)
        closing.apply(v)
    closing.book.sweep(BASE + 3 * DAY)
    assert plain.apply(late).incidents == closing.apply(late).incidents
    assert everything(closing.book) == everything(plain.book)
    groups = sorted(sorted(rid for _, rid, _ in r.fields.reports) for r in plain.book.incidents())
    assert groups == [["N", "W"], ["P1", "R"], ["P2"]]  # as grouped from scratch


def test_an_incident_is_found_open_or_closed() -> None:
    book = IncidentBook()
    book.upsert(rv("op-1", "a", t=0))
    book.upsert(rv("patrol", "b", t=MIN))
    (incident,) = book.incidents()
    book.sweep(BASE + 5 * DAY)
    found = book.find_closed(incident.incident_id)
    assert found is not None
    record, reports = found
    assert (record.incident_id, record.version, record.fields) == (
        incident.incident_id,
        incident.version,
        incident.fields,
    )
    assert set(reports) == {("op-1", "a"), ("patrol", "b")}
    assert book.find_closed("00000000-0000-0000-0000-000000000000") is None


def test_a_merged_id_finds_its_holder_once_closed_and_after_a_restore() -> None:
    book = IncidentBook()
    entries: list[Entry] = []
    entries += book.upsert(rv("op-1", "b", t=MIN)).entries
    merged = incident_id(("op-1", "b"))
    entries += book.upsert(rv("patrol", "a", t=0, km=1)).entries  # earlier: renamed
    holder = incident_id(("patrol", "a"))
    assert book.holder_of(merged) == holder
    last = book.versions[merged]
    closing = book.sweep(LATER)
    entries += closing.entries + closing.later
    assert book.holder_of(merged) is None and book.find_closed(merged) is None
    rebuilt = IncidentBook()
    rebuilt.restore(entries)
    for b in (book, rebuilt):
        assert b.closed_holder_of(merged) == (holder, last)
        assert b.closed_holder_of(holder) is None  # its own id: find_closed has it
        found = b.find_closed(holder)
        assert found is not None and set(found[1]) == {("op-1", "b"), ("patrol", "a")}
        assert b.closed_holder_of("00000000-0000-0000-0000-000000000000") is None


def test_a_unit_round_trips() -> None:
    members = [rv("op-1", "a", t=0, killed=2), rv("patrol", "b", t=MIN, km=1)]
    groups = [(members, {"x": 3}), ([rv("op-2", "c", t=5 * DAY)], {})]
    fields = [derive(m) for m, _ in groups]
    head = read_head(encode_unit(groups, fields))
    assert decode_body(head.body) == groups
    assert [s[0] for s in head.summaries] == [f.occurred for f in fields]
    assert head.summaries[0][1:] == (
        ("shusha", "unknown", "heavy_weapons_fire", "observed"),
        2,
        2,
        0,
    )
    # The incidents' ids, and the published id merged into the first ("x"), are indexed.
    anchors = [incident_id(("op-1", "a")), "x", incident_id(("op-2", "c"))]
    assert len(head.member_keys) == 3 and head.id_hashes == [id_hash(i) for i in anchors]


def test_units_before_1970_and_many_zones_are_told_apart() -> None:
    archive = Archive()
    head = read_head(encode_unit([([rv("op", "1")], {})], [derive([rv("op", "1")])]))
    for zone, day in (("a", -3), ("b", 19_000), ("a", 19_000)):
        archive.add(zone, day, head)
    assert archive._unit(archive._number("a", -3)) == ("a", -3)
    assert archive._unit(archive._number("b", 19_000)) == ("b", 19_000)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1)), max_size=300))
def test_the_packed_index_names_the_unit_a_hash_was_last_put_with(
    pairs: list[tuple[int, int]],
) -> None:
    """Among the units a hash names (older ones are stale hints), the latest is there,
    however entries were loaded, put and merged."""
    index = PackedIndex()
    latest: dict[int, int] = {}
    bulk = pairs[: len(pairs) // 3]
    for k, v in bulk:
        index.load([k], v)
        latest[k] = v
    index.seal()
    for i, (k, v) in enumerate(pairs[len(bulk) :]):
        index.put(k, v)
        latest[k] = v
        if i % 97 == 0:
            index._merge()
    for k, v in latest.items():
        assert v in index.get(k)
    if 12345678901 not in latest:
        assert index.get(12345678901) == []


def test_the_tally_counts_a_closed_incident_at_its_edge_to_the_second() -> None:
    tally = IncidentTally()
    members = [rv("op-1", "a", t=30 * MIN, killed=1)]
    record = IncidentRecord("i", 1, Status.OPEN, None, derive(members))
    tally.apply(record)
    hour = int((BASE + 30 * MIN) // BUCKET_SECONDS)
    tally.close("i")
    assert hour in tally.closed and not tally.members
    inside = rows_between([tally], start=BASE + 30 * MIN, end=BASE + 30 * MIN + 1, by="zone")
    outside = rows_between([tally], start=BASE + 30 * MIN - 1, end=BASE + 30 * MIN, by="zone")
    assert inside == [{"zone": "shusha", "incidents": 1, "reports": 1, "killed": 1, "wounded": 0}]
    assert outside == []
    tally.reopen("i", record.fields)
    assert not tally.closed and tally.open["i"] == record.fields


def test_a_day_a_unit_number_cannot_name_stays_open() -> None:
    """An ACLED row dated 0001-01-01 (the schema takes years 1 to 9999) was closed in a unit
    whose 20-bit day wrapped round: listed as an incident, then not found by its id."""
    book = IncidentBook()
    year_one = datetime(1, 1, 1, tzinfo=UTC).timestamp() - BASE
    book.upsert(rv("acled", "old", t=year_one))
    book.upsert(rv("acled", "new", t=0))
    book.sweep(LATER)
    assert [r.report_id for r in book.reports()] == ["old"]  # kept open
    (old,) = book.incidents()
    assert old.incident_id in book.versions and book.find_closed(old.incident_id) is None
