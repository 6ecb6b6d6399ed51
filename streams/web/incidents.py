"""Listing incidents (`GET /api/v1/incidents`): filters, newest-first order, cursor pages,
JSON and CSV; and one incident with its reports (`GET /api/v1/incidents/{incident_id}`).

Pure, over plain data: query parameters in, incident documents (the SPEC.md shape of
`IncidentRecord.document()`) out. The worker-side adapter (`streams/web/fanout.py`) runs
`select` over the open incidents of the partitions it holds; the worker that was asked
merges the owners' pages with `merge`, which is `select` again over their union.

Order: newest first by `occurred_at`, ties by `incident_id` (ascending). A position in that
order is a `Key` (`occurred_at` in whole microseconds since the epoch, as the document
writes it, and the id), so every worker computes the same key for an incident. A cursor is
the key of the last item of a page, urlsafe base64 of `[microseconds, incident_id]`: a page
holds the incidents strictly after it, so paging never repeats an incident and never skips
one that stayed open with the same key. Incidents that open while a client pages, and whose
key falls before its cursor, are not shown to it; an incident renamed by a merge gets a new
id (and maybe a new key) and can then show up again under the new id.
"""

from __future__ import annotations

import base64
import binascii
import csv
import heapq
import io
import json
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from schemas.codes import Category, Party, Verification
from streams.record.incident import CONTESTED, IncidentRecord, verification_of
from streams.record.model import Ident, ReportVersion
from streams.tallies.windows import QueryError, to_micros
from streams.web.params import check_names, parse_bound

T = TypeVar("T")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: What a client may pass to the list endpoint.
PARAMETERS = (
    "zone",
    "attribution",
    "category",
    "verification",
    "from",
    "to",
    "limit",
    "cursor",
    "format",
)
#: Filters that take one code or a comma-separated list of codes (any of them matches).
LIST_FILTERS = ("zone", "attribution", "category", "verification")
ATTRIBUTIONS: tuple[str, ...] = (*(p.value for p in Party), CONTESTED)
CATEGORIES: tuple[str, ...] = tuple(c.value for c in Category)
VERIFICATIONS: tuple[str, ...] = tuple(v.value for v in Verification)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
#: Microseconds of years 0001 and 9999, what a datetime (and so `occurred_at`) can hold.
MIN_MICROS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _MICRO
MAX_MICROS = (datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC) - _EPOCH) // _MICRO
#: Longest cursor read; ours are about 80 characters.
MAX_CURSOR = 4096  # an id of 128 astral characters, escaped, fits
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

#: (occurred_at in microseconds since the epoch, incident_id): a position in the order.
Key = tuple[int, str]


def rank(key: Key) -> tuple[int, str]:
    """Sort value of a key: newest first, then by id."""
    return (-key[0], key[1])


def micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICRO


@dataclass(frozen=True, slots=True)
class Facets:
    """What the filters and the order read of an incident."""

    key: Key
    zone: str
    attribution: str
    category: str
    verification: str


def facets_of_record(record: IncidentRecord) -> Facets:
    """An incident version's facets, equal to those of its document (the same microsecond:
    a property test holds the two to it)."""
    f = record.fields
    occurred = to_micros(f.occurred)
    return Facets(
        (occurred, record.incident_id),
        f.zone,
        f.attribution,
        f.category.value,
        f.verification.value,
    )


def facets_of_document(doc: Mapping[str, Any]) -> Facets:
    """An incident document's facets; ValueError, LookupError or TypeError when it is not
    shaped as one (a peer's answer is read with this)."""
    occurred = datetime.fromisoformat(doc["occurred_at"])
    if occurred.tzinfo is None:
        raise ValueError(f"occurred_at {doc['occurred_at']!r} has no offset")
    fields = tuple(
        doc[k] for k in ("incident_id", "zone", "attribution", "category", "verification")
    )
    if not all(isinstance(x, str) for x in fields):
        raise TypeError(f"not an incident document: {fields!r}")
    iid, zone, attribution, category, verification = fields
    return Facets((micros(occurred), iid), zone, attribution, category, verification)


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    """A parsed list query. An empty filter set matches anything; `start` is inclusive and
    `end` exclusive (microseconds), so consecutive ranges never share an incident."""

    zones: frozenset[str] = frozenset()
    attributions: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    verifications: frozenset[str] = frozenset()
    start: int | None = None
    end: int | None = None
    limit: int = DEFAULT_LIMIT
    after: Key | None = None

    def wants(self, f: Facets) -> bool:
        return self.wants_fields(f.key[0], f.zone, f.attribution, f.category, f.verification) and (
            self.after is None or rank(f.key) > rank(self.after)
        )

    def wants_fields(
        self, occurred: int, zone: str, attribution: str, category: str, verification: str
    ) -> bool:
        """`wants` of an incident's facets but its id, read before its id is worked out
        (`fanout.local_incidents`): `wants` is this and, with a cursor, the key's order
        after it (`occurred` below the cursor's, or equal to it and the id after)."""
        return (
            (not self.zones or zone in self.zones)
            and (not self.attributions or attribution in self.attributions)
            and (not self.categories or category in self.categories)
            and (not self.verifications or verification in self.verifications)
            and (self.start is None or occurred >= self.start)
            and (self.end is None or occurred < self.end)
            and (self.after is None or occurred <= self.after[0])
        )

    def params(self) -> dict[str, str]:
        """The query as parameters a peer parses back to the same query."""
        out: dict[str, str] = {"limit": str(self.limit)}
        for name, values in (
            ("zone", self.zones),
            ("attribution", self.attributions),
            ("category", self.categories),
            ("verification", self.verifications),
        ):
            if values:
                out[name] = ",".join(sorted(values))
        if self.start is not None:
            out["from"] = format_micros(self.start)
        if self.end is not None:
            out["to"] = format_micros(self.end)
        if self.after is not None:
            out["cursor"] = encode_cursor(self.after)
        return out


