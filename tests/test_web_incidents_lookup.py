"""The incidents API's local answers (`fanout.local_incident`, `fanout.local_incidents`)
find an incident by its id (`IncidentBook.open_incident`, `holder_of`: an index built on the
first lookup and kept as reports come and go) and look at the fields of the open incidents
before naming any. They must answer exactly what a scan of every open incident answered:
checked here against that scan (the code they replaced, kept below) after every change of
books that merge, split, withdraw, revise reports into other zones and partitions, close
days, reopen them and are rebuilt from their changelog, with the index built early and
then kept."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codes import Category, SourceType
from streams.record.archive import DAY
from streams.record.book import Change, IncidentBook
from streams.record.changelog import Entry
from streams.record.incident import IncidentRecord, incident_id
from streams.record.model import Ident
from streams.web.fanout import (
    DAY_MICROS,
    Found,
    _closed_items,
    local_incident,
    local_incidents,
)
from streams.web.incidents import (
    ATTRIBUTIONS,
    VERIFICATIONS,
    IncidentQuery,
    Key,
    Page,
    facets_of_record,
    incident_details,
    select,
)
from tests.record_helpers import MIN, rv

if TYPE_CHECKING:
    from streams.web.worker_view import WorkerView

BASE = 1_700_000_000.0

#: source -> (source type, claimant): verifications and attributions differ
SOURCES: dict[str, tuple[SourceType, str | None]] = {
    "op-1": (SourceType.OBSERVATION_POST, None),
    "op-2": (SourceType.OBSERVATION_POST, None),
    "patrol": (SourceType.PATROL, None),
    "az-mod": (SourceType.PARTY_STATEMENT, "az"),
    "news": (SourceType.MEDIA, None),
}
#: zone -> partition: "north" and "south" share a book, "east" has its own
PARTITION = {"north": 0, "south": 0, "east": 1}
CATEGORIES = [Category.SMALL_ARMS_FIRE, Category.HEAVY_WEAPONS_FIRE, Category.DRONE_STRIKE]

# Ten-minute steps over four days (and a report near midnight), with fractions of a second
# that round to a microsecond either way: incidents link, cross days, and tie or nearly tie
# at the microsecond.
times = st.tuples(
    st.integers(0, 3),
    st.sampled_from([0, 10, 20, 30, 1430]),
    st.sampled_from([0.0, 0.25, 0.4999996, 0.5000004, 0.9999996]),
).map(lambda t: t[0] * DAY + t[1] * MIN + t[2])


# -- the scans the lookups replaced -----------------------------------------------------------
def scan_open(book: IncidentBook, iid: str) -> IncidentRecord | None:
    return next((r for r in book.incidents() if r.incident_id == iid), None)


def scan_holder(book: IncidentBook, iid: str) -> str | None:
    for linker in book.zones.values():
        for ident, anchor in linker.anchor.items():
            if ident != anchor and incident_id(ident) == iid:
                return incident_id(anchor)
    return None


def scan_local_incident(books: list[IncidentBook], iid: str) -> Found:
    found = Found()
    for book in books:
        version = book.versions.get(iid)
        if version is None:
            closed = book.find_closed(iid)
            if closed is not None:
                return Found(incident_details(*closed), closed[0].version)
            merged = book.closed_holder_of(iid)
            if merged is not None:
                found = Found(
                    None, max(merged[1], found.version or 0), found.merged_into or merged[0]
                )
            continue
        record = scan_open(book, iid)
        if record is not None:
            held = {(s, rid): book.report((s, rid)) for s, rid, _ in record.fields.reports}
            return Found(incident_details(record, held), record.version)
        holder = found.merged_into or scan_holder(book, iid)
        found = Found(None, max(version, found.version or 0), holder)
    return found


def scan_local_incidents(books: list[IncidentBook], query: IncidentQuery) -> Page[Any]:
    closed = sorted(
        ((day, zone, book) for book in books for zone, day in book.archive.units()),
        key=lambda d: d[0],
        reverse=True,
    )
    page = select(
        query,
        ((facets_of_record(r), r) for book in books for r in book.incidents()),
        (
            (
                day * DAY_MICROS,
                (day + 1) * DAY_MICROS,
                zone,
                partial(_closed_items, book, zone, day),
            )
            for day, zone, book in closed
        ),
    )
    return Page([r.document() for r in page.items], page.more)


# -- books that change ------------------------------------------------------------------------
@dataclass
class World:
    """Two partitions' books, and the changelog entries each wrote."""

    books: dict[int, IncidentBook] = field(
        default_factory=lambda: {0: IncidentBook(), 1: IncidentBook()}
    )
    entries: dict[int, list[Entry]] = field(default_factory=lambda: {0: [], 1: []})
    #: ident -> (revision, zone or None: withdrawn) of its latest version
    latest: dict[Ident, tuple[int, str | None]] = field(default_factory=dict)

    def keep(self, p: int, change: Change) -> None:
        self.entries[p].extend(change.entries)
        self.entries[p].extend(change.later)
        floors = list(change.floors)
        while floors:  # as the zone stage sends them
            zone, source, rid, version = floors.pop(0)
            q = PARTITION[zone]
            more = self.books[q].floor(source, rid, version)
            self.entries[q].extend(more.entries)
            self.entries[q].extend(more.later)
            floors.extend(more.floors)

    def monitor(self) -> WorkerView:
        books = self.books
        view = SimpleNamespace(zone=SimpleNamespace(books=books, partitions_ready=lambda: {0, 1}))
        return cast("WorkerView", view)


