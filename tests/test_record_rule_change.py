"""A change of the linking rule between two runs (a new version of the code, other
`CEASEFIRE_LINK_*` settings): the recovery regroups the open incidents and publishes exactly
what changed, so that subscribers of `ceasefire.incidents` end where the book is."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codes import LocationPrecision, TimePrecision
from streams.record.book import IncidentBook
from streams.record.changelog import RULE_KEY, Entry, decode_rule, encode_rule
from streams.record.incident import IncidentRecord, Status, incident_id
from streams.record.linking import GROUPING, LinkRule, canonical_groups
from streams.record.record import Record
from streams.tallies.state import IncidentTally
from tests.published import cells
from tests.record_helpers import MIN, rv
from tests.test_record_properties import Scenario, scenarios

WIDE = LinkRule()  # 30 min, 3 km
NARROW = LinkRule(window_seconds=15 * MIN, distance_km=1.5)
WIDER = LinkRule(window_seconds=60 * MIN, distance_km=5.0, category_mismatch=0.0)


def written(rule: LinkRule, *reports_: object) -> tuple[list[Entry], list[IncidentRecord]]:
    """The changelog and the published versions of a book under `rule` (first started, so
    that it wrote its rule, as the zone stage's first recovery does)."""
    book = IncidentBook(rule)
    book.restore([])
    entries = list(book.adopted.entries)
    published = []
    for r in reports_:
        change = book.upsert(r)  # type: ignore[arg-type]
        entries.extend(change.entries)
        published.extend(change.incidents)
    return entries, published


# Two posts 2 km apart at the same minute: one incident at 3 km, two at 1.5 km. A third
# report far away and an hour later is an incident under both rules.
PAIR = (
    rv("op-1", "a", km=0.0),
    rv("op-2", "b", km=2.0),
    rv("op-3", "c", km=20.0, t=60 * MIN),
)


def test_the_rule_is_written_once_and_read_back() -> None:
    entries, _ = written(WIDE, *PAIR)
    assert [e for e in entries if e[0] == RULE_KEY] == [(RULE_KEY, encode_rule(WIDE))]
    assert decode_rule(encode_rule(WIDE)) == WIDE
    odd = LinkRule(
        day_utc_offset_hours=None,
        time_widening={**WIDE.time_widening, TimePrecision.DAY: 7200.0},
        place_widening_km={**WIDE.place_widening_km, LocationPrecision.TOWN: 4.0},
    )
    assert decode_rule(encode_rule(odd)) == odd
    again = IncidentBook(WIDE)
    again.restore(entries)
    assert not again.adopted.incidents and not again.adopted.entries


def test_a_narrower_rule_splits_the_incident_and_publishes_only_that() -> None:
    entries, published = written(WIDE, *PAIR)
    a, b, c = (incident_id(r.ident) for r in PAIR)
    assert {i.incident_id: i.version for i in published} == {a: 2, c: 1}

    book = IncidentBook(NARROW)
    book.restore(entries)
    got = [
        (i.incident_id, i.version, i.status, len(i.fields.reports)) for i in book.adopted.incidents
    ]
    assert got == [(a, 3, Status.OPEN, 1), (b, 1, Status.OPEN, 1)]
    assert book.adopted.entries[-1] == (RULE_KEY, encode_rule(NARROW))
    assert {i.incident_id: i.version for i in book.incidents()} == {a: 3, b: 1, c: 1}

    # Written, the next recovery under the same rule publishes nothing.
    again = IncidentBook(NARROW)
    again.restore(entries + book.adopted.entries)
    assert not again.adopted.incidents and not again.adopted.entries
    assert sorted(again.incidents(), key=lambda i: i.incident_id) == sorted(
        book.incidents(), key=lambda i: i.incident_id
    )


def test_a_wider_rule_merges_them_back_the_id_that_no_longer_heads_says_merged() -> None:
    entries, _ = written(NARROW, *PAIR)
    a, b, _ = (incident_id(r.ident) for r in PAIR)
    book = IncidentBook(WIDE)
    book.restore(entries)
    got = [(i.incident_id, i.version, i.status, i.merged_into) for i in book.adopted.incidents]
    assert got == [(a, 2, Status.OPEN, None), (b, 2, Status.MERGED, a)]


def test_no_rule_written_is_taken_as_the_current_one_and_written() -> None:
    """Changelogs of workers before the rule was kept: nothing tells what grouped them."""
    entries, _ = written(WIDE, *PAIR)
    entries = [e for e in entries if e[0] != RULE_KEY]
    book = IncidentBook(NARROW)
    book.restore(entries)
    assert not book.adopted.incidents
    assert book.adopted.entries == [(RULE_KEY, encode_rule(NARROW))]
    assert len(list(book.incidents())) == 3  # regrouped, as before, without publishing


def test_without_recording_the_rule_nothing_is_written_or_published() -> None:
    """`CEASEFIRE_INTERNAL_FORMAT` below 5: old workers stop at an entry they do not know."""
    entries, _ = written(WIDE, *PAIR)
    book = IncidentBook(NARROW, record_rule=False)
    book.restore(entries)
    assert not book.adopted.incidents and not book.adopted.entries
    assert len(list(book.incidents())) == 3


@pytest.mark.parametrize(
    "raw",
    [
        encode_rule(WIDE).replace(f'"grouping":{GROUPING}'.encode(), b'"grouping":1'),
        encode_rule(WIDE).replace(b'"crowd_limit"', b'"crowd_ceiling"'),
        b"[1, 2]",
        b"not json",
    ],
)
def test_a_rule_this_code_cannot_group_by_is_reported_and_replaced(raw: bytes) -> None:
    entries, _ = written(WIDE, *PAIR)
    entries = [(k, raw if k == RULE_KEY else v) for k, v in entries]
    with pytest.raises(ValueError, match="cannot group by"):
        decode_rule(raw)
    book = IncidentBook(NARROW)
    book.restore(entries)
    assert book.rule_problem is not None and "cannot group by" in book.rule_problem
    assert not book.adopted.incidents
    assert book.adopted.entries == [(RULE_KEY, encode_rule(NARROW))]


def test_a_parameter_an_older_worker_did_not_write_has_its_default() -> None:
    fields = json.loads(encode_rule(NARROW))
    del fields["unmatched_time_of_day"]
    assert decode_rule(json.dumps(fields).encode()) == NARROW


def test_a_rule_written_before_the_chain_limit_grouped_chains_whole() -> None:
    """Workers before 2026-12 wrote no `chain_limit`: their rule reads as no limit (its
    default, 100, would not be how they grouped), so a recovery under a limit publishes
    the chains it splits."""
    fields = json.loads(encode_rule(LinkRule(chain_limit=None)))
    del fields["chain_limit"], fields["chain_block_seconds"]
    older = json.dumps(fields).encode()
    assert decode_rule(older) == LinkRule(chain_limit=None)
    # five posts within 20 minutes around a block boundary (rv's times start 800 s into
    # a two-hour block): one incident whole, two as a chain of more than 4
    five = [rv(f"op-{i}", "1", t=6400 + (i - 2) * 5 * MIN) for i in range(5)]
    entries, published = written(LinkRule(chain_limit=None), *five)
    entries = [(k, older if k == RULE_KEY else v) for k, v in entries]
    first, third = incident_id(five[0].ident), incident_id(five[2].ident)
    assert {i.incident_id for i in published} == {first}
    book = IncidentBook(LinkRule(chain_limit=4))
    book.restore(entries)
    got = [(i.incident_id, i.status, len(i.fields.reports)) for i in book.adopted.incidents]
    assert sorted(got) == sorted([(first, Status.OPEN, 2), (third, Status.OPEN, 3)])


#: Chains everywhere: a component of three precise reports is one, cut at the hour.
CHAINS = LinkRule(chain_limit=2, chain_block_seconds=3600)
RULES = st.sampled_from([WIDE, NARROW, WIDER, CHAINS])


@settings(max_examples=150, deadline=None)
@given(scenarios(), RULES, RULES)
def test_subscribers_end_where_the_regrouped_book_is(
    s: Scenario, old: LinkRule, new: LinkRule
) -> None:
    """Whatever the reports and the two rules: the versions published under the old rule
    and then at the recovery under the new one leave a subscriber (the highest version of
    each id) with exactly the new book's open incidents, and its tally with the book's."""
    record = Record(old)
    record.restore([])
    entries = list(record.book.adopted.entries)
    published: list[IncidentRecord] = []
    for v in s.arrivals:
        step = record.apply(v)
        entries.extend(step.entries)
        published.extend(step.incidents)

    again = Record(new)
    again.restore(entries)
    published.extend(again.book.adopted.incidents)
    latest: dict[str, IncidentRecord] = {}
    tally = IncidentTally()
    for i in published:
        held = latest.get(i.incident_id)
        assert held is None or i.version > held.version or i.fields.zone != held.fields.zone
        if held is None or i.version > held.version:
            latest[i.incident_id] = i
        tally.apply(i)
    now_open = {i.incident_id: i for i in again.incidents()}
    assert {k: v for k, v in latest.items() if v.status is Status.OPEN} == now_open
    assert cells(tally) == again.tally()
    # the book is grouped by the new rule, as a fresh one would be
    for zone, linker in again.book.zones.items():
        assert {a: [m.ident for m in g] for a, g in linker.groups().items()} == {
            a: [m.ident for m in g] for a, g in canonical_groups(linker.live.values(), new).items()
        }, zone
    # a recovery from what it wrote publishes nothing more
    third = Record(new)
    third.restore(entries + again.book.adopted.entries)
    assert not third.book.adopted.incidents and not third.book.adopted.entries


def test_a_day_closed_under_the_old_rule_is_regrouped_when_a_change_reopens_it() -> None:
    """Closed days keep their grouping until a change reopens them; then they are grouped
    by the rule of the day, and the difference is published with the change."""
    day_later = 1_700_000_000.0 + 10 * 86_400
    book = IncidentBook(WIDE)
    book.restore([])
    entries = list(book.adopted.entries)
    published: list[IncidentRecord] = []
    for r in PAIR[:2]:
        change = book.upsert(r)
        entries.extend(change.entries)
        published.extend(change.incidents)
    change = book.sweep(before=day_later)
    entries.extend(change.entries + change.later)
    assert book.archive.reports == 2 and len(book) == 0

    narrow = IncidentBook(NARROW)
    narrow.restore(entries)
    assert not narrow.adopted.incidents  # closed: nothing regrouped at the recovery
    entries.extend(narrow.adopted.entries)
    late = rv("op-3", "c", km=20.0)  # an unrelated report of that day reopens it
    change = narrow.upsert(late)
    entries.extend(change.entries + change.later)
    published.extend(change.incidents)
    a, b, c = (incident_id(r.ident) for r in (*PAIR[:2], late))
    latest: dict[str, IncidentRecord] = {}
    for i in published:
        if i.incident_id not in latest or i.version > latest[i.incident_id].version:
            latest[i.incident_id] = i
    assert {k: len(v.fields.reports) for k, v in latest.items()} == {a: 1, b: 1, c: 1}
    assert {i.incident_id: i for i in narrow.incidents()} == latest

    # and the next recovery finds them so: nothing more to publish
    again = IncidentBook(NARROW)
    again.restore(entries)
    assert not again.adopted.incidents
    assert {i.incident_id: i for i in again.incidents()} == latest