def format_micros(value: int) -> str:
    return (_EPOCH + value * _MICRO).isoformat()


# -- parameters (each problem raises QueryError, answered 400) ------------------------------
def parse_query(
    pairs: Iterable[tuple[str, str]], *, zones: Collection[str], extra: Collection[str] = ()
) -> IncidentQuery:
    """The list query from its parameters, in the order sent (a filter may be repeated: any
    of its values matches). `zones` are the zone codes a `zone` filter may name; `extra`
    are other parameter names the caller reads itself (`scope`, `partitions`)."""
    pairs = list(pairs)
    check_names(pairs, PARAMETERS, repeatable=LIST_FILTERS, internal=extra)
    seen: dict[str, list[str]] = {}
    for name, value in pairs:
        seen.setdefault(name, []).append(value)
    allowed: dict[str, Collection[str]] = {
        "zone": zones,
        "attribution": ATTRIBUTIONS,
        "category": CATEGORIES,
        "verification": VERIFICATIONS,
    }
    codes = {name: _codes(name, seen.get(name, []), allowed[name]) for name in LIST_FILTERS}
    start = _time("from", _one(seen, "from"))
    end = _time("to", _one(seen, "to"))
    if start is not None and end is not None and start > end:
        raise QueryError(
            f"from {_one(seen, 'from')!r} is after to {_one(seen, 'to')!r}; "
            "the range is from (inclusive) to (exclusive)"
        )
    cursor = _one(seen, "cursor")
    return IncidentQuery(
        zones=codes["zone"],
        attributions=codes["attribution"],
        categories=codes["category"],
        verifications=codes["verification"],
        start=start,
        end=end,
        limit=parse_limit(_one(seen, "limit")),
        after=decode_cursor(cursor) if cursor else None,
    )


def _one(seen: Mapping[str, list[str]], name: str) -> str | None:
    values = seen.get(name)
    return values[0] if values else None


def _codes(name: str, values: list[str], allowed: Collection[str]) -> frozenset[str]:
    codes = {c.strip() for v in values for c in v.split(",")} - {""}
    unknown = sorted(codes - set(allowed))
    if unknown:
        raise QueryError(
            f"unknown {name} {', '.join(map(repr, unknown))[:200]}; use one or more "
            f"(comma-separated) of {', '.join(allowed)}"
        )
    return frozenset(codes)