def ids_to_ask(world: World) -> list[str]:
    """Every id either book knows or knew, of reports current, gone or closed, and one no
    book ever published."""
    ids = {incident_id(ident) for ident in world.latest}
    for book in world.books.values():
        ids.update(book.versions)
        ids.update(r.incident_id for r in book.closed_incidents())
    return [*sorted(ids), "00000000-0000-0000-0000-000000000000"]


def keys_of(world: World) -> list[Key]:
    keys = []
    for book in world.books.values():
        for r in [*book.incidents(), *book.closed_incidents()]:
            keys.append(facets_of_record(r).key)
    return sorted(keys)


@st.composite
def queries(draw: st.DrawFn, keys: list[Key]) -> IncidentQuery:
    """Filters of every kind; bounds and cursors at, a microsecond and a second off, and
    between the incidents' times (and their days' edges)."""
    times = [k[0] for k in keys] or [int(BASE * 1e6)]
    near = st.sampled_from(times).flatmap(
        lambda m: st.sampled_from(
            [m, m - 1, m + 1, m - 1_000_000, m + 1_000_000, m - m % DAY_MICROS, m + 500_000]
        )
    )
    start = draw(st.none() | near)
    end = draw(st.none() | near)
    if start is not None and end is not None and start > end:
        start, end = end, start
    after: Key | None = None
    if draw(st.booleans()):
        m = draw(near)
        iid = draw(
            st.sampled_from([k[1] for k in keys] or ["x"])
            | st.sampled_from(["", "00000000", "ffffffff"])
        )
        after = (m, iid)
    return IncidentQuery(
        zones=draw(st.frozensets(st.sampled_from(sorted(PARTITION)), max_size=2)),
        attributions=draw(st.frozensets(st.sampled_from(ATTRIBUTIONS), max_size=2)),
        categories=draw(st.frozensets(st.sampled_from([c.value for c in CATEGORIES]), max_size=2)),
        verifications=draw(st.frozensets(st.sampled_from(VERIFICATIONS), max_size=2)),
        start=start,
        end=end,
        limit=draw(st.integers(1, 4)),
        after=after,
    )


