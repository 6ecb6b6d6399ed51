"""The HTTP API of SPEC.md, served by every worker (aiohttp): its routes and their handlers
(`Api`), and the service that serves them for the worker's lifetime (`ApiServer`).

What the handlers use lives beside it: responses and the JSON errors (`responses.py`),
query parameters (`params.py`), the body of POST /api/v1/reports (`report_intake.py`),
answers from every worker (`fanout.py`), tokens (`tokens.py`), the Host check (`hosts.py`),
admission of connections and heavy requests (`admission.py`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import faust
from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestPayloadError
from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams import metrics
from streams.tallies.series import compare_rows, previous_as_of
from streams.tallies.state import Row
from streams.tallies.windows import ALL, QueryError, check_window, grouping
from streams.web import listen
from streams.web import page as live_page
from streams.web.admission import (
    HEAVY_AT_ONCE,
    PEER_HEAVY_AT_ONCE,
    AdmittedSite,
    ConnectionLimits,
    HeavyEndpoint,
    HeavyRequests,
    busy,
    default_per_address,
    default_total,
)
from streams.web.fanout import (
    Incomplete,
    NotOwner,
    cluster_alerts,
    cluster_incident,
    cluster_incidents,
    cluster_rows,
    cluster_series,
    local_alerts,
    local_incident,
    local_incidents,
    local_rows,
    local_series,
)
from streams.web.hosts import allowed_hosts, host_check
from streams.web.hosts import refuse as misdirected
from streams.web.incidents import (
    DEFAULT_LIMIT,
    IncidentQuery,
    is_incident_id,
    parse_query,
    to_csv,
    wants_csv,
)
from streams.web.params import (
    AS_OF_MIN,
    check_names,
    parse_as_of,
    parse_compare,
    parse_partitions,
    parse_scope,
)
from streams.web.peer_auth import REFUSAL_LOG_EVERY, SCHEME, is_peer_scheme, peer_refusal
from streams.web.report_intake import (
    BODY_ENCODINGS,
    Accepted,
    Refused,
    RejectedItem,
    browser_problem,
    content_type_problem,
    examine_body,
    http_dead_letter,
    outside_scope,
    read_body,
    too_large,
)
from streams.web.responses import (
    JSON_TYPE,
    NEGOTIATED,
    csv_bytes_response,
    error,
    json_bytes,
    json_errors,
    json_off_loop,
    unauthorized,
    with_headers,
)
from streams.web.series import SeriesQuery, parse_series
from streams.web.series import document as series_document
from streams.web.series import to_csv as series_csv
from streams.web.server_log import quiet_client_errors
from streams.web.tokens import (
    EVERY_SOURCE,
    Poster,
    bearer_matches,
    configured_tokens,
    outside_message,
)

if TYPE_CHECKING:
    from streams.web.worker_view import WorkerView

log = logging.getLogger(__name__)


#: Seconds a POST waits for the broker to confirm its reports before it answers 503: a
#: broker that holds requests without answering held the client 40 s (the producer's
#: request timeout), past many gateways' own timeouts.
CONFIRM_SECONDS = 15.0
#: A client's time to send a request's headers, and to send the next on a kept-alive
#: connection (aiohttp's keep-alive check closes a connection waiting for a request that
#: long, a trickle of header lines included; its default, 75 s, let a review hold 21,000
#: half-sent requests until the worker ran out of file handles). Longer than a scrape
#: interval of 15 s, so Prometheus finds its kept-alive connection open.
KEEPALIVE_SECONDS = 20.0
#: A client's time to send a POST's body: 408 and the connection closed after it.
BODY_SECONDS = 30.0
#: What a peer adds to a query for the partitions it asks this worker for.
_PEER_PARAMETERS = ("scope", "partitions")
#: What a client may pass to the tallies and the alerts (peers add `_PEER_PARAMETERS`).
TALLY_PARAMETERS = ("window", "by", "as_of", "compare")
ALERT_PARAMETERS = ("status",)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def is_export(query: IncidentQuery, as_csv: bool) -> bool:
    """Whether an incidents request is an export, admitted as a heavy request: CSV, or a
    page longer than the default (100; the live page asks 50, exports 1,000)."""
    return as_csv or query.limit > DEFAULT_LIMIT


def _series_json_bytes(query: SeriesQuery, buckets: list[list[Row]]) -> bytes:
    return json_bytes(series_document(query, buckets))


def _series_csv_bytes(query: SeriesQuery, buckets: list[list[Row]]) -> bytes:
    return series_csv(series_document(query, buckets)).encode()


class Api:
    def __init__(self, monitor: WorkerView) -> None:
        self.monitor = monitor
        #: Heavy requests answered at once: clients', and peers' `scope=local` ones.
        self.heavy = HeavyRequests(HEAVY_AT_ONCE)
        self.peer_heavy = HeavyRequests(PEER_HEAVY_AT_ONCE)
        s = monitor.settings
        #: Who may post: CEASEFIRE_API_TOKEN and CEASEFIRE_API_TOKENS_FILE (read once).
        self.tokens = configured_tokens(s.api_token, s.api_tokens_file)
        #: The names a request may carry as its Host (DNS rebinding: 421 otherwise).
        self.hosts = allowed_hosts(s.web_host, s.advertised_url, s.allowed_hosts)
        #: When a refused peer signature was last logged (at most one line a minute).
        self._peer_refusal_logged = -REFUSAL_LOG_EVERY
        self.web = web.Application(
            client_max_size=s.max_body_bytes, middlewares=[host_check(self.hosts), json_errors]
        )
        self.web.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
                web.get("/metrics", self.metrics),
                web.post("/api/v1/reports", self.post_reports, expect_handler=self._expect),
                web.get("/api/v1/zones", self.zones),
                web.get("/api/v1/tallies", self.tallies),
                web.get("/api/v1/series", self.series),
                web.get("/api/v1/alerts", self.alerts),
                web.get("/api/v1/incidents", self.incidents),
                web.get("/api/v1/incidents/{incident_id}", self.incident),
            ]
        )
        live_page.register(self.web, monitor.settings)  # GET / and /static/: the live page

    def _answer_peer(self, request: web.Request, answer: Callable[[], Any]) -> web.Response:
        """A peer's `scope=local` request, its token checked (first by `_refused`, and here
        where the answer is made): this worker's answer for the partitions asked, or 409
        when it does not hold them all."""
        if (refused := self._peer_refusal(request)) is not None:
            return refused
        try:
            return web.json_response(answer())
        except NotOwner as exc:
            return error(409, str(exc))

    def _heavy(self, local: bool) -> HeavyRequests:
        return self.peer_heavy if local else self.heavy

    def _busy(self, endpoint: HeavyEndpoint, local: bool) -> web.Response:
        return busy(endpoint, local, self._heavy(local).at_once)

    def _refused(self, request: web.Request) -> web.Response | None:
        """401 for a `scope=local` request (a peer's) without the token's signature (or
        the token), before anything else of it is read: its parameters are no business of
        a stranger."""
        if "local" in request.query.getall("scope", ()):
            return self._peer_refusal(request)
        return None

    def _peer_refusal(self, request: web.Request) -> web.Response | None:
        """401 unless a peer's `scope=local` request is signed with CEASEFIRE_API_TOKEN
        (`peer_auth`: what workers send each other) or carries it as a bearer token
        (workers of earlier releases, an operator's curl), when one is set; a scoped token
        is for posting only."""
        token = self.tokens.master
        header = request.headers.get("Authorization")
        if not token or bearer_matches(header, token):
            return None
        if not is_peer_scheme(header):
            return unauthorized(header)
        why = peer_refusal(
            header,
            token,
            self.monitor.settings.web_url(),
            request.path,
            request.query.items(),
            time.time(),
        )
        if why is None:
            return None
        if time.monotonic() - self._peer_refusal_logged >= REFUSAL_LOG_EVERY:
            self._peer_refusal_logged = time.monotonic()
            log.warning(
                "Refused a peer's scope=local query from %s: %s (every query it makes of "
                "this worker's partitions answers 503 until this is fixed; logged at most "
                "once a minute)",
                request.remote,
                why,
            )
        challenge = {"WWW-Authenticate": f"{SCHEME}, Bearer"}
        return with_headers(error(401, why), challenge)

    def _poster(self, request: web.Request) -> Poster | None:
        """Who posts, by the request's token (every source when no token is configured);
        None when its token is not one taken here."""
        return self.tokens.poster(request.headers.get("Authorization"))

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness: 200 once the worker first became ready, and for as long as it runs,
        through rebalances (restarting it then would only make things worse)."""
        if self.monitor.started:
            return web.json_response({"status": "ready" if self.monitor.ready else "alive"})
        return web.json_response({"status": "starting"}, status=503)

    async def readyz(self, request: web.Request) -> web.Response:
        """Readiness: 200 only while ingest runs, the state of every owned partition is
        recovered and no partition is stalled; 503 while partitions move, saying what it
        waits for."""
        if self.monitor.ready:
            return web.json_response({"status": "ready"})
        status = "stalled" if self.monitor.stalled() else "not ready"
        body = {"status": status, "waiting_for": self.monitor.waiting_for()}
        return web.json_response(body, status=503)

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def zones(self, request: web.Request) -> web.Response:
        try:
            check_names(request.query.items(), ())
        except QueryError as exc:
            return error(400, str(exc))
        return web.json_response(self.monitor.zones.geojson())

    async def tallies(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        parts: set[int] = set()
        try:
            q = check_names(request.query.items(), TALLY_PARAMETERS, internal=_PEER_PARAMETERS)
            window = q.get("window", "24h")
            by = q.get("by", "zone")
            check_window(window)
            keys = grouping(by)
            as_of = parse_as_of(q.get("as_of"))
            compare = parse_compare(q.get("compare"))
            before = previous_as_of(window, as_of) if compare else None
            if before is not None and before < AS_OF_MIN:
                raise QueryError(
                    f"compare=previous: the {window} before as_of {_iso(as_of)} would end "
                    "before year 0001; use a later as_of"
                )
            local = parse_scope(q.get("scope"))
            if local:  # a peer asking for the partitions it believes this worker owns
                parts = parse_partitions(q.get("partitions"), self.monitor.settings.partitions)
        except QueryError as exc:
            return error(400, str(exc))
        if local:  # one window per request: the worker asked compares
            return self._answer_peer(
                request,
                lambda: {
                    "rows": local_rows(self.monitor, parts, window=window, by=by, as_of=as_of)
                },
            )
        try:
            if before is None:
                rows = await cluster_rows(self.monitor, window=window, by=by, as_of=as_of)
            else:
                current, previous = await asyncio.gather(
                    cluster_rows(self.monitor, window=window, by=by, as_of=as_of),
                    cluster_rows(self.monitor, window=window, by=by, as_of=before),
                )
                rows = compare_rows(current, previous, keys)
        except Incomplete as exc:
            return error(503, f"tallies are not complete right now, retry: {exc}")
        answer: dict[str, Any] = {
            "window": window,
            "by": list(keys),
            "as_of": _iso(as_of),
        }
        if window == ALL:
            answer["since"] = self.monitor.settings.ceasefire_start.isoformat()
        if before is not None:
            answer["compare"] = "previous"
            answer["previous_as_of"] = _iso(before)
        answer["rows"] = rows
        return web.json_response(answer)

    async def series(self, request: web.Request) -> web.Response:
        """Counts by event time, bucket by bucket (`streams/web/series.py`)."""
        if (refused := self._refused(request)) is not None:
            return refused
        q = request.query
        settings = self.monitor.settings
        parts: set[int] = set()
        try:
            local = parse_scope(q.get("scope"))
            if local:
                parts = parse_partitions(q.get("partitions"), settings.partitions)
            query = parse_series(
                q.items(),
                since=settings.ceasefire_start,
                now=datetime.now(UTC),
                extra=_PEER_PARAMETERS,
            )
            as_csv = wants_csv(q.get("format"), request.headers.get("Accept"))
        except QueryError as exc:
            return error(400, str(exc))
        with self._heavy(local).admit() as admitted:
            if not admitted:
                return self._busy("series", local)
            if local:
                return await self._series_for_peer(request, parts, query)
            try:
                buckets = await cluster_series(self.monitor, query)
            except Incomplete as exc:
                return error(503, f"the series is not complete right now, retry: {exc}")
            # the buckets are this answer's own lists: the document and its text off the loop
            if as_csv:
                body = await asyncio.to_thread(_series_csv_bytes, query, buckets)
                return csv_bytes_response(body, "series.csv", dict(NEGOTIATED))
            body = await asyncio.to_thread(_series_json_bytes, query, buckets)
            return web.Response(body=body, headers={**NEGOTIATED, "Content-Type": JSON_TYPE})

    async def _series_for_peer(
        self, request: web.Request, parts: set[int], query: SeriesQuery
    ) -> web.Response:
        """A peer's `scope=local` series (as `_answer_peer`): the partitions' buckets read
        on the loop, their document and its text written off it."""
        if (refused := self._peer_refusal(request)) is not None:
            return refused
        try:
            buckets = local_series(self.monitor, parts, query)
        except NotOwner as exc:
            return error(409, str(exc))
        body = await asyncio.to_thread(_series_json_bytes, query, buckets)
        return web.Response(body=body, headers={"Content-Type": JSON_TYPE})

    async def alerts(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        try:
            q = check_names(request.query.items(), ALERT_PARAMETERS, internal=("scope",))
            status = q.get("status", "firing")
            if status not in ("firing", "resolved", "all"):
                raise QueryError(f"unknown status {status!r}; use firing, resolved or all")
            local = parse_scope(q.get("scope"))
        except QueryError as exc:
            return error(400, str(exc))
        if local:
            return self._answer_peer(
                request, lambda: {"alerts": local_alerts(self.monitor, status)}
            )
        try:
            alerts = await cluster_alerts(self.monitor, status)
        except Incomplete as exc:
            return error(503, f"alerts are not complete right now, retry: {exc}")
        return web.json_response({"status": status, "alerts": alerts})

    async def incidents(self, request: web.Request) -> web.Response:
        """Open incidents, newest first, a page at a time (`streams/web/incidents.py`)."""
        if (refused := self._refused(request)) is not None:
            return refused
        q = request.query
        parts: set[int] = set()
        try:
            local = parse_scope(q.get("scope"))
            if local:  # a peer asking for the partitions it believes this worker owns
                parts = parse_partitions(q.get("partitions"), self.monitor.settings.partitions)
            query = parse_query(q.items(), zones=self.monitor.zones.ids, extra=_PEER_PARAMETERS)
            as_csv = wants_csv(q.get("format"), request.headers.get("Accept"))
        except QueryError as exc:
            return error(400, str(exc))
        if not is_export(query, as_csv):
            return await self._incidents(request, query, parts, local=local, as_csv=as_csv)
        with self._heavy(local).admit() as admitted:
            if not admitted:
                return self._busy("incidents", local)
            return await self._incidents(request, query, parts, local=local, as_csv=as_csv)

    async def _incidents(
        self,
        request: web.Request,
        query: IncidentQuery,
        parts: set[int],
        *,
        local: bool,
        as_csv: bool,
    ) -> web.Response:
        if local:
            if (refused := self._peer_refusal(request)) is not None:  # as `_answer_peer`
                return refused
            try:
                held = local_incidents(self.monitor, parts, query)
            except NotOwner as exc:
                return error(409, str(exc))
            return await json_off_loop({"incidents": held.items, "more": held.more})
        try:
            listing = await cluster_incidents(self.monitor, query)
        except Incomplete as exc:
            return error(503, f"incidents are not complete right now, retry: {exc}")
        headers = dict(NEGOTIATED)
        if listing.next_cursor is not None:
            following = request.rel_url.update_query(cursor=listing.next_cursor)
            headers["Link"] = f'<{following}>; rel="next"'
        # the documents are this answer's own (`IncidentRecord.document`): written off the loop
        if as_csv:
            body = await asyncio.to_thread(lambda: to_csv(listing.incidents).encode())
            return csv_bytes_response(body, "incidents.csv", headers)
        return await json_off_loop(listing.document(), headers)

    async def incident(self, request: web.Request) -> web.Response:
        """One open incident with its current reports."""
        if (refused := self._refused(request)) is not None:
            return refused
        incident_id = request.match_info["incident_id"].lower()  # a UUID in any case
        parts: set[int] = set()
        try:
            if not is_incident_id(incident_id):
                raise QueryError(
                    f"{incident_id[:80]!r} is not an incident id (a lowercase UUID, as "
                    "`incident_id` in GET /api/v1/incidents)"
                )
            q = check_names(request.query.items(), (), internal=_PEER_PARAMETERS)
            local = parse_scope(q.get("scope"))
            if local:
                parts = parse_partitions(q.get("partitions"), self.monitor.settings.partitions)
        except QueryError as exc:
            return error(400, str(exc))
        if local:
            return self._answer_peer(
                request, lambda: local_incident(self.monitor, parts, incident_id).document()
            )
        try:
            found = await cluster_incident(self.monitor, incident_id)
        except Incomplete as exc:
            return error(503, f"incidents are not complete right now, retry: {exc}")
        if found.incident is not None:
            return web.json_response(found.incident)
        topic = self.monitor.settings.incidents_topic
        if found.version is not None and found.merged_into is not None:
            return error(
                404,
                f"incident {incident_id} is no longer open: it was merged into incident "
                f"{found.merged_into}, which holds its reports now (GET "
                f"/api/v1/incidents/{found.merged_into}); its last version (version "
                f"{found.version}) is on the topic {topic}",
                incident_id=incident_id,
                version=found.version,
                merged_into=found.merged_into,
            )
        if found.version is not None:
            return error(
                404,
                f"incident {incident_id} is no longer open: it was merged into another "
                f"incident or withdrawn (its last version is {found.version}); its latest "
                f"version, with status and merged_into, is on the topic {topic}",
                incident_id=incident_id,
                version=found.version,
            )
        return error(404, f"no incident {incident_id}", incident_id=incident_id)

    # -- POST /api/v1/reports -------------------------------------------------------------
    def _refuse_by_headers(self, request: web.Request) -> web.Response | None:
        """What the headers alone decide: 403 from a web page, 401, 415, or 413 by
        Content-Length."""
        problem = browser_problem(
            request.headers.get("Origin"),
            request.headers.get("Sec-Fetch-Site"),
            self.monitor.settings.post_origin_set(),
        )
        if problem is not None:
            return error(403, problem)
        if self._poster(request) is None:
            scoped = bool(self.tokens.scoped)
            return unauthorized(request.headers.get("Authorization"), scoped=scoped)
        problem = content_type_problem(request.headers.get("Content-Type"))
        if problem is not None:
            return error(415, problem)
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in BODY_ENCODINGS:  # else read as it is: "foo" was taken as plain
            return error(
                415,
                f"Content-Encoding {encoding[:40]!r} is not supported; send the body plain, "
                "or compressed as gzip or deflate",
            )
        try:  # "?dry_run=true" was taken, and its reports published
            check_names(request.query.items(), ())
        except QueryError as exc:
            return error(400, str(exc))
        limit = self.monitor.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return too_large(limit, request.content_length)
        return None

    async def _expect(self, request: web.Request) -> web.Response | None:
        """`Expect: 100-continue`: refuse before the client uploads the body, or invite it.
        (aiohttp calls this before the middlewares: the Host check is made here too.)"""
        host = request.headers.get("Host")
        if host is not None and not self.hosts.allows(host):
            return misdirected(host)
        refusal = self._refuse_by_headers(request)
        if refusal is not None:
            return refusal
        if request.headers.get("Expect", "").lower() != "100-continue":
            return error(417, f"unsupported Expect: {request.headers.get('Expect')!r}")
        if request.version >= (1, 1):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # as aiohttp's own handler: the body starts after
        return None

    async def post_reports(self, request: web.Request) -> web.Response:
        refusal = self._refuse_by_headers(request)
        if refusal is not None:
            return refusal
        producer = self.monitor.producer.producer
        if producer is None or not self.monitor.ready:
            waiting = ", ".join(self.monitor.waiting_for()) or "its start"
            return error(503, f"worker not ready (waiting for {waiting}); retry")
        limit = self.monitor.settings.max_body_bytes
        try:
            async with asyncio.timeout(BODY_SECONDS):
                body = await read_body(request.content, limit)
        except (RequestPayloadError, ContentEncodingError) as exc:  # was a 500, a traceback
            log.debug("unreadable body: %r", exc)
            encoding = request.headers.get("Content-Encoding", "identity")
            return error(
                400, f"the request body is not {encoding} data, as its Content-Encoding says"
            )
        except TimeoutError:
            late = error(408, f"the request body did not arrive within {BODY_SECONDS:.0f} s")
            late.force_close()
            await late.prepare(request)
            await late.write_eof()
            if request.transport is not None:  # not the 10 s aiohttp gives an unread body
                request.transport.close()
            return late
        if body is None:
            return too_large(limit)
        received = datetime.now(UTC)
        # Parsing up to a whole body of pathological JSON takes a while: off the event loop.
        examined = await asyncio.to_thread(
            examine_body, body, received=received, classifier=self.monitor.classifier
        )
        # taken by `_refuse_by_headers`; with no scoped token, for every source
        poster = (self._poster(request) if self.tokens.scoped else None) or EVERY_SOURCE
        if poster.sources is not None:  # a scoped token: every source it names, or nothing
            outside = await asyncio.to_thread(outside_scope, examined, poster)
            if outside is not None:
                index, source = outside
                return error(
                    403,
                    outside_message(poster, index, source),
                    token=poster.name,
                    index=index,
                    source=source,
                )
        settings = self.monitor.settings
        items = examined if isinstance(examined, list) else []
        dead: list[RejectedItem] = [i for i in items if isinstance(i, RejectedItem)]
        if isinstance(examined, Refused) and examined.dead is not None:
            dead.append(examined.dead)

        def count_rejected() -> None:
            for rejected in dead:
                metrics.REJECTED.labels(rejected.rejection.reason.value).inc()

        async def send_all() -> None:
            # The reports first, confirmed: a retry after they failed finds no dead letter
            # of its body written already (they went out together, and one was).
            reports = []
            for item in items:
                if isinstance(item, Accepted):
                    topic = settings.reports_topic
                    reports.append(await producer.send(topic, item.raw, key=item.key.encode()))
            await asyncio.gather(*reports)
            letters = []
            for rejected in dead:
                value = http_dead_letter(rejected, received)
                letters.append(await producer.send(settings.dlq_topic, value))
            lettered.set()
            await asyncio.gather(*letters)

        lettered = asyncio.Event()  # the dead letters are sent (they may land)

        try:
            await asyncio.wait_for(send_all(), CONFIRM_SECONDS)
        except KafkaError as exc:
            # Safe to retry: a report sent twice is counted once; a dead letter is written
            # again only when the reports were taken and some of the dead letters were not.
            return error(503, f"the broker did not take the reports ({exc!r}); retry")
        except TimeoutError:
            # The sends may still land: a retry's reports are then duplicates, counted once,
            # and its rejections, if sent, dead-lettered (and counted) again.
            if lettered.is_set():
                count_rejected()
            return error(
                503,
                f"the broker did not confirm the reports within {CONFIRM_SECONDS:g} s; retry",
            )
        count_rejected()
        if isinstance(examined, Refused):
            reason = {"reason": examined.reason.value} if examined.reason is not None else {}
            errors = [e.as_dict() for e in examined.dead.rejection.errors] if examined.dead else []
            return error(examined.status, examined.message, **reason, errors=errors)
        return web.json_response(
            {
                "accepted": [
                    {"index": i.index, "source": i.source, "report_id": i.report_id}
                    for i in items
                    if isinstance(i, Accepted)
                ],
                "rejected": [i.as_dict() for i in items if isinstance(i, RejectedItem)],
            },
            status=202,
        )


class ApiServer(faust.Service):  # type: ignore[misc]
    """Serves the API for the lifetime of the worker."""

    def __init__(self, monitor: WorkerView, **kwargs: Any) -> None:
        self.monitor = monitor
        self.api = Api(monitor)
        self._runner: web.AppRunner | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        s = self.monitor.settings
        quiet_client_errors()
        self._runner = web.AppRunner(
            self.api.web, access_log=None, keepalive_timeout=KEEPALIVE_SECONDS
        )
        await self._runner.setup()
        # Bound by `run` before anything else; bound here when the API starts on its own.
        sockets = listen.take(s.web_host, s.web_port) or listen.bind_sockets(s.web_host, s.web_port)
        total = s.max_connections or default_total()
        per_address = s.max_connections_per_address
        limits = ConnectionLimits(
            per_address=default_per_address(total) if per_address is None else per_address,
            total=total,
        )
        for sock in sockets:
            await AdmittedSite(self._runner, sock, limits).start()
        log.info(
            "API listening on http://%s:%s (at most %s connections, %s from one address)",
            s.web_host,
            s.web_port,
            limits.total,
            limits.per_address or "any number",
        )

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def register_api(monitor: WorkerView) -> None:
    monitor.app.web_server(ApiServer(monitor))