def _time(name: str, value: str | None) -> int | None:
    """An RFC 3339 time with an offset, or a date (its UTC midnight), as microseconds since
    the epoch."""
    if value is None or value == "":
        return None
    return micros(parse_bound(name, value))  # it refuses what is outside years 0001-9999 UTC


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    if not re.fullmatch(r"[0-9]{1,7}", value) or not 1 <= int(value) <= MAX_LIMIT:
        raise QueryError(f"limit {value[:20]!r} is not a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def encode_cursor(key: Key) -> str:
    raw = json.dumps([key[0], key[1]], separators=(",", ":"), ensure_ascii=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> Key:
    """A cursor this API gave back to its key; QueryError for anything else."""
    bad = QueryError(
        f"cursor {cursor[:40]!r} is not one this API gave; pass next_cursor of the previous "
        "page as it is, or leave cursor out for the first page"
    )
    if len(cursor) > MAX_CURSOR or not re.fullmatch(r"[A-Za-z0-9_-]+", cursor):
        raise bad
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        value = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):  # "[[[[..." within MAX_CURSOR
        raise bad from None
    if not (
        isinstance(value, list)
        and len(value) == 2
        and type(value[0]) is int
        and MIN_MICROS <= value[0] <= MAX_MICROS
        and isinstance(value[1], str)
        and len(value[1]) <= 128
    ):
        raise bad
    if encode_cursor((value[0], value[1])) != cursor:  # one spelling per key
        raise bad
    return (value[0], value[1])


def wants_csv(format_: str | None, accept: str | None) -> bool:
    """`format=csv|json` decides; without it, CSV when the Accept header ranks `text/csv`
    above `application/json`: by q, then by how specifically it names it (`text/csv, */*`
    asks for CSV, as a client that lists it first means). JSON on a tie or with no
    header."""
    if format_ is not None and format_ != "":
        if format_ not in ("json", "csv"):
            raise QueryError(f"unknown format {format_[:40]!r}; use json or csv")
        return format_ == "csv"
    if not accept:
        return False
    csv_q, csv_named = _quality(accept, "text", "csv")
    json_q, json_named = _quality(accept, "application", "json")
    return csv_q > 0 and (csv_q, csv_named) > (json_q, json_named)


def _quality(accept: str, kind: str, sub: str) -> tuple[float, int]:
    """The q of the most specific media range of `accept` that covers kind/sub, and how
    specific it is (2 kind/sub, 1 kind/*, 0 */*, -1 none)."""
    best: tuple[int, float] = (-1, 0.0)
    for item in accept.split(","):
        mime, *params = (p.strip() for p in item.split(";"))
        k, _, s = mime.lower().partition("/")
        if (k, s) == (kind, sub):
            specificity = 2
        elif (k, s) == (kind, "*"):
            specificity = 1
        elif (k, s) == ("*", "*"):
            specificity = 0
        else:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if specificity > best[0]:
            best = (specificity, q)
    return best[1], best[0]


# -- selecting and merging -------------------------------------------------------------------
@dataclass(slots=True)
class Page(Generic[T]):
    """Up to `limit` items after the cursor, in order; `more` when there were others."""

    items: list[T] = field(default_factory=list)
    more: bool = False


def select(
    query: IncidentQuery,
    items: Iterable[tuple[Facets, T]],
    days: Iterable[tuple[int, int, str, Callable[[], Iterable[tuple[Facets, T]]]]] = (),
) -> Page[T]:
    """The first `query.limit` matching items after the cursor, newest first.

    `days`: more items by day, newest day first, each as (the start and the end of the
    day in microseconds, its zone, what reads its items): closed days, read only when one
    of their items could make the page. (Reading every day newer than `to` or the cursor
    made a request of one page of old history, or each page of an export, unpack all
    the history after it.)"""
    want = query.limit + 1

    def best_of(its: Iterable[tuple[Facets, T]]) -> list[tuple[Facets, T]]:
        return heapq.nsmallest(
            want, (it for it in its if query.wants(it[0])), key=lambda it: rank(it[0].key)
        )

    best = best_of(items)
    for start, end, zone, read in days:
        if len(best) >= want and end <= best[-1][0].key[0]:
            break  # this day and every older one are past the page
        if (
            (query.zones and zone not in query.zones)
            or (query.start is not None and end <= query.start)
            or (query.end is not None and start >= query.end)
            or (query.after is not None and start > query.after[0])  # all before the cursor
        ):
            continue
        best = best_of([*best, *read()])
    return Page([t for _, t in best[: query.limit]], len(best) > query.limit)


@dataclass(frozen=True, slots=True)
class Listing:
    """The answer to a list query: a page, and the cursor of the next one (None: no more)."""

    incidents: list[dict[str, Any]]
    next_cursor: str | None

    def document(self) -> dict[str, Any]:
        return {"incidents": self.incidents, "next_cursor": self.next_cursor}


def merge(query: IncidentQuery, pages: Iterable[Page[dict[str, Any]]]) -> Listing:
    """One page from the pages of the owners of disjoint sets of partitions, each the first
    `limit` of its own incidents after the cursor: the first `limit` of their union. An id
    answered twice (a report moving between zones is for a moment in both partitions) is
    kept once, at its higher version. Raises ValueError, LookupError or TypeError when a
    page does not hold incident documents."""
    pages = list(pages)
    by_id: dict[str, tuple[Facets, dict[str, Any]]] = {}
    for page in pages:
        for doc in page.items:
            f = facets_of_document(doc)
            held = by_id.get(f.key[1])
            if held is None or held[1]["version"] < doc["version"]:
                by_id[f.key[1]] = (f, doc)
    page = select(query, by_id.values())
    more = page.more or any(p.more for p in pages)
    last = facets_of_document(page.items[-1]).key if page.items else None
    return Listing(page.items, encode_cursor(last) if more and last is not None else None)


def read_page(body: Any) -> Page[dict[str, Any]]:
    """A peer's `scope=local` answer, checked for shape (ValueError otherwise)."""
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    items, more = body["incidents"], body["more"]
    if not isinstance(items, list) or not all(isinstance(d, dict) for d in items):
        raise ValueError("incidents is not a list of objects")
    if not isinstance(more, bool):
        raise ValueError("more is not a boolean")
    return Page(items, more)


# -- one incident -----------------------------------------------------------------------
def is_incident_id(value: str) -> bool:
    """Incident ids are lowercase UUIDs (uuid5 of the first report's identity)."""
    return _UUID.fullmatch(value) is not None


def report_details(r: ReportVersion) -> dict[str, Any]:
    """A current report of an incident, as the detail endpoint lists it."""
    raw = r.names_raw or (None, None, None)
    return {
        "source": r.source,
        "report_id": r.report_id,
        "revision": r.revision,
        "source_type": r.source_type.value,
        "occurred_at": datetime.fromtimestamp(r.occurred, UTC).isoformat(),
        "time_precision": r.time_precision.value,
        "lat": r.lat,
        "lon": r.lon,
        "location_precision": r.location_precision.value,
        "category": r.category.value,
        "perpetrator": r.perpetrator,
        "claimant": r.claimant,
        "target": r.target,
        "place": r.place,
        # the names as given, when they matched no party (SPEC.md: kept verbatim)
        "perpetrator_raw": raw[0],
        "target_raw": raw[1],
        "claimant_raw": raw[2],
        "killed": r.killed,
        "wounded": r.wounded,
        "verification": verification_of(r).value,
    }


def incident_details(
    record: IncidentRecord, reports: Mapping[Ident, ReportVersion | None]
) -> dict[str, Any]:
    """The incident's document with each entry of `reports` carrying the report's details
    (a report the book no longer holds keeps only source, report_id and revision)."""
    doc = record.document()
    detailed = []
    for entry in doc["reports"]:
        r = reports.get((entry["source"], entry["report_id"]))
        detailed.append(entry if r is None else {**entry, **report_details(r)})
    doc["reports"] = detailed
    return doc


# -- CSV ------------------------------------------------------------------------------------
#: One row per incident; the columns, in order (README "HTTP API" documents them).
CSV_COLUMNS = (
    "incident_id",
    "version",
    "status",
    "occurred_at",
    "zone",
    "category",
    "severity",
    "verification",
    "attribution",
    "killed",
    "wounded",
    "claims",
    "report_count",
    "sources",
    "reports",
    "time_precision",
    "perpetrator_raw",
)
#: A cell starting with one of these is a formula to a spreadsheet (OWASP's list, and
#: the full-width forms some spreadsheets read as the same when typed in an East Asian
#: locale), after any white space (any Unicode's: no-break, vertical tab, form feed,
#: ideographic) and invisible format characters (category Cf: zero-width space, joiners,
#: direction marks, BOM), which some spreadsheets skip or trim.
_FORMULA_START = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")


def _first_shown(text: str) -> str:
    """The first character of `text` that is neither white space nor a format character."""
    for char in text:
        if not char.isspace() and unicodedata.category(char) != "Cf":
            return char
    return ""


def spreadsheet_safe(text: str) -> str:
    """`text`, prefixed with `'` where a spreadsheet would take it for a formula."""
    if text[:1] in ("\t", "\r") or _first_shown(text) in _FORMULA_START:
        return "'" + text
    return text


def csv_row(doc: Mapping[str, Any]) -> list[str]:
    """`claims` as `claimant:accused` pairs joined by `; ` (party codes, never ambiguous);
    `sources` the reports' sources joined by `; ` for reading (a source that would start a
    spreadsheet formula is prefixed with `'`); `reports` the exact JSON array of
    `[source, report_id, revision]`."""
    claims = "; ".join(f"{c}:{a}" for c, a in sorted(doc["claims"].items()))
    reports = doc["reports"]
    sources = "; ".join(r["source"] for r in reports)
    sources = spreadsheet_safe(sources)
    exact = json.dumps(
        [[r["source"], r["report_id"], r["revision"]] for r in reports],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    # absent from workers of earlier releases
    named = spreadsheet_safe(doc.get("perpetrator_raw") or "")
    return [
        str(doc["incident_id"]),
        str(doc["version"]),
        str(doc["status"]),
        str(doc["occurred_at"]),
        str(doc["zone"]),
        str(doc["category"]),
        str(doc["severity"]),
        str(doc["verification"]),
        str(doc["attribution"]),
        str(doc["killed"]),
        str(doc["wounded"]),
        claims,
        str(len(reports)),
        sources,
        exact,
        str(doc.get("time_precision", "exact")),
        named,
    ]


def to_csv(docs: Iterable[Mapping[str, Any]], *, header: bool = True) -> str:
    """RFC 4180: CRLF line ends, fields with commas, quotes or line breaks quoted."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for doc in docs:
        writer.writerow(csv_row(doc))
    return buf.getvalue()
