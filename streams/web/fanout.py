"""Complete tally and incident answers from any worker.

Each worker counts only the partitions it owns. A query asks every owner, as the
partition assignor published them, for exactly the partitions it owns; an owner
answers only for partitions it still owns. The answer is complete only when every
partition answered once, otherwise the caller gets `Incomplete` (HTTP 503, retry),
never a silently partial count.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp

from streams import metrics
from streams.pipeline.tables import THEATRE_TABLE, ZONE_TABLE
from streams.record.archive import DAY
from streams.record.incident import incident_id as incident_id_of
from streams.tallies.series import merge_series, series, tally
from streams.tallies.state import Row, merge_rows
from streams.tallies.windows import TALLY_WINDOWS, WINDOWS, grouping, seconds_before, to_micros
from streams.web.incidents import (
    Facets,
    IncidentQuery,
    Listing,
    Page,
    facets_of_document,
    facets_of_record,
    incident_details,
    is_incident_id,
    merge,
    read_page,
    select,
)
from streams.web.peer_auth import REFUSAL_LOG_EVERY, peer_authorization
from streams.web.series import SeriesQuery, read_buckets

if TYPE_CHECKING:
    from streams.record.book import IncidentBook
    from streams.record.incident import IncidentFields, IncidentRecord
    from streams.record.model import Ident
    from streams.tallies.state import IncidentTally
    from streams.web.worker_view import WorkerView

R = TypeVar("R")

PEER_TIMEOUT = aiohttp.ClientTimeout(total=5)
#: Largest peer answer read (a page of 1,000 incidents is about 1.5 MB; a series of 10,000
#: buckets a few MB): the URL asked is whatever a member of the consumer group advertises, so
#: what it answers is bounded, and a redirect is not followed.
PEER_ANSWER_MAX = 32 * 2**20
#: How much of a peer's refusal goes to this worker's log (never to the client: an advertised
#: URL may be an internal service whose page nobody outside should read through the API).
PEER_REFUSAL_LOGGED = 300

log = logging.getLogger(__name__)
_refusals_logged: dict[tuple[str, int], float] = {}


async def read_peer_answer(url: str, resp: aiohttp.ClientResponse) -> Any:
    """A peer's JSON answer, or `Incomplete`. A refusal (any status but 200, a redirect too)
    says only its status to the client; what the peer said goes to this worker's log, at most
    one line a minute per peer and status. ValueError when the body is not JSON."""
    if resp.status != 200:
        said = (await resp.content.read(PEER_REFUSAL_LOGGED * 4)).decode("utf-8", "replace")
        key = (url, resp.status)
        now = time.monotonic()
        if now - _refusals_logged.get(key, -math.inf) >= REFUSAL_LOG_EVERY:  # per peer and status
            _refusals_logged[key] = now
            log.warning(
                "Worker %s answered a per-partition query %d: %r (said once a minute)",
                url,
                resp.status,
                said[:PEER_REFUSAL_LOGGED],
            )
        raise Incomplete(f"worker {url} answered {resp.status} (what it said is in the log)")
    if (resp.content_length or 0) > PEER_ANSWER_MAX:
        raise Incomplete(f"worker {url} answered over {PEER_ANSWER_MAX} bytes")
    body = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 16):
        body += chunk
        if len(body) > PEER_ANSWER_MAX:
            raise Incomplete(f"worker {url} answered over {PEER_ANSWER_MAX} bytes")
    return json.loads(body)


class Incomplete(RuntimeError):
    """Some partitions could not be counted (rebalance in progress, peer unreachable)."""


class NotOwner(RuntimeError):
    """Asked for partitions this worker does not own."""


def _tallies(monitor: WorkerView, partitions: set[int]) -> list[IncidentTally]:
    zone = monitor.zone
    held = zone.partitions_ready()  # empty between an assignment and its recovery
    missing = partitions - held
    if missing:
        raise NotOwner(f"partitions {sorted(missing)} are not held by this worker now")
    return [zone.tallies[p] for p in sorted(partitions)]


def local_rows(
    monitor: WorkerView, partitions: set[int], *, window: str, by: str, as_of: float
) -> list[Row]:
    since = monitor.settings.ceasefire_start.timestamp()
    parts = _tallies(monitor, partitions)
    return tally(parts, window=window, by=by, as_of=as_of, since=since)


def partition_owners(monitor: WorkerView) -> dict[str, set[int]]:
    meta = monitor.app.router.table_metadata(ZONE_TABLE)
    owners: dict[str, set[int]] = {}
    for url, topics in meta.items():
        parts = {p for ps in topics.values() for p in ps}
        if parts:
            owners[str(url).rstrip("/")] = parts
    return owners


def theatre_owners(monitor: WorkerView) -> set[str]:
    """The worker that evaluates the theatre (it may own no zone partition)."""
    meta = monitor.app.router.table_metadata(THEATRE_TABLE)
    return {str(url).rstrip("/") for url, topics in meta.items() if any(topics.values())}


def peer_headers(monitor: WorkerView, url: str, path: str, query: dict[str, str]) -> dict[str, str]:
    """The headers of a `scope=local` query to the worker at `url`: a signature made with
    CEASEFIRE_API_TOKEN when one is set (`peer_auth`), never the token: `url` is whatever
    a member of the group advertised. With CEASEFIRE_INTERNAL_FORMAT 7 or less (old
    workers still running, which take only the token), the token itself."""
    s = monitor.settings
    if not s.api_token:
        return {}
    if s.internal_format < 8:
        return {"Authorization": f"Bearer {s.api_token}"}
    return {"Authorization": peer_authorization(s.api_token, url, path, query, time.time())}


def check_covered(monitor: WorkerView, owners: dict[str, set[int]]) -> None:
    """`Incomplete` unless every partition has exactly one owner now."""
    if not owners:  # before the first assignment is published
        raise Incomplete("the worker has not been assigned partitions yet")
    covered = sorted(p for parts in owners.values() for p in parts)
    if covered != list(range(monitor.settings.partitions)):
        raise Incomplete("partition ownership is changing (rebalance in progress)")


async def ask_owners(
    monitor: WorkerView,
    path: str,
    params: dict[str, str],
    local: Callable[[set[int]], R],
    read: Callable[[Any], R],
) -> list[R]:
    """Ask each owner of the zone-stage partitions for exactly the partitions it owns
    (`scope=local&partitions=...` on `path`): this worker answers its own with `local`, a
    peer's JSON answer is read with `read` (which raises ValueError, LookupError or TypeError
    on a wrong shape). Every partition answers once, or `Incomplete`."""
    owners = partition_owners(monitor)
    me = monitor.settings.web_url().rstrip("/")
    check_covered(monitor, owners)

    async def ask(url: str, parts: set[int], session: aiohttp.ClientSession) -> R:
        if url == me:
            return local(parts)
        query = {
            **params,
            "scope": "local",
            "partitions": ",".join(str(p) for p in sorted(parts)),
        }
        try:
            headers = peer_headers(monitor, url, path, query)
            async with session.get(
                f"{url}{path}", params=query, headers=headers, allow_redirects=False
            ) as resp:
                return read(await read_peer_answer(url, resp))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Incomplete(f"worker {url} unreachable: {exc}") from exc
        except (ValueError, LookupError, TypeError, RecursionError) as exc:  # not the answer
            raise Incomplete(f"worker {url} answered something else: {exc!r}") from exc

    async with aiohttp.ClientSession(timeout=PEER_TIMEOUT) as session:
        try:
            return list(await asyncio.gather(*(ask(u, ps, session) for u, ps in owners.items())))
        except NotOwner as exc:
            raise Incomplete(str(exc)) from exc


def exact_seconds(seconds: float) -> str:
    """Epoch seconds as a peer's `as_of` (`params.parse_as_of`): digits that read back as the
    same float, with a sign before 1970 and never an exponent (`str` wrote -315619200.0 and
    1e-06, which peers refused, so such a query was 503 on every retry)."""
    text = repr(seconds)
    return text if "e" not in text else format(Decimal(seconds), "f")


async def cluster_rows(monitor: WorkerView, *, window: str, by: str, as_of: float) -> list[Row]:
    keys = grouping(by)

    def read(body: Any) -> list[Row]:
        rows: list[Row] = body["rows"]
        return rows

    parts = await ask_owners(
        monitor,
        "/api/v1/tallies",
        {"window": window, "by": by, "as_of": exact_seconds(as_of)},
        lambda ps: local_rows(monitor, ps, window=window, by=by, as_of=as_of),
        read,
    )
    try:
        return merge_rows(parts, keys)
    except (LookupError, TypeError, ValueError) as exc:  # a peer's rows not shaped as rows
        raise Incomplete(f"a worker answered rows that cannot be merged: {exc!r}") from exc


# -- series -----------------------------------------------------------------------------------
def local_series(monitor: WorkerView, partitions: set[int], query: SeriesQuery) -> list[list[Row]]:
    return series(_tallies(monitor, partitions), query.buckets(), by=query.by)


async def cluster_series(monitor: WorkerView, query: SeriesQuery) -> list[list[Row]]:
    """Each bucket's rows over every partition, complete or `Incomplete`."""
    parts = await ask_owners(
        monitor,
        "/api/v1/series",
        query.params(),
        lambda ps: local_series(monitor, ps, query),
        lambda body: read_buckets(body, query),
    )
    try:
        # Off the event loop: summing 10,000 buckets took 0.1 s of it. `parts` are this
        # request's own lists (this worker's read from its state on the loop, the peers'
        # parsed from their answers), which nothing else changes.
        return await asyncio.to_thread(merge_series, parts, query.count, query.keys)
    except (LookupError, TypeError, ValueError) as exc:  # a peer's rows not shaped as rows
        raise Incomplete(f"a worker answered a series that cannot be merged: {exc!r}") from exc


