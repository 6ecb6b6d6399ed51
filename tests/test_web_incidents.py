"""The incident list's pure core (`streams/web/incidents.py`): parameters, order, cursor
pages across workers, CSV. No worker, no broker."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codes import Category, Severity, Verification
from streams.classify.zones import ZoneCatalogue
from streams.record.incident import IncidentFields, IncidentRecord, Status
from streams.tallies.windows import QueryError
from streams.web.incidents import (
    ATTRIBUTIONS,
    CSV_COLUMNS,
    MAX_LIMIT,
    IncidentQuery,
    Page,
    decode_cursor,
    encode_cursor,
    facets_of_document,
    facets_of_record,
    merge,
    parse_query,
    rank,
    read_page,
    select,
    spreadsheet_safe,
    to_csv,
    wants_csv,
)

pytestmark = pytest.mark.timeout(120)

ZONES = ZoneCatalogue.load().ids
T0 = datetime(2021, 5, 1, tzinfo=UTC).timestamp()


def record(
    n: int,
    *,
    occurred: float = T0,
    zone: str = "shusha",
    attribution: str = "az",
    category: Category = Category.SMALL_ARMS_FIRE,
    verification: Verification = Verification.OBSERVED,
    claims: tuple[tuple[str, str], ...] = (),
    reports: tuple[tuple[str, str, int], ...] | None = None,
    version: int = 1,
) -> IncidentRecord:
    fields = IncidentFields(
        occurred=occurred,
        zone=zone,
        category=category,
        severity=Severity.MEDIUM,
        verification=verification,
        attribution=attribution,
        claims=claims,
        killed=n % 3,
        wounded=n % 2,
        reports=reports if reports is not None else (("pkf-op-1", f"r-{n}", 0),),
    )
    iid = f"00000000-0000-5000-8000-{n:012x}"
    return IncidentRecord(iid, version, Status.OPEN, None, fields)


def query(text: str = "", **extra: Any) -> IncidentQuery:
    from urllib.parse import parse_qsl

    return parse_query(parse_qsl(text, keep_blank_values=True), zones=ZONES, **extra)


# -- parameters -------------------------------------------------------------------------------
def test_defaults_match_everything_one_hundred_at_a_time() -> None:
    q = query()
    assert q == IncidentQuery()
    assert q.limit == 100 and q.after is None
    # empty values are no filter (SPEC.md's `?zone=&attribution=...`)
    assert query("zone=&attribution=&category=&verification=&from=&to=&limit=&cursor=") == q


def test_filters_take_lists_and_repeats_and_times_with_any_offset() -> None:
    q = query(
        "zone=shusha,loc-east&zone=outside&attribution=contested&category=drone_strike"
        "&verification=observed,alleged&from=2021-05-01T04:00:00%2B04:00&to=2021-05-02t00:00:00z"
        "&limit=7"
    )
    assert q.zones == {"shusha", "loc-east", "outside"}
    assert q.attributions == {"contested"}
    assert q.categories == {"drone_strike"}
    assert q.verifications == {"observed", "alleged"}
    assert q.start == int(T0) * 1_000_000
    assert q.end == (int(T0) + 86_400) * 1_000_000
    assert q.limit == 7
    # a date is its UTC midnight, as in the series and `export`
    assert query("from=2021-05-01&to=2021-05-02") == query(
        "from=2021-05-01T00:00:00Z&to=2021-05-02T00:00:00Z"
    )
    # nanoseconds are cut to microseconds, never refused
    assert query("from=2021-05-01T00:00:00.123456789Z").start == int(T0) * 1_000_000 + 123_456


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("zone=shushaa", "unknown zone 'shushaa'"),
        ("attribution=azerbaijan", "unknown attribution"),
        ("category=shelling", "unknown category"),
        ("verification=confirmed", "unknown verification"),
        ("zones=shusha", "unknown parameter 'zones'"),
        ("from=2021-05-01T00:00:00", "with an offset"),
        ("from=2021-05-01T00:00", "with an offset"),
        ("from=2021-02-30", "is not a date"),
        ("from=yesterday", "RFC 3339"),
        ("from=1619827200", "RFC 3339"),
        ("to=2021-02-30T00:00:00Z", "not a valid time"),
        ("to=0001-01-01T00:00:00%2B01:00", "years 0001 to 9999"),
        ("from=2021-05-02T00:00:00Z&to=2021-05-01T00:00:00Z", "is after to"),
        ("from=2021-05-01T00:00:00Z&from=2021-05-02T00:00:00Z", "given 2 times"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=1.5", "limit"),
        ("limit=ten", "limit"),
        ("cursor=abc", "cursor"),
        ("cursor=%FF", "cursor"),
        ("cursor=" + "A" * 500, "cursor"),
    ],
)
def test_bad_parameters_are_query_errors_that_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(QueryError, match=words):
        query(text)


def test_peer_parameters_are_allowed_only_when_the_caller_reads_them() -> None:
    with pytest.raises(QueryError, match="unknown parameter 'scope'"):
        query("scope=local")
    assert query("scope=local&partitions=0", extra=("scope", "partitions")) == IncidentQuery()


@pytest.mark.parametrize(
    "value",
    [
        encode_cursor((1, "x"))[:-1],  # cut
        encode_cursor((1, "x")) + "=",  # padded: not the spelling we give
        "W10",  # []
        "WzEsMl0",  # [1,2]
        "W3RydWUsIngiXQ",  # [true,"x"]
        "WzEuNSwieCJd",  # [1.5,"x"]
        "eyJhIjoxfQ",  # {"a":1}
        encode_cursor((10**20, "x")),  # beyond year 9999
        encode_cursor((1, "x" * 200)),
        "bm90IGpzb24",  # not json
    ],
)
def test_a_cursor_we_did_not_give_is_refused(value: str) -> None:
    with pytest.raises(QueryError, match="cursor"):
        decode_cursor(value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_any_cursor_text_is_a_key_or_a_query_error(text: str) -> None:
    try:
        key = decode_cursor(text)
    except QueryError:
        return
    assert encode_cursor(key) == text


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=-62135596800 * 10**6, max_value=253402300799 * 10**6),
    st.text(max_size=128),
)
def test_cursors_round_trip(micros: int, iid: str) -> None:
    assert decode_cursor(encode_cursor((micros, iid))) == (micros, iid)


def queries() -> st.SearchStrategy[IncidentQuery]:
    codes = st.frozensets
    return st.builds(
        IncidentQuery,
        zones=codes(st.sampled_from(ZONES), max_size=3),
        attributions=codes(st.sampled_from(ATTRIBUTIONS), max_size=3),
        categories=codes(st.sampled_from([c.value for c in Category]), max_size=3),
        verifications=codes(st.sampled_from([v.value for v in Verification]), max_size=2),
        start=st.none() | st.integers(-(10**15), 10**15),
        end=st.none() | st.integers(10**15, 10**16),
        limit=st.integers(1, MAX_LIMIT),
        after=st.none() | st.tuples(st.integers(-(10**15), 10**16), st.text(max_size=40)),
    )


@settings(max_examples=200, deadline=None)
@given(queries())
def test_the_parameters_a_peer_gets_parse_back_to_the_same_query(q: IncidentQuery) -> None:
    assert parse_query(q.params().items(), zones=ZONES) == q


@pytest.mark.parametrize(
    ("format_", "accept", "csv_"),
    [
        (None, None, False),
        (None, "text/csv", True),
        (None, "text/csv; charset=utf-8", True),
        (None, "*/*", False),
        (None, "text/*", True),
        (None, "application/json, text/csv;q=0.5", False),
        (None, "application/json;q=0.5, text/csv", True),
        (None, "text/csv, application/json", False),  # a tie: JSON
        (None, "text/html, */*;q=0.8", False),
        (None, "text/csv;q=0", False),
        (None, "text/csv, */*", True),  # named, against a wildcard of the same q
        (None, "text/csv, */*;q=0.5", True),
        (None, "text/csv;q=0.5, */*", False),  # ranked lower
        (None, "text/*, application/*", False),  # as specific: a tie
        (None, "text/csv;q=0, */*", False),
        (None, "application/json, */*", False),
        ("csv", "application/json", True),
        ("json", "text/csv", False),
        ("", "text/csv", True),
    ],
)
def test_csv_is_chosen_by_format_or_accept(
    format_: str | None, accept: str | None, csv_: bool
) -> None:
    assert wants_csv(format_, accept) is csv_


def test_an_unknown_format_is_a_query_error() -> None:
    with pytest.raises(QueryError, match="use json or csv"):
        wants_csv("xml", None)


# -- facets and order ---------------------------------------------------------------------
@settings(max_examples=2000, deadline=None)
@given(
    st.floats(min_value=-6e10, max_value=2.5e11, allow_nan=False)
    | st.integers(-(6 * 10**16), 25 * 10**16).map(lambda n: n / 1e6)  # whole microseconds
    | st.integers(-(6 * 10**17), 25 * 10**17).map(lambda n: n / 1e7 + 5e-7)  # halves
)
def test_a_record_and_its_document_sort_and_filter_alike(occurred: float) -> None:
    """The owner ranks records, the asker documents: the same key, to the microsecond."""
    r = record(1, occurred=occurred)
    assert facets_of_record(r) == facets_of_document(r.document())


def test_newest_first_then_by_id() -> None:
    records = [record(3, occurred=T0), record(1, occurred=T0), record(2, occurred=T0 + 60)]
    page = select(IncidentQuery(), ((facets_of_record(r), r) for r in records))
    assert [r.incident_id[-1] for r in page.items] == ["2", "1", "3"]
    assert not page.more


def test_from_is_inclusive_and_to_exclusive() -> None:
    records = [record(i, occurred=T0 + i * 3600) for i in range(5)]
    q = query("from=2021-05-01T01:00:00Z&to=2021-05-01T03:00:00Z")
    page = select(q, ((facets_of_record(r), r) for r in records))
    assert [r.incident_id[-1] for r in page.items] == ["2", "1"]


def test_filters_match_any_of_their_values_and_all_filters_together() -> None:
    records = [
        record(1, zone="shusha", attribution="az"),
        record(2, zone="loc-east", attribution="contested"),
        record(3, zone="loc-east", attribution="am", verification=Verification.ALLEGED),
        record(4, zone="outside", attribution="am"),
    ]
    items = [(facets_of_record(r), r) for r in records]
    q = query("zone=shusha,loc-east&attribution=am,contested")
    assert {r.incident_id[-1] for r in select(q, items).items} == {"2", "3"}
    q = query("zone=loc-east&verification=alleged")
    assert {r.incident_id[-1] for r in select(q, items).items} == {"3"}


# -- paging across workers (the property) --------------------------------------------------
incident_sets = st.lists(
    st.tuples(
        st.integers(0, 12),  # occurred, in hours: few values, so many ties
        st.sampled_from(["shusha", "loc-east", "outside"]),
        st.sampled_from(["az", "am", "contested", "unknown"]),
        st.sampled_from([Category.SMALL_ARMS_FIRE, Category.DRONE_STRIKE]),
        st.integers(0, 4),  # the worker holding it
    ),
    max_size=40,
)


@settings(max_examples=400, deadline=None)
@given(
    incident_sets,
    st.integers(1, 7),
    st.frozensets(st.sampled_from(["shusha", "loc-east", "outside"])),
    st.frozensets(st.sampled_from(["az", "am", "contested", "unknown"])),
    st.none() | st.integers(0, 12),
    st.integers(1, 5),
)
def test_paging_yields_every_match_once_in_order_however_workers_split_them(
    specs: list[tuple[int, str, str, Category, int]],
    limit: int,
    zones: frozenset[str],
    attributions: frozenset[str],
    start_hour: int | None,
    workers: int,
) -> None:
    records = [
        (record(n, occurred=T0 + h * 3600, zone=z, attribution=a, category=c), w % workers)
        for n, (h, z, a, c, w) in enumerate(specs)
    ]
    q = IncidentQuery(
        zones=zones,
        attributions=attributions,
        start=None if start_hour is None else int(T0 + start_hour * 3600) * 1_000_000,
        limit=limit,
    )
    expected = sorted(
        (r for r, _ in records if q.wants(facets_of_record(r))),
        key=lambda r: rank(facets_of_record(r).key),
    )
    seen: list[str] = []
    pages = 0
    while True:
        # each worker answers from what it holds, through JSON as a peer would
        answers = [
            select(q, ((facets_of_record(r), r) for r, held in records if held == w))
            for w in range(workers)
        ]
        sent = [
            read_page(
                json.loads(
                    json.dumps({"incidents": [r.document() for r in a.items], "more": a.more})
                )
            )
            for a in answers
        ]
        listing = merge(q, sent)
        pages += 1
        assert len(listing.incidents) == limit or listing.next_cursor is None
        seen.extend(d["incident_id"] for d in listing.incidents)
        if listing.next_cursor is None:
            break
        q = replace(q, after=decode_cursor(listing.next_cursor))
    assert seen == [r.incident_id for r in expected]
    # no empty last page: next_cursor is null exactly when nothing is left
    assert pages == max(1, -(-len(expected) // limit))


def test_an_id_answered_by_two_workers_is_kept_once_at_its_higher_version() -> None:
    old, new = record(1, version=3), record(1, version=4, zone="loc-east")
    listing = merge(IncidentQuery(), [Page([old.document()]), Page([new.document()])])
    assert [(d["version"], d["zone"]) for d in listing.incidents] == [(4, "loc-east")]


@pytest.mark.parametrize(
    "body",
    [[], {"incidents": [], "more": "no"}, {"incidents": [1], "more": False}, {"more": False}],
)
def test_a_page_not_shaped_as_one_is_refused(body: Any) -> None:
    with pytest.raises((ValueError, LookupError)):
        read_page(body)


def test_a_document_not_shaped_as_an_incident_cannot_be_merged() -> None:
    doc = record(1).document()
    for broken in ({**doc, "occurred_at": "2021-05-01T00:00:00"}, {**doc, "zone": 5}, {"x": 1}):
        with pytest.raises((ValueError, LookupError, TypeError)):
            merge(IncidentQuery(), [Page([broken])])


# -- CSV --------------------------------------------------------------------------------------
def test_csv_has_one_row_per_incident_and_reads_back_exactly() -> None:
    awkward = 'op, "north"\nline two'
    records = [
        record(
            1,
            claims=(("am", "az"), ("az", "contested")),
            reports=(("pkf-op-1", "r,1", 2), (awkward, 'é;"x"', 0), ("=cmd|' /C calc'!A0", "r", 1)),
            attribution="contested",
        ),
        record(2, occurred=T0 - 86_400),
    ]
    docs = [r.document() for r in records]
    text = to_csv(docs)
    assert text.endswith("\r\n") and "\r\n" in text.split(awkward[:3])[0]
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 3
    first = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    assert first["incident_id"] == docs[0]["incident_id"]
    assert first["occurred_at"] == docs[0]["occurred_at"]
    assert first["claims"] == "am:az; az:contested"
    assert first["report_count"] == "3"
    assert json.loads(first["reports"]) == [
        [r["source"], r["report_id"], r["revision"]] for r in docs[0]["reports"]
    ]
    assert first["sources"].startswith("pkf-op-1; op,")
    second = dict(zip(CSV_COLUMNS, rows[2], strict=True))
    assert (second["killed"], second["wounded"], second["claims"]) == ("2", "0", "")


def test_a_source_that_starts_a_formula_is_neutralised_for_spreadsheets() -> None:
    doc = record(1, reports=(("=HYPERLINK(1)", "r", 0),)).document()
    row = dict(
        zip(
            CSV_COLUMNS,
            next(iter(csv.reader(io.StringIO(to_csv([doc], header=False))))),
            strict=True,
        )
    )
    assert row["sources"] == "'=HYPERLINK(1)"
    assert json.loads(row["reports"]) == [["=HYPERLINK(1)", "r", 0]]  # the exact value


@pytest.mark.parametrize(
    "text",
    [
        "=1+1",
        "+1",
        "-1",
        "@SUM(1)",
        "\t=1",
        "\r=1",
        " =1",
        "\n=1",
        "\u3000=1",
        "\uff1d1+1",
        "\uff0b1",
    ],
)
def test_every_start_a_spreadsheet_reads_as_a_formula_is_prefixed(text: str) -> None:
    """A review: a cell starting with a blank or a line break before `=`, or with a
    full-width equals sign (U+FF1D), was not prefixed."""
    assert spreadsheet_safe(text) == "'" + text


@pytest.mark.parametrize(
    "text",
    [
        "\xa0=1+1",  # no-break space
        "\x0b=1",  # vertical tab
        "\x0c=1",  # form feed
        "\u200b=1",  # zero-width space (a format character, Cf)
        "\ufeff+1",  # byte order mark
        "\u200e\u2028@SUM(1)",  # a direction mark, a line separator
        "\u2003\u00ad-1",  # em space, soft hyphen
        "\xa0\uff1d1",
    ],
)
def test_a_formula_behind_any_white_space_or_invisible_character_is_prefixed(text: str) -> None:
    """A review: `'\\xa0=1+1'`, `'\\x0b=1'`, `'\\x0c=1'` and `'\\u200b=1'` were written as
    they are, and a spreadsheet that trims or skips such characters runs the formula."""
    assert spreadsheet_safe(text) == "'" + text


@pytest.mark.parametrize(
    "text", ["", "pkf-op-1", "Armenian forces", "1-2", " a=b", "\xa0", "\u200bArmenia"]
)
def test_text_no_spreadsheet_reads_as_a_formula_is_kept(text: str) -> None:
    assert spreadsheet_safe(text) == text


def test_an_empty_csv_is_its_header() -> None:
    assert to_csv([]) == ",".join(CSV_COLUMNS) + "\r\n"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 96), st.sampled_from(["shusha", "loc-east"]), st.booleans()),
        max_size=40,
    ),
    st.integers(1, 6),
    st.frozensets(st.sampled_from(["shusha", "loc-east"])),
    st.none() | st.integers(0, 96),
    st.none() | st.integers(0, 96),
    st.none() | st.integers(0, 39),
)
def test_closed_days_read_newest_first_give_the_page_all_items_give(
    specs: list[tuple[int, str, bool]],
    limit: int,
    zones: frozenset[str],
    start_hour: int | None,
    end_hour: int | None,
    after: int | None,
) -> None:
    """The incidents of closed days, read a day at a time only while one could make the
    page, page as if every incident were held open; and no day is read that could hold
    none of the query's items (days after `to` or newer than the cursor were all read)."""
    records = [
        (record(n, occurred=T0 + h * 3600 + n, zone=z), closed)
        for n, (h, z, closed) in enumerate(specs)
    ]
    items = [(facets_of_record(r), r) for r, _ in records]
    cursor = None if after is None or after >= len(items) else items[after][0].key
    q = IncidentQuery(
        zones=zones,
        start=None if start_hour is None else int(T0 + start_hour * 3600) * 1_000_000,
        end=None if end_hour is None else int(T0 + end_hour * 3600) * 1_000_000,
        limit=limit,
        after=cursor,
    )
    days: dict[tuple[int, str], list[tuple[Any, IncidentRecord]]] = {}
    for (f, r), (_, closed) in zip(items, records, strict=True):
        if closed:
            days.setdefault((int(r.fields.occurred // 86_400), f.zone), []).append((f, r))
    newest_first = sorted(days, key=lambda d: d[0], reverse=True)
    read: list[tuple[int, str]] = []

    def reads(day: int, zone: str) -> list[tuple[Any, IncidentRecord]]:
        read.append((day, zone))
        return days[(day, zone)]

    got = select(
        q,
        (it for it, (_, closed) in zip(items, records, strict=True) if not closed),
        (
            (day * 86_400_000_000, (day + 1) * 86_400_000_000, zone, partial(reads, day, zone))
            for day, zone in newest_first
        ),
    )
    assert got == select(q, items)
    for day, _ in read:  # each day read could hold an incident the query takes
        lo, hi = day * 86_400_000_000, (day + 1) * 86_400_000_000
        assert q.start is None or hi > q.start
        assert q.end is None or lo < q.end
        assert q.after is None or lo <= q.after[0]
