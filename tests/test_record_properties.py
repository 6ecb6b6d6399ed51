"""Property tests of the record: whatever the arrival order of reports, re-sends, revisions,
stale revisions and withdrawals, the end state is that of applying only the latest revision
of each report; the published changes and the tally deltas add up to that state; and the
changelog rebuilds it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codes import Category, LocationPrecision, SourceType, TimePrecision
from streams.record.book import Change, IncidentBook
from streams.record.incident import IncidentFields, IncidentRecord, Status
from streams.record.linking import LinkRule
from streams.record.model import Ident, ReportVersion, Version, Withdrawal, content_digest
from streams.record.record import Record, Step
from streams.record.revisions import IdentityState, Outcome
from streams.tallies.state import IncidentTally
from tests.published import cells, feed
from tests.record_helpers import MIN, east, reference_groups, rv

#: source -> (source type, claimant)
SOURCES: dict[str, tuple[SourceType, str | None]] = {
    "op-1": (SourceType.OBSERVATION_POST, None),
    "op-2": (SourceType.OBSERVATION_POST, None),
    "patrol": (SourceType.PATROL, None),
    "az-mod": (SourceType.PARTY_STATEMENT, "az"),
    "am-mod": (SourceType.PARTY_STATEMENT, "am"),
    "news": (SourceType.MEDIA, None),
}

# Ten-minute steps over three hours, places on a 0-5 km line: many pairs within the
# 30 min / 3 km rule, many not, so incidents form, split and merge.
times = st.integers(0, 18).map(lambda i: i * 10 * MIN)
places = st.sampled_from([0.0, 1.0, 2.5, 4.0, 5.0])
zones = st.sampled_from(["north", "south"])
categories = st.sampled_from(
    [Category.SMALL_ARMS_FIRE, Category.HEAVY_WEAPONS_FIRE, Category.AIRSPACE_VIOLATION]
)
parties = st.sampled_from(["az", "am", "unknown"])
figures = st.integers(0, 3)
targets = st.sampled_from(["az", "am", "civilians", None])
named_places = st.sampled_from(["Martuni", "Hadrut", None])
time_precisions = st.sampled_from([TimePrecision.EXACT] * 4 + [TimePrecision.DAY])
place_precisions = st.sampled_from([LocationPrecision.POINT] * 3 + [LocationPrecision.TOWN])
# what a day report's text may state (`streams.classify.time_of_day`): nothing, a clock
# time, the morning, the night, the evening
times_of_day = st.sampled_from([None, (180, 180), (300, 720), (-180, 360), (1020, 1380)])


@dataclass(frozen=True)
class Scenario:
    arrivals: list[Version]
    latest: dict[Ident, Version]


@st.composite
def scenarios(
    draw: st.DrawFn,
    when: st.SearchStrategy[float] = times,
    precisions: st.SearchStrategy[TimePrecision] = time_precisions,
) -> Scenario:
    idents = draw(
        st.lists(
            st.tuples(st.sampled_from(sorted(SOURCES)), st.sampled_from(["1", "2", "3"])),
            min_size=1,
            max_size=10,
            unique=True,
        )
    )
    versions: list[Version] = []
    latest: dict[Ident, Version] = {}
    for source, report_id in idents:
        source_type, claimant = SOURCES[source]
        revisions = draw(st.lists(st.integers(0, 6), min_size=1, max_size=4, unique=True))
        for revision in sorted(revisions):
            v: Version
            if draw(st.integers(0, 4)) == 0:
                v = Withdrawal(source, report_id, revision)
            else:
                time_precision = draw(precisions)
                v = rv(
                    source,
                    report_id,
                    revision=revision,
                    source_type=source_type,
                    claimant=claimant,
                    t=draw(when),
                    km=draw(places),
                    zone=draw(zones),
                    category=draw(categories),
                    perpetrator=draw(parties),
                    killed=draw(figures),
                    wounded=draw(figures),
                    time_precision=time_precision,
                    location_precision=draw(place_precisions),
                    target=draw(targets),
                    place=draw(named_places),
                    time_of_day=(
                        draw(times_of_day) if time_precision is TimePrecision.DAY else None
                    ),
                )
            versions.append(v)
            latest[(source, report_id)] = v
    resends = draw(st.lists(st.sampled_from(versions), max_size=6))
    arrivals = draw(st.permutations(versions + resends))
    return Scenario(list(arrivals), latest)


def expected_outcomes(arrivals: list[Version]) -> list[Outcome]:
    """The outcome of each arrival by the plain definition."""
    applied: dict[Ident, Version] = {}
    out = []
    for v in arrivals:
        before = applied.get(v.ident)
        if before is None:
            out.append(Outcome.WITHDRAWN if v.withdrawn else Outcome.NEW)
        elif v.revision < before.revision:
            out.append(Outcome.STALE)
        elif v.revision == before.revision:
            out.append(Outcome.DUPLICATE)  # the scenarios hold one content per revision
        elif v.withdrawn:
            out.append(Outcome.WITHDRAWN)
        else:
            out.append(Outcome.REINSTATED if before.withdrawn else Outcome.REVISED)
        if before is None or v.revision > before.revision:
            applied[v.ident] = v
    return out


def open_fields(incidents: list[IncidentRecord]) -> dict[str, IncidentFields]:
    return {i.incident_id: i.fields for i in incidents}


def apply_all(record: Record, arrivals: list[Version]) -> list[Step]:
    return [record.apply(v) for v in arrivals]


def latest_only(s: Scenario, rule: LinkRule | None = None) -> Record:
    """A record given only the latest revision of each report."""
    record = Record(rule)
    for v in s.latest.values():
        record.apply(v)
    return record


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_end_state_is_that_of_the_latest_revisions(s: Scenario) -> None:
    record = Record()
    steps = apply_all(record, s.arrivals)
    assert [step.outcome for step in steps] == expected_outcomes(s.arrivals)

    only_latest = latest_only(s)
    live = {i: v for i, v in s.latest.items() if isinstance(v, ReportVersion)}
    assert {r.ident: r for r in record.reports()} == live
    assert {r.ident: r for r in only_latest.reports()} == live
    # Incidents: same membership and fields (versions count history, so they differ).
    assert open_fields(list(record.incidents())) == open_fields(list(only_latest.incidents()))
    assert record.tally() == only_latest.tally()
    # Membership is the canonical grouping of each zone's current reports.
    rule = LinkRule()
    by_zone: dict[str, list[ReportVersion]] = defaultdict(list)
    for r in live.values():
        by_zone[r.zone].append(r)
    got = {frozenset((src, rid) for src, rid, _ in i.fields.reports) for i in record.incidents()}
    expected = set().union(*(reference_groups(rs, rule) for rs in by_zone.values()))
    assert got == expected


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_published_changes_and_tally_deltas_add_up_to_the_state(s: Scenario) -> None:
    record = Record()
    steps = apply_all(record, s.arrivals)

    published = IncidentTally()
    for step in steps:
        feed(published, step.incidents)
    assert cells(published) == record.tally()

    # A subscriber keeping the latest version of every incident id sees the open incidents.
    seen: dict[str, IncidentRecord] = {}
    for step in steps:
        published_open = set()
        for inc in step.incidents:
            prior = seen.get(inc.incident_id)
            assert prior is None or inc.version == prior.version + 1
            if inc.status is Status.OPEN:
                published_open.add(inc.incident_id)
            elif inc.status is Status.MERGED:
                # It points at an incident that is open, published in the same step first.
                assert inc.merged_into in published_open
            seen[inc.incident_id] = inc
    opened = {i: inc for i, inc in seen.items() if inc.status is Status.OPEN}
    assert opened == {inc.incident_id: inc for inc in record.incidents()}


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.integers(0, 40))
def test_the_changelog_rebuilds_the_state(s: Scenario, cut: int) -> None:
    record = Record()
    entries = []
    head, tail = s.arrivals[:cut], s.arrivals[cut:]
    for v in head:
        entries.extend(record.apply(v).entries)
    rebuilt = Record()
    rebuilt.restore(entries)
    assert sorted(rebuilt.identities.items()) == sorted(record.identities.items())
    assert {r.ident: r for r in rebuilt.reports()} == {r.ident: r for r in record.reports()}
    assert sorted(rebuilt.incidents(), key=lambda i: i.incident_id) == sorted(
        record.incidents(), key=lambda i: i.incident_id
    )
    # And both go on identically.
    for v in tail:
        a, b = record.apply(v), rebuilt.apply(v)
        assert (a.outcome, a.incidents, a.entries) == (b.outcome, b.incidents, b.entries)


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_split_stages_reach_the_same_state(s: Scenario) -> None:
    """The two-stage wiring: revision state keyed by identity routes accepted versions to a
    book per zone (as if each zone were on another partition); each book's input is then
    delivered twice (an at-least-once replay after a crash)."""
    identities = IdentityState()
    ops: dict[str, list[tuple[str, Version]]] = defaultdict(list)
    for v in s.arrivals:
        d = identities.apply(v)
        if isinstance(v, ReportVersion) and d.outcome in (
            Outcome.NEW,
            Outcome.REVISED,
            Outcome.REINSTATED,
        ):
            if d.zone_before is not None and d.zone_before != v.zone:
                ops[d.zone_before].append(("remove", v))
            ops[v.zone].append(("upsert", v))
        elif d.outcome is Outcome.WITHDRAWN and d.zone_before is not None:
            ops[d.zone_before].append(("remove", v))
    books: dict[str, IncidentBook] = {}
    for zone, zone_ops in ops.items():
        book = books[zone] = IncidentBook()
        for op, v in zone_ops + zone_ops:
            if op == "upsert" and isinstance(v, ReportVersion):
                book.upsert(v)
            else:
                book.remove(v.source, v.report_id, v.revision)

    record = Record()
    apply_all(record, s.arrivals)
    split = {i.incident_id: i.fields for b in books.values() for i in b.incidents()}
    assert split == open_fields(list(record.incidents()))


def test_a_conflicting_revision_changes_nothing() -> None:
    record = Record()
    record.apply(rv("op-1", "1", killed=1))
    before = (list(record.incidents()), record.tally())
    step = record.apply(rv("op-1", "1", killed=2))
    assert step.outcome is Outcome.CONFLICT
    assert (step.incidents, step.entries) == ([], [])
    assert (list(record.incidents()), record.tally()) == before


#: Chains everywhere: a component of three precise reports is one, cut at the hour (rv's
#: times start 800 s into an hour: the scenarios' three hours span four blocks).
CHAINS = LinkRule(chain_limit=2, chain_block_seconds=3600)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_with_chains_the_end_state_is_that_of_the_latest_revisions(s: Scenario) -> None:
    """A chain limit of 2: most components cross it both ways as reports come and go. The
    end state is still the grouping of the latest revisions by the plain reference, the
    published changes add up to it, and the changelog rebuilds it."""
    record = Record(CHAINS)
    steps = apply_all(record, s.arrivals)
    only_latest = latest_only(s, CHAINS)
    assert open_fields(list(record.incidents())) == open_fields(list(only_latest.incidents()))
    by_zone: dict[str, list[ReportVersion]] = defaultdict(list)
    for r in record.reports():
        by_zone[r.zone].append(r)
    got = {frozenset((src, rid) for src, rid, _ in i.fields.reports) for i in record.incidents()}
    assert got == set().union(*(reference_groups(rs, CHAINS) for rs in by_zone.values()))
    published = IncidentTally()
    for step in steps:
        feed(published, step.incidents)
    assert cells(published) == record.tally()
    rebuilt = Record(CHAINS)
    rebuilt.restore([e for step in steps for e in step.entries])
    assert sorted(rebuilt.incidents(), key=lambda i: i.incident_id) == sorted(
        record.incidents(), key=lambda i: i.incident_id
    )


#: Within one 30-minute cell, so that cells cross a small crowd limit often.
dense_times = st.sampled_from([0.0, 5 * MIN, 10 * MIN])


@settings(max_examples=300, deadline=None)  # about a fifth of them crowd a cell
@given(scenarios(when=dense_times))
def test_with_crowded_cells_the_end_state_does_not_depend_on_arrival_order(s: Scenario) -> None:
    """A crowd limit of 1 (reports crowd a cell as soon as two share it): crowding is a
    function of the current reports, so the end state is still that of the latest
    revisions, whatever the order; and the published changes add up to it."""
    rule = LinkRule(crowd_limit=1)
    record = Record(rule)
    steps = apply_all(record, s.arrivals)
    only_latest = latest_only(s, rule)
    assert open_fields(list(record.incidents())) == open_fields(list(only_latest.incidents()))
    assert record.tally() == only_latest.tally()
    published = IncidentTally()
    for step in steps:
        feed(published, step.incidents)
    assert cells(published) == record.tally()


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_what_the_alert_stage_hears_ends_as_the_open_incidents(s: Scenario) -> None:
    """Whatever the arrivals: replaying what the zone stage tells the alert stage (each
    step's incidents as a report standing for them, retractions) leaves exactly the open
    incidents, each with its current figures, category, severity and attribution."""
    from schemas.codes import Party
    from streams.pipeline.zone_messages import Upsert
    from streams.pipeline.zone_stage import RETRACT_PREFIX, ZoneOutput, alert_inputs_of
    from streams.record.book import Change

    record = Record()
    heard: dict[str, dict[str, object]] = {}
    for v in s.arrivals:
        step = record.apply(v)
        out = ZoneOutput()
        out.add(0, Change(incidents=step.incidents))
        if isinstance(v, ReportVersion):
            out.upserted[v.ident] = Upsert(v, v.civilian)
        for _, raw in alert_inputs_of(out, report_of=lambda _, ident: record.book.report(ident)):
            doc = orjson.loads(raw)
            if raw.startswith(RETRACT_PREFIX):
                heard.pop(doc["incident_id"], None)
            else:
                heard[doc["incident_id"]] = doc
    expected = {}
    for i in record.incidents():
        f = i.fields
        party = f.attribution if f.attribution in {p.value for p in Party} else "unknown"
        expected[i.incident_id] = (f.killed, f.wounded, str(f.category), str(f.severity), party)
    assert {
        iid: (d["killed"], d["wounded"], d["category"], d["severity"], d["perpetrator"])
        for iid, d in heard.items()
    } == expected


@st.composite
def reclassifications(draw: st.DrawFn) -> list[Version]:
    """A scenario's arrivals with re-sends classified otherwise (another zone or point: the
    same report as sent, a corrected gazetteer) mixed in anywhere."""
    s = draw(scenarios())
    arrivals = list(s.arrivals)
    reports = [v for v in arrivals if isinstance(v, ReportVersion)]
    for v in draw(st.lists(st.sampled_from(reports), max_size=6)) if reports else []:
        # the same report placed elsewhere: another zone or point, its digest anew
        other = replace(v, zone=draw(zones), lon=east(draw(places)), digest=b"")
        arrivals.insert(draw(st.integers(0, len(arrivals))), other)
    return arrivals


def sent_of(v: Version) -> bytes:
    """The digest of the report as sent: one per revision (reclassified variants alike)."""
    return content_digest({"ident": list(v.ident), "revision": v.revision, "w": v.withdrawn})


@settings(max_examples=300, deadline=None)
@given(reclassifications(), st.booleans())
def test_reclassified_resends_end_as_the_last_classification_of_the_latest_revision(
    arrivals: list[Version], split: bool
) -> None:
    """Through revision state and the books as the stages wire them (the upsert to the
    new zone's book, then the remove naming it to the old zone's; version floors between
    books), with both zones in one book or (`split`) in two, whatever the order: each
    report ends as the last classification to arrive of its latest revision, and
    subscribers of the published versions end with the books' open incidents."""
    state = IdentityState()
    one = IncidentBook()
    books = {"north": one, "south": IncidentBook() if split else one}
    published: list[IncidentRecord] = []

    def apply(change: Change) -> None:
        published.extend(change.incidents)
        if split:  # (a floor to its own partition is not sent: that book moved it)
            for to, source, report_id, version in change.floors:
                apply(books[to].floor(source, report_id, version))

    for v in arrivals:
        d = state.apply(v, sent=None if v.withdrawn else sent_of(v), reclassify=True)
        if not d.outcome.changes_state:
            continue
        if isinstance(v, ReportVersion):
            apply(books[v.zone].upsert(v))
            if d.zone_before is not None and d.zone_before != v.zone:
                apply(books[d.zone_before].remove(v.source, v.report_id, v.revision, to=v.zone))
        elif d.zone_before is not None:
            apply(books[d.zone_before].remove(v.source, v.report_id, v.revision))
    top: dict[Ident, Version] = {}
    for v in arrivals:
        held = top.get(v.ident)
        if (
            held is None
            or v.revision > held.revision
            or (v.revision == held.revision and not v.withdrawn and not held.withdrawn)
        ):
            top[v.ident] = v
    expected = {i: v for i, v in top.items() if isinstance(v, ReportVersion)}
    held_books = {id(b): b for b in books.values()}.values()
    assert {r.ident: r for b in held_books for r in b.reports()} == expected
    latest: dict[str, IncidentRecord] = {}
    for i in published:
        if i.incident_id not in latest or i.version > latest[i.incident_id].version:
            latest[i.incident_id] = i
    assert {k: v for k, v in latest.items() if v.status is Status.OPEN} == {
        i.incident_id: i for b in held_books for i in b.incidents()
    }
