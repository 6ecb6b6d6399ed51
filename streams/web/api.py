"""The HTTP API of SPEC.md, served by every worker (aiohttp)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import faust
from aiohttp import StreamReader, web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestPayloadError
from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.codes import RejectReason
from schemas.dead_letter import dead_letter
from schemas.validation import MAX_MESSAGE_BYTES, Rejection, validate_report
from streams import metrics
from streams.classify.classifier import Classifier
from streams.intake import classify_report
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
from streams.web.jsonsplit import SplitError, TooManyElements, is_array, split_array
from streams.web.params import check_names, is_rfc3339, not_a_time
from streams.web.series import SeriesQuery, parse_series
from streams.web.series import document as series_document
from streams.web.series import to_csv as series_csv
from streams.web.server_log import quiet_client_errors
from streams.web.tokens import (
    EVERY_SOURCE,
    Poster,
    Tokens,
    claimed_source,
    configured_tokens,
    first_outside,
    outside_message,
)

if TYPE_CHECKING:
    from streams.web.worker_view import WorkerView

log = logging.getLogger(__name__)

#: Most reports one POST may carry; more is refused whole (413) before any is validated.
MAX_BATCH = 1000
HTTP_SOURCE = "http"
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
#: The Content-Encodings of a POST body the server decodes ("": none given).
BODY_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})
#: Most bytes of a rejected item its dead-letter record keeps: the largest report the
#: schema accepts, so any item that could have been valid is kept whole, while the record
#: (base64 and text of it, plus the errors) stays well under Kafka's default 1 MiB limit.
#: A larger item is kept truncated, and its record's message says so.
DEAD_LETTER_KEEP = MAX_MESSAGE_BYTES
#: Most field errors a dead-letter record lists, for the same limit (the message counts all).
DEAD_LETTER_ERRORS = 100
#: Epoch seconds as peers pass them (`parse_as_of`, `fanout.exact_seconds`): negative
#: before 1970.
_EPOCH_SECONDS = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)
#: Earliest and latest `as_of`: what a datetime can hold (RFC 3339 years 0001-9999).
AS_OF_MIN = datetime(1, 1, 1, tzinfo=UTC).timestamp()
AS_OF_MAX = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
_PARTITION = re.compile(r"[0-9]{1,4}")
#: What a peer adds to a query for the partitions it asks this worker for.
_PEER_PARAMETERS = ("scope", "partitions")
#: What a client may pass to the tallies and the alerts (peers add `_PEER_PARAMETERS`).
TALLY_PARAMETERS = ("window", "by", "as_of", "compare")
ALERT_PARAMETERS = ("status",)
#: Paths whose every error is JSON; the live page and its static files keep aiohttp's own.
JSON_PATHS = ("/api/", "/healthz", "/readyz")


#: On an answer whose form (JSON or CSV) the Accept header chose: a cache keeps one per form.
NEGOTIATED = {"Vary": "Accept"}
JSON_TYPE = "application/json; charset=utf-8"
CSV_TYPE = "text/csv; charset=utf-8; header=present"


def csv_bytes_response(
    body: bytes, filename: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A CSV download (RFC 4180 with a header line), its text encoded (UTF-8)."""
    return web.Response(
        body=body,
        headers={
            **(headers or {}),
            "Content-Type": CSV_TYPE,
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )


def json_bytes(doc: Any) -> bytes:
    """A document as `web.json_response` writes it (`json.dumps`' defaults), encoded."""
    return json.dumps(doc).encode()


async def json_off_loop(doc: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    """`web.json_response(doc)`, its serialisation on a thread: a large answer's (a series
    of 10,000 buckets is about 2 MB) took the event loop the stages and health checks share.
    `doc` is plain data built for this answer alone (nothing the state holds), so nothing
    changes it meanwhile."""
    body = await asyncio.to_thread(json_bytes, doc)
    return web.Response(body=body, headers={**(headers or {}), "Content-Type": JSON_TYPE})


def error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def with_headers(response: web.Response, headers: Mapping[str, str]) -> web.Response:
    response.headers.update(headers)
    return response


def unauthorized(header: str | None, *, scoped: bool = False) -> web.Response:
    """401 with the challenge of RFC 6750: `error="invalid_token"` when a bearer token was
    sent but is not the one configured, a bare `Bearer` when none was sent. `scoped`: the
    tokens of CEASEFIRE_API_TOKENS_FILE are taken too."""
    scheme, _, credentials = (header or "").strip().partition(" ")
    which = "CEASEFIRE_API_TOKEN, or one of CEASEFIRE_API_TOKENS_FILE" if scoped else ""
    which = which or "CEASEFIRE_API_TOKEN"
    how = f"send the token this worker is configured with ({which}) as "
    how += "Authorization: Bearer <token>"
    if scheme.lower() == "bearer" and credentials.strip(" \t"):
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        return with_headers(error(401, f"wrong bearer token; {how}"), challenge)
    if scheme.lower() == "bearer":
        sent = "the bearer token is empty"
    elif scheme:  # not echoed: it may be the token itself, sent without a scheme
        sent = "Authorization is not of the Bearer scheme"
    else:
        sent = "no Authorization header"
    return with_headers(error(401, f"{sent}; {how}"), {"WWW-Authenticate": "Bearer"})


# -- errors aiohttp answers itself (no route, wrong method, a handler's crash) --------------
def api_endpoints(app: web.Application) -> list[str]:
    """`METHOD path` of each route under /api/, for the answer to an unknown path."""
    return [
        f"{route.method} {route.resource.canonical}"
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and route.method != "HEAD"  # aiohttp adds one to each GET
    ]


def _without_slash(app: web.Application, path: str) -> str | None:
    """`path` without its trailing slashes when that is a route (`/api/v1/incidents/`)."""
    bare = path.rstrip("/")
    if bare == path or not bare:
        return None
    for resource in app.router.resources():
        pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(resource.canonical))
        if re.fullmatch(pattern, bare):
            return bare
    return None


def json_error_for(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own error (text/plain) as the API's JSON error, with its headers (Allow)."""
    headers = {
        k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")
    }
    path = request.path[:200]
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = sorted(set(exc.allowed_methods) - {"HEAD"}) or sorted(exc.allowed_methods)
        message = f"{request.method[:20]} is not allowed on {path}; use {' or '.join(allowed)}"
        return with_headers(error(405, message, allowed=allowed), headers)
    if isinstance(exc, web.HTTPNotFound) and path.startswith("/api/"):
        bare = _without_slash(request.app, request.path)
        if bare is not None:
            message = f"no endpoint at {path}; did you mean {bare[:200]}?"
            return with_headers(error(404, message), headers)
        message = (
            f"no endpoint at {path}; the API's endpoints are listed in 'endpoints' "
            "(README.md, HTTP API)"
        )
        return with_headers(error(404, message, endpoints=api_endpoints(request.app)), headers)
    return with_headers(error(exc.status, exc.text or exc.reason), headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error under JSON_PATHS as JSON, also those aiohttp answers itself (404, 405,
    500), so that clients read one shape; other paths keep aiohttp's answers."""
    if not request.path.startswith(JSON_PATHS):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error_for(request, exc)
    except Exception:
        log.exception("error answering %s %s", request.method, request.path[:200])
        return error(500, "internal error; the worker's log has the details. Retry, or report it")


# -- query parameters (pure: each raises QueryError, answered 400) --------------------------
def parse_as_of(value: str | None) -> float:
    """`as_of` as epoch seconds: an RFC 3339 time with an offset, or epoch seconds (what
    peers pass). Anything a datetime cannot hold (nan, inf, 1e20) is refused."""
    if value is None or value == "":
        return datetime.now(UTC).timestamp()
    # epoch seconds as ASCII digits only: `float` also took "2026" (1970, 33 minutes in),
    # "1_764_417_600", padded or full-width digits, and answered 200 for the wrong time
    seconds = float(value) if _EPOCH_SECONDS.fullmatch(value) else _rfc3339_seconds(value)
    if not (math.isfinite(seconds) and AS_OF_MIN <= seconds <= AS_OF_MAX):
        raise QueryError(
            f"as_of {value!r} is out of range; use an RFC 3339 time between years 0001 and 9999"
        )
    return seconds


def _rfc3339_seconds(value: str) -> float:
    try:
        # RFC 3339 allows a lower-case z, which `fromisoformat` does not read
        utc = value[-1:] in ("Z", "z")
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if utc else value)
    except ValueError:
        raise not_a_time(
            "as_of", value, "an RFC 3339 time (e.g. 2021-05-01T04:00:00+04:00) or epoch seconds"
        ) from None
    if parsed.tzinfo is None:
        if len(value) == 10:  # a date alone: which instant of it, and whose day?
            raise QueryError(
                f"as_of {value!r} is a date; as_of is an instant, the end of the window: "
                f"e.g. {value}T00:00:00+04:00 (the window ends as that day begins in Baku "
                f"and Yerevan) or {value}T00:00:00Z"
            )
        raise QueryError(f"as_of {value!r} needs a UTC offset")
    if not is_rfc3339(value):
        raise not_a_time(
            "as_of", value, "an RFC 3339 time (e.g. 2021-05-01T04:00:00+04:00) or epoch seconds"
        )
    try:
        return parsed.timestamp()
    except (OverflowError, ValueError):  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise QueryError(f"as_of {value!r} is out of range") from None


def parse_partitions(value: str | None, count: int) -> set[int]:
    """The peer parameter `partitions`: a comma-separated list of partition numbers."""
    parts = (value or "").split(",")
    if not all(_PARTITION.fullmatch(p) for p in parts):
        raise QueryError(f"partitions {value!r} is not a comma-separated list of numbers")
    numbers = {int(p) for p in parts}
    if max(numbers) >= count:
        raise QueryError(f"partitions {value!r}: this cluster has partitions 0 to {count - 1}")
    return numbers


def parse_compare(value: str | None) -> bool:
    """Whether the tallies also carry the window just before (`compare=previous`)."""
    if value is None or value == "":
        return False
    if value == "previous":
        return True
    raise QueryError(f"unknown compare {value[:40]!r}; use compare=previous, or leave it out")


def parse_scope(value: str | None) -> bool:
    """Whether a peer asks for this worker's own partitions only (`scope=local`)."""
    if value is None or value == "cluster":
        return False
    if value == "local":
        return True
    raise QueryError(f"unknown scope {value!r}; use local or cluster")


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


# -- request headers ------------------------------------------------------------------------
def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries `token` with the Bearer scheme, whose name
    is case-insensitive (RFC 7235). The token itself is compared in constant time."""
    return Tokens(master=token).poster(header) is not None


def browser_problem(
    origin: str | None, fetch_site: str | None, allowed: frozenset[str]
) -> str | None:
    """Why a POST looks sent by a web page, which no reporting system is; None when it does
    not. A browser sends `Origin` with every POST of a script or a form, and
    `Sec-Fetch-Site` (other than `none`, a user's own navigation) with every request: a page
    of any site could post reports without either a preflight or the token (a body sent
    without Content-Type), or reach the worker under its own host name (DNS rebinding).
    Origins in `allowed` (CEASEFIRE_POST_ORIGINS) may post."""
    site = (fetch_site or "").strip().lower()
    if origin is None and site in ("", "none"):
        return None
    if origin is not None and origin.strip().rstrip("/").lower() in allowed:
        return None
    said = f"Origin: {origin[:100]!r}" if origin is not None else f"Sec-Fetch-Site: {site[:20]!r}"
    return (
        f"POST /api/v1/reports from a web page is refused (the request carries {said}): "
        "reports are posted by reporting systems, without a browser; to take posts from "
        "pages of a trusted origin, name it in CEASEFIRE_POST_ORIGINS"
    )


def content_type_problem(header: str | None) -> str | None:
    """Why a Content-Type cannot be read as a report body; None when it can. JSON types
    (`application/json`, `application/*+json` such as CloudEvents') are read, and so is a
    request without one, as clients that send no header mean JSON here."""
    if header is None or not header.strip():
        return None
    mime, *params = (part.strip() for part in header.split(";"))
    mime = mime.lower()
    if mime != "application/json" and not (
        mime.startswith("application/") and mime.endswith("+json")
    ):
        return (
            f"Content-Type {mime!r} is not JSON; send application/json "
            "(curl: --json @file, or -H 'Content-Type: application/json')"
        )
    for param in params:
        name, _, charset = param.partition("=")
        charset = charset.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            return f"charset {charset!r} is not supported; JSON bodies must be UTF-8"
    return None


async def read_body(stream: StreamReader, limit: int) -> bytes | None:
    """The whole body, or None as soon as it proves longer than `limit` (no Content-Length,
    a lying one, or a compressed body that expands)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(limit: int, size: int | None = None) -> web.Response:
    got = f" ({size} bytes)" if size is not None else ""
    return error(
        413,
        f"request body is larger than {limit} bytes{got} (CEASEFIRE_MAX_BODY_BYTES); "
        "send fewer reports per request",
        limit=limit,
    )


# -- the body of POST /api/v1/reports (pure) ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class Accepted:
    index: int
    raw: bytes
    key: str
    source: str
    report_id: str


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int
    raw: bytes
    rejection: Rejection

    def as_dict(self) -> dict[str, Any]:
        r = self.rejection
        return {
            "index": self.index,
            "reason": r.reason.value,
            "message": r.message,
            "errors": [e.as_dict() for e in r.errors],
        }


@dataclass(frozen=True, slots=True)
class Refused:
    """The body as a whole is refused. `dead` is what goes to the dead-letter topic: the
    body when it was read as one item, nothing when the request was merely too big."""

    status: int
    message: str
    reason: RejectReason | None = None
    dead: Rejected | None = None


#: A single-report body rejected for what it is as a document answers 4xx, not 202.
_BODY_STATUS = {
    RejectReason.INVALID_JSON: 400,
    RejectReason.INVALID_ENCODING: 400,
    RejectReason.TOO_DEEP: 400,
    RejectReason.TOO_LARGE: 413,
}


def examine_item(
    index: int, raw: bytes, *, received: datetime, classifier: Classifier
) -> Accepted | Rejected:
    result = validate_report(raw, now=received)  # total: never raises
    if isinstance(result, Rejection):
        return Rejected(index, raw, result)
    # Check the place now, so the caller learns of an unknown place at once.
    classified = classify_report(result, received, classifier)
    if isinstance(classified, Rejection):
        return Rejected(index, raw, classified)
    key, _ = classified
    return Accepted(index, raw, key, result.source, result.report_id)


def examine_body(
    body: bytes, *, received: datetime, classifier: Classifier, max_items: int = MAX_BATCH
) -> list[Accepted | Rejected] | Refused:
    """Each report of a body (one JSON object, or an array of them) accepted or rejected,
    each from its own bytes as sent; or the body refused as a whole."""
    if not is_array(body):
        item = examine_item(0, body, received=received, classifier=classifier)
        if isinstance(item, Rejected) and item.rejection.reason in _BODY_STATUS:
            r = item.rejection
            return Refused(_BODY_STATUS[r.reason], r.message, r.reason, item)
        return [item]
    try:
        spans = split_array(body, max_elements=max_items)
    except TooManyElements:
        return Refused(413, f"at most {max_items} reports per request; split the batch")
    except SplitError as exc:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as err:
            message = f"request body is not UTF-8: {err}"
            rejection = Rejection(RejectReason.INVALID_ENCODING, message)
        else:
            rejection = Rejection(RejectReason.INVALID_JSON, f"request body is not JSON: {exc}")
        return Refused(400, rejection.message, rejection.reason, Rejected(0, body, rejection))
    return [
        examine_item(i, body[start:end], received=received, classifier=classifier)
        for i, (start, end) in enumerate(spans)
    ]


def item_sources(examined: list[Accepted | Rejected] | Refused) -> list[tuple[int, str]]:
    """(index, source) of each item of a body that names its source: an accepted report's,
    and a rejected item's string `source` (it would be dead-lettered under that name).
    Items that are no JSON object, or without a string `source`, name none."""
    if isinstance(examined, Refused):
        items: list[Accepted | Rejected] = [] if examined.dead is None else [examined.dead]
    else:
        items = examined
    named = []
    for item in items:
        source = item.source if isinstance(item, Accepted) else claimed_source(item.raw)
        if source is not None:
            named.append((item.index, source))
    return named


def outside_scope(
    examined: list[Accepted | Rejected] | Refused, poster: Poster
) -> tuple[int, str] | None:
    """The first item's (index, source) of a body that `poster` may not post."""
    return first_outside(item_sources(examined), poster)


def http_dead_letter(item: Rejected, received: datetime) -> bytes:
    """The dead-letter record of a rejected item: its bytes as sent, bounded (see
    DEAD_LETTER_KEEP) so that the record always fits a Kafka message."""
    raw, rejection, size = item.raw, item.rejection, len(item.raw)
    if len(raw) > DEAD_LETTER_KEEP:
        kept = _utf8_prefix(raw, DEAD_LETTER_KEEP)
        note = f" (this record keeps its first {len(kept)} of {len(raw)} bytes)"
        rejection = replace(rejection, message=rejection.message + note)
        raw = kept
    if len(rejection.errors) > DEAD_LETTER_ERRORS:
        rejection = replace(rejection, errors=rejection.errors[:DEAD_LETTER_ERRORS])
    return dead_letter(
        raw,
        rejection,
        topic=HTTP_SOURCE,
        partition=None,
        offset=None,
        key=None,
        received_at=received,
        size=size,
    )


def _utf8_prefix(raw: bytes, size: int) -> bytes:
    """At most `size` bytes of `raw`, not cutting a UTF-8 character in two."""
    end = size
    while end > size - 3 and end > 0 and raw[end] & 0xC0 == 0x80:
        end -= 1
    return raw[:end]


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
        if not self._authorized(request):
            return unauthorized(request.headers.get("Authorization"))
        try:
            return web.json_response(answer())
        except NotOwner as exc:
            return error(409, str(exc))

    def _heavy(self, local: bool) -> HeavyRequests:
        return self.peer_heavy if local else self.heavy

    def _busy(self, endpoint: HeavyEndpoint, local: bool) -> web.Response:
        return busy(endpoint, local, self._heavy(local).at_once)

    def _refused(self, request: web.Request) -> web.Response | None:
        """401 for a `scope=local` request (a peer's) without the token, before anything
        else of it is read: its parameters are no business of a stranger."""
        if "local" in request.query.getall("scope", ()) and not self._authorized(request):
            return unauthorized(request.headers.get("Authorization"))
        return None

    def _authorized(self, request: web.Request) -> bool:
        """Whether a peer's `scope=local` request carries CEASEFIRE_API_TOKEN (the token
        the workers send each other; a scoped token is for posting), when one is set."""
        token = self.tokens.master
        if not token:
            return True
        return bearer_matches(request.headers.get("Authorization"), token)

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
        if not self._authorized(request):
            return unauthorized(request.headers.get("Authorization"))
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
            if not self._authorized(request):  # as `_answer_peer`
                return unauthorized(request.headers.get("Authorization"))
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
        dead: list[Rejected] = [i for i in items if isinstance(i, Rejected)]
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
                "rejected": [i.as_dict() for i in items if isinstance(i, Rejected)],
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