def check(world: World, data: st.DataObject) -> None:
    """Every lookup answers what the scan answers; the index, where built, holds exactly
    the current reports."""
    monitor = world.monitor()
    books = world.books
    for iid in ids_to_ask(world):
        for book in books.values():
            assert book.open_incident(iid) == scan_open(book, iid), iid
            assert book.holder_of(iid) == scan_holder(book, iid), iid
        for parts in ({0, 1}, {0}, {1}):
            chosen = [books[p] for p in sorted(parts)]
            assert local_incident(monitor, parts, iid) == scan_local_incident(chosen, iid), iid
    for book in books.values():
        named = book._named
        if named is not None:
            assert named == {incident_id(ident): ident for ident in book._zone_of}
    keys = keys_of(world)
    for _ in range(3):
        query = data.draw(queries(keys))
        for parts in ({0, 1}, {0}):
            chosen = [books[p] for p in sorted(parts)]
            assert local_incidents(monitor, parts, query) == scan_local_incidents(chosen, query)


def pages(world: World, query: IncidentQuery) -> Iterator[list[str]]:
    """The ids of each page, following the cursor to the end."""
    while True:
        page = local_incidents(world.monitor(), {0, 1}, query)
        yield [d["incident_id"] for d in page.items]
        if not page.more:
            return
        last = page.items[-1]
        key = facets_of_record(_record_of(world, last["incident_id"], last["version"])).key
        query = IncidentQuery(limit=query.limit, after=key)


def _record_of(world: World, iid: str, version: int) -> IncidentRecord:
    for book in world.books.values():
        for r in [*book.incidents(), *book.closed_incidents()]:
            if r.incident_id == iid and r.version == version:
                return r
    raise AssertionError(iid)


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_lookups_answer_what_a_scan_of_every_open_incident_answers(data: st.DataObject) -> None:
    world = World()
    idents = data.draw(
        st.lists(
            st.tuples(st.sampled_from(sorted(SOURCES)), st.sampled_from(["1", "2", "3"])),
            min_size=1,
            max_size=8,
            unique=True,
        )
    )
    check(world, data)  # (the index is built on the first lookup, then kept)
    for _ in range(data.draw(st.integers(1, 22))):
        step = data.draw(st.sampled_from(["report"] * 6 + ["withdraw", "sweep", "restore"]))
        if step == "sweep":
            p = data.draw(st.sampled_from([0, 1]))
            # closes every day before the one drawn (a later report reopens it)
            world.keep(p, world.books[p].sweep(BASE + data.draw(st.integers(1, 4)) * DAY))
        elif step == "restore":
            p = data.draw(st.sampled_from([0, 1]))
            rebuilt = IncidentBook()
            rebuilt.restore(world.entries[p])
            world.books[p] = rebuilt
        else:
            source, rid = ident = data.draw(st.sampled_from(idents))
            revision, zone = world.latest.get(ident, (-1, None))
            revision += 1
            if step == "withdraw":
                if zone is not None:
                    world.keep(
                        PARTITION[zone], world.books[PARTITION[zone]].remove(*ident, revision)
                    )
                world.latest[ident] = (revision, None)
            else:
                source_type, claimant = SOURCES[source]
                to = data.draw(st.sampled_from(sorted(PARTITION)))
                r = rv(
                    source,
                    rid,
                    revision=revision,
                    source_type=source_type,
                    claimant=claimant,
                    t=data.draw(times),
                    km=data.draw(st.sampled_from([0.0, 1.0, 2.5, 5.0])),
                    zone=to,
                    category=data.draw(st.sampled_from(CATEGORIES)),
                    perpetrator=data.draw(st.sampled_from(["az", "am", "unknown"])),
                    killed=data.draw(st.integers(0, 2)),
                )
                old, new = (None if zone is None else PARTITION[zone]), PARTITION[to]
                moving = old is not None and old != new
                # a report moving partitions: the new one may take it first (it is then for
                # a moment in both, as between two stages' steps)
                new_first = moving and data.draw(st.booleans())
                if new_first:
                    world.keep(new, world.books[new].upsert(r))
                    check(world, data)
                if moving:
                    assert old is not None
                    world.keep(old, world.books[old].remove(source, rid, revision, to=to))
                if not new_first:
                    world.keep(new, world.books[new].upsert(r))
                world.latest[ident] = (revision, to)
        check(world, data)
    # paging follows the cursor through every open incident once, as the scan orders them
    for limit in (1, 3):
        seen = [iid for page in pages(world, IncidentQuery(limit=limit)) for iid in page]
        full = scan_local_incidents(list(world.books.values()), IncidentQuery(limit=1000))
        assert seen == [d["incident_id"] for d in full.items]