# -- incidents --------------------------------------------------------------------------------
def _books(monitor: WorkerView, partitions: set[int]) -> list[IncidentBook]:
    zone = monitor.zone
    missing = partitions - zone.partitions_ready()  # empty between assignment and recovery
    if missing:
        raise NotOwner(f"partitions {sorted(missing)} are not held by this worker now")
    return [zone.books[p] for p in sorted(partitions)]


def local_incidents(
    monitor: WorkerView, partitions: set[int], query: IncidentQuery
) -> Page[dict[str, Any]]:
    """The first `query.limit` open incidents of `partitions` after the cursor."""
    books = _books(monitor, partitions)
    closed = sorted(
        ((day, zone, book) for book in books for zone, day in book.archive.units()),
        key=lambda d: d[0],
        reverse=True,
    )
    page = select(
        query,
        _open_items(books, query),
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


#: A day in microseconds (the incidents' order key).
DAY_MICROS = DAY * 1_000_000


def _open_items(
    books: list[IncidentBook], query: IncidentQuery
) -> list[tuple[Facets, IncidentRecord]]:
    """The open incidents of `books` that can be on the page of `query`, with their facets,
    in the order of `book.incidents()`: those it wants, and of those the `limit + 1` newest
    and any about as new as the last of them (the order is by the microsecond, then the
    id). `select` makes of them the page it makes of every open incident. Only these are
    named (a uuid5), versioned and given records and facets: doing that for every open
    incident, on the event loop, was most of the answer's cost (a zone's or a day's query's
    as much as an unfiltered one's).

    Times are compared as the fields hold them (float seconds) where that decides: more
    than `_SLACK` from a bound (`from`, `to`, the cursor's), or from the newest kept, the
    microsecond (`to_micros`) cannot compare otherwise; nearer, by the microsecond,
    as `IncidentQuery.wants` does."""
    after = query.after
    inf = math.inf
    start = -inf if query.start is None else query.start / 1e6
    end = inf if query.end is None else query.end / 1e6
    top = inf if after is None else after[0] / 1e6  # the cursor's time: at or before it
    attributions, categories = query.attributions, query.categories
    verifications = query.verifications
    want = query.limit + 1
    # The times of the `want` newest wanted so far (a heap: the oldest of them first); one
    # older than that by more than the slack has `want` before it in the order, and no
    # place on the page. Kept in parallel lists: a tuple each was a garbage collection
    # every few hundred.
    newest: list[float] = []
    floor = -inf
    times: list[float] = []
    owners: list[IncidentBook] = []
    anchors: list[Ident] = []
    fields: list[IncidentFields] = []
    for book in books:
        for anchor, f in book.open_fields(query.zones):
            t = f.occurred
            if t < floor or t < start - _SLACK or t >= end + _SLACK or t > top + _SLACK:
                continue
            if (
                (attributions and f.attribution not in attributions)
                or (categories and f.category.value not in categories)
                or (verifications and f.verification.value not in verifications)
            ):
                continue
            if not (start + _SLACK <= t < end - _SLACK and t < top - _SLACK):  # near a bound
                occurred = to_micros(t)
                if not query.wants_fields(
                    occurred, f.zone, f.attribution, f.category.value, f.verification.value
                ):
                    continue
                if (
                    after is not None
                    and occurred == after[0]
                    and incident_id_of(anchor) <= after[1]
                ):
                    continue  # at the cursor's microsecond, not after its id
            if len(newest) < want:
                heapq.heappush(newest, t)
                if len(newest) == want:
                    floor = newest[0] - _SLACK
            elif t > newest[0]:
                heapq.heapreplace(newest, t)
                floor = newest[0] - _SLACK
            times.append(t)
            owners.append(book)
            anchors.append(anchor)
            fields.append(f)
    items: list[tuple[Facets, IncidentRecord]] = []
    for i, t in enumerate(times):
        if t >= floor:
            record = owners[i].open_record(anchors[i], fields[i])
            items.append((facets_of_record(record), record))
    return items


#: Seconds: a float time this far from a bound in microseconds compares with it as its
#: microsecond does (`to_micros` rounds to the nearest; the float of a bound, or
#: of a time of the years a document can hold, is off by less than a ten-thousandth).
_SLACK = 1.0


def _closed_items(book: IncidentBook, zone: str, day: int) -> list[tuple[Facets, IncidentRecord]]:
    return [(facets_of_record(r), r) for r in book.closed_day(zone, day)]


async def cluster_incidents(monitor: WorkerView, query: IncidentQuery) -> Listing:
    """A page of the open incidents of every partition, complete or `Incomplete`."""
    pages = await ask_owners(
        monitor,
        "/api/v1/incidents",
        query.params(),
        lambda ps: local_incidents(monitor, ps, query),
        read_page,
    )
    try:
        return merge(query, pages)
    except (LookupError, TypeError, ValueError) as exc:  # a peer's page not of incidents
        raise Incomplete(f"a worker answered incidents that cannot be merged: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class Found:
    """What partitions know of an incident id: its open version with its reports, and the
    last version published of it (also when it is no longer open: merged or withdrawn)."""

    incident: dict[str, Any] | None = None
    version: int | None = None
    #: of an id no longer open: the incident that now holds its reports
    #: (`IncidentBook.holder_of`, `closed_holder_of`)
    merged_into: str | None = None

    def document(self) -> dict[str, Any]:
        return {"incident": self.incident, "version": self.version, "merged_into": self.merged_into}


def local_incident(monitor: WorkerView, partitions: set[int], incident_id: str) -> Found:
    found = Found()
    for book in _books(monitor, partitions):
        version = book.versions.get(incident_id)
        if version is None:  # never headed an incident here, or closed: no scan
            closed = book.find_closed(incident_id)
            if closed is not None:
                return Found(incident_details(*closed), closed[0].version)
            merged = book.closed_holder_of(incident_id)
            if merged is not None:
                found = Found(
                    None, max(merged[1], found.version or 0), found.merged_into or merged[0]
                )
            continue
        record = book.open_incident(incident_id)
        if record is not None:
            held = {(s, rid): book.report((s, rid)) for s, rid, _ in record.fields.reports}
            return Found(incident_details(record, held), record.version)
        holder = found.merged_into or book.holder_of(incident_id)
        found = Found(None, max(version, found.version or 0), holder)
    return found


def read_found(body: Any) -> Found:
    incident, version = body["incident"], body["version"]
    merged_into = body.get("merged_into")  # absent from workers of earlier releases
    if incident is not None and not isinstance(incident, dict):
        raise ValueError("incident is not an object")
    if version is not None and type(version) is not int:
        raise ValueError("version is not a number")
    if merged_into is not None and not is_incident_id(merged_into):
        raise ValueError("merged_into is not an incident id")
    if incident is not None:
        facets_of_document(incident)  # shaped as an incident
    return Found(incident, version, merged_into)


async def cluster_incident(monitor: WorkerView, incident_id: str) -> Found:
    """The incident from whichever partition holds it open (at its highest version if a
    report moving between zones is for a moment in two), else the highest version any
    partition published of it (the id is known but no longer open), else nothing."""
    founds = await ask_owners(
        monitor,
        f"/api/v1/incidents/{incident_id}",
        {},
        lambda ps: local_incident(monitor, ps, incident_id),
        read_found,
    )
    open_ = [f for f in founds if f.incident is not None]
    if open_:
        return max(open_, key=lambda f: f.version or 0)
    known = [f for f in founds if f.version is not None]
    if not known:
        return Found()
    latest = max(known, key=lambda f: f.version or 0)
    holders = (f.merged_into for f in [latest, *known] if f.merged_into is not None)
    return Found(None, latest.version, next(holders, None))


#: The gauges `refresh_window_gauges` sets, cleared together.
WINDOW_GAUGES = (
    metrics.INCIDENTS_WINDOW,
    metrics.INCIDENTS_PREVIOUS_WINDOW,
    metrics.CASUALTIES_WINDOW,
)


def window_gauge_values(
    current: dict[str, list[Row]], previous: dict[str, list[Row]]
) -> dict[tuple[Any, tuple[str, ...]], int]:
    """(gauge, labels) -> value from tally rows by (zone, party): per window, the incidents
    and casualties of the window ending now, and the incidents of the window before it.

    A (zone, party) with incidents in only one of a window and the window before has its
    series in both, at 0 in the other: "now minus before" is then a figure (a dashboard's
    change was No data when the window before was empty)."""
    values: dict[tuple[Any, tuple[str, ...]], int] = {}
    for window, rows in current.items():
        for row in rows:
            zone, party = str(row["zone"]), str(row["party"])
            values[(metrics.INCIDENTS_WINDOW, (zone, party, window))] = int(row["incidents"])
            for kind in ("killed", "wounded"):
                labels = (zone, party, kind, window)
                values[(metrics.CASUALTIES_WINDOW, labels)] = int(row[kind])
    for window, rows in previous.items():
        for row in rows:
            zone, party = str(row["zone"]), str(row["party"])
            values[(metrics.INCIDENTS_PREVIOUS_WINDOW, (zone, party, window))] = int(
                row["incidents"]
            )
            values.setdefault((metrics.INCIDENTS_WINDOW, (zone, party, window)), 0)
            for kind in ("killed", "wounded"):
                values.setdefault((metrics.CASUALTIES_WINDOW, (zone, party, kind, window)), 0)
        for row in current.get(window, []):
            labels3 = (str(row["zone"]), str(row["party"]), window)
            values.setdefault((metrics.INCIDENTS_PREVIOUS_WINDOW, labels3), 0)
    return values


def clear_window_gauges() -> None:
    for gauge in WINDOW_GAUGES:
        gauge.clear()


async def refresh_window_gauges(monitor: WorkerView) -> None:
    """The window gauges are exported by the owner of partition 0 only, for the whole
    cluster: exactly one series per (zone, party, window), none stale. (The worker also
    clears them as its partitions are revoked: the dashboards sum them over workers, and
    the next owner's would add to this one's until its next refresh.)"""
    if 0 not in monitor.zone.owned_partitions():
        clear_window_gauges()
        return
    now = time.time()
    current: dict[str, list[Row]] = {}
    previous: dict[str, list[Row]] = {}
    try:
        for window in TALLY_WINDOWS:
            current[window] = await cluster_rows(monitor, window=window, by="zone,party", as_of=now)
        for window, seconds in WINDOWS.items():
            previous[window] = await cluster_rows(
                monitor, window=window, by="zone,party", as_of=seconds_before(now, seconds)
            )
    except Incomplete:
        return  # keep the last complete figures until the cluster settles
    values = window_gauge_values(current, previous)
    clear_window_gauges()
    if 0 not in monitor.zone.owned_partitions():
        return  # partition 0 went while the cluster answered: its next owner exports them
    for (gauge, labels), value in values.items():
        gauge.labels(*labels).set(value)


def local_alerts(monitor: WorkerView, status: str) -> list[dict[str, Any]]:
    """This worker's alerts; `NotOwner` for firing ones while its partitions move (their
    states not recovered yet: the answer would lack their alerts), and for resolved ones
    until it has read the alert topic to its end (a starting worker would answer part)."""
    if status != "resolved" and not monitor.alerting.holds_its_partitions():
        raise NotOwner("this worker's alert states are being recovered (partitions moved)")
    if status != "firing" and not monitor.alerting.knows_resolved():
        raise NotOwner("this worker is still reading the resolved alerts of the alert topic")
    return monitor.alerting.alerts(status)


async def cluster_alerts(monitor: WorkerView, status: str) -> list[dict[str, Any]]:
    """Alerts of every worker, merged. Firing ones from every partition's owner (each holds
    the zones of its partitions), only when every owner answers from its recovered state,
    else `Incomplete` (as the tallies: alerts do not vanish from the answer while partitions
    move). Resolved ones from one worker that has read the alert topic to its end, this one
    first: every worker reads the same topic, so one that is still reading (starting) does
    not make the answer wait while another could give it."""
    owners = partition_owners(monitor)
    me = monitor.settings.web_url().rstrip("/")
    firing_from: set[str] = set()
    if status != "resolved":
        check_covered(monitor, owners)
        if not theatre_owners(monitor):  # the theatre-wide alerts have no one to answer
            raise Incomplete("the theatre's partition is being assigned (rebalance in progress)")
        firing_from = set(owners) | set(theatre_owners(monitor))

    async def ask(url: str, which: str, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
        if url == me:
            try:
                return local_alerts(monitor, which)
            except NotOwner as exc:
                raise Incomplete(str(exc)) from exc
        params = {"status": which, "scope": "local"}
        headers = peer_headers(monitor, url, "/api/v1/alerts", params)
        try:
            async with session.get(
                f"{url}/api/v1/alerts", params=params, headers=headers, allow_redirects=False
            ) as resp:
                body: dict[str, Any] = await read_peer_answer(url, resp)
                alerts: list[dict[str, Any]] = body["alerts"]
                return alerts
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Incomplete(f"worker {url} unreachable: {exc}") from exc
        except (ValueError, LookupError, TypeError, RecursionError) as exc:  # not the answer
            raise Incomplete(f"worker {url} answered something else: {exc!r}") from exc

    async def resolved(session: aiohttp.ClientSession) -> list[dict[str, Any]]:
        if status == "firing":
            return []
        reasons = []
        others = (set(owners) | set(theatre_owners(monitor))) - {me}
        for url in [me, *sorted(others)]:  # in turn: most often this worker answers
            try:
                return await ask(url, "resolved", session)
            except Incomplete as exc:
                reasons.append(str(exc))
        raise Incomplete("no worker could answer the resolved alerts: " + "; ".join(reasons))

    async with aiohttp.ClientSession(timeout=PEER_TIMEOUT) as session:
        parts = await asyncio.gather(
            resolved(session), *(ask(u, "firing", session) for u in sorted(firing_from))
        )
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        for alerts in parts:
            for a in alerts:
                merged[(a["alert_id"], a["status"])] = a
        return sorted(merged.values(), key=lambda a: (a["starts_at"], a["alert_id"]))
    except (LookupError, TypeError, ValueError) as exc:  # a peer's alerts not shaped as alerts
        raise Incomplete(f"a worker answered alerts that cannot be merged: {exc!r}") from exc