def a_book_with_a_merge() -> tuple[IncidentBook, str, str]:
    """A book where an incident was renamed by an earlier report: (book, the id it had,
    the id it has)."""
    book = IncidentBook()
    book.upsert(rv("op-1", "b", t=0))
    book.upsert(rv("op-1", "c", t=5 * DAY))
    book.upsert(rv("patrol", "a", t=-MIN, km=1))
    return book, incident_id(("op-1", "b")), incident_id(("patrol", "a"))


def test_the_index_is_built_on_the_first_lookup_and_kept_after() -> None:
    book, merged, holder = a_book_with_a_merge()
    assert book._named is None  # a book never asked holds none
    assert book.open_incident(holder) == scan_open(book, holder)
    assert book.open_incident(merged) is None
    assert book.holder_of(merged) == holder
    assert book._named is not None
    # the report the old id is named after is withdrawn: the id is held by nothing
    book.remove("op-1", "b", 1)
    assert book.holder_of(merged) is None and book.open_incident(merged) is None
    assert book.open_incident(holder) == scan_open(book, holder)
    # closed, and reopened by a late report
    book.sweep(BASE + 10 * DAY)
    assert not list(book.incidents())
    assert book.open_incident(holder) is None
    assert book._named == {}
    book.upsert(rv("op-2", "z", t=5 * DAY + MIN, km=1))
    late = incident_id(("op-1", "c"))
    assert book.open_incident(late) == scan_open(book, late) is not None
    assert book._named == {incident_id(i): i for i in book._zone_of}


def test_a_wrong_or_stale_entry_of_the_index_answers_nothing_wrong() -> None:
    book, merged, holder = a_book_with_a_merge()
    assert book.holder_of(merged) == holder
    named = book._named
    assert named is not None
    other = incident_id(("op-1", "c"))
    # an entry naming another report (of the same count: only the check of a hit sees it)
    named[holder], named[other] = named[other], named[holder]
    assert book.open_incident(holder) == scan_open(book, holder) is not None
    assert book.open_incident(other) == scan_open(book, other) is not None
    # an entry missing, or one of a report no longer current: the count tells
    named = book._named
    assert named is not None
    gone = named.pop(holder)
    assert book.open_incident(holder) == scan_open(book, holder) is not None
    named = book._named
    assert named is not None and named[holder] == gone
    named["f" * 8] = ("op-9", "gone")
    assert book.holder_of(merged) == holder
    assert book.open_incident("f" * 8) is None
    assert book._named == {incident_id(i): i for i in book._zone_of}


def test_incidents_at_one_microsecond_page_by_id_whatever_their_seconds() -> None:
    """Times a float apart that are one microsecond (as the document writes them) tie, and
    the id orders them: each is kept for the page as a scan keeps it."""
    tied = [0.5000004, 0.5000004, 0.4999996]  # all 12:00:00.500000
    for shift in range(3):
        world = World()
        for i, zone in enumerate(["north", "south", "east"]):
            t = 3 * DAY + tied[(i + shift) % 3]
            world.books[PARTITION[zone]].upsert(rv("op-1", f"r{i}", t=t, zone=zone))
        world.books[0].upsert(rv("op-2", "old", t=3 * DAY - 1.0, km=50, zone="north"))
        books = [world.books[0], world.books[1]]
        keys = keys_of(world)
        for limit in (1, 2, 3):
            for after in [None, *keys]:
                query = IncidentQuery(limit=limit, after=after)
                answer = local_incidents(world.monitor(), {0, 1}, query)
                assert answer == scan_local_incidents(books, query), (shift, limit, after)
