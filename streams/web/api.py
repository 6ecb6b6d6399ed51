"""The HTTP API of SPEC.md, served by every worker (aiohttp)."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import faust
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.report import Report
from schemas.validation import Rejection, encode_json, parse_json, validate_report
from streams import metrics
from streams.pipeline.dead_letters import dead_letter
from streams.pipeline.ingest import classify_report
from streams.tallies.windows import QueryError, grouping, window_seconds
from streams.web.fanout import Incomplete, NotOwner, cluster_alerts, cluster_rows, local_rows

if TYPE_CHECKING:
    from streams.pipeline.app import Monitor

log = logging.getLogger(__name__)

MAX_BATCH = 1000
MAX_BODY = 16 * 1024 * 1024
HTTP_SOURCE = "http"


def error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def parse_as_of(value: str | None) -> float:
    if value is None or value == "":
        return datetime.now(UTC).timestamp()
    try:
        return float(value)  # peers pass epoch seconds
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"as_of {value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise QueryError(f"as_of {value!r} needs a UTC offset")
    return parsed.timestamp()


class Api:
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.web = web.Application(client_max_size=MAX_BODY)
        self.web.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
                web.get("/metrics", self.metrics),
                web.post("/api/v1/reports", self.post_reports),
                web.get("/api/v1/zones", self.zones),
                web.get("/api/v1/tallies", self.tallies),
                web.get("/api/v1/alerts", self.alerts),
            ]
        )

    def _authorized(self, request: web.Request) -> bool:
        token = self.monitor.settings.api_token
        if not token:
            return True
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness: 200 once the worker first became ready, and for as long as it runs,
        through rebalances (restarting it then would only make things worse)."""
        if self.monitor.started:
            return web.json_response({"status": "ready" if self.monitor.ready else "alive"})
        return web.json_response({"status": "starting"}, status=503)

    async def readyz(self, request: web.Request) -> web.Response:
        """Readiness: 200 only while ingest runs, the state of every owned partition is
        recovered and no partition is stalled; 503 while partitions move."""
        if self.monitor.ready:
            return web.json_response({"status": "ready"})
        status = "stalled" if self.monitor.stalled() else "not ready"
        return web.json_response({"status": status}, status=503)

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def zones(self, request: web.Request) -> web.Response:
        return web.json_response(self.monitor.zones.geojson())

    async def tallies(self, request: web.Request) -> web.Response:
        q = request.query
        window = q.get("window", "24h")
        by = q.get("by", "zone")
        try:
            window_seconds(window)
            keys = grouping(by)
            as_of = parse_as_of(q.get("as_of"))
        except QueryError as exc:
            return error(400, str(exc))
        if q.get("scope") == "local":
            if not self._authorized(request):
                return error(401, "missing or wrong bearer token")
            try:
                parts = {int(p) for p in q.get("partitions", "").split(",") if p}
                rows = local_rows(self.monitor, parts, window=window, by=by, as_of=as_of)
            except NotOwner as exc:
                return error(409, str(exc))
            return web.json_response({"rows": rows})
        try:
            rows = await cluster_rows(self.monitor, window=window, by=by, as_of=as_of)
        except Incomplete as exc:
            return error(503, f"tallies are not complete right now, retry: {exc}")
        return web.json_response(
            {
                "window": window,
                "by": list(keys),
                "as_of": datetime.fromtimestamp(as_of, UTC).isoformat(),
                "rows": rows,
            }
        )

    async def alerts(self, request: web.Request) -> web.Response:
        status = request.query.get("status", "firing")
        if status not in ("firing", "resolved", "all"):
            return error(400, f"unknown status {status!r}; use firing, resolved or all")
        if request.query.get("scope") == "local":
            if not self._authorized(request):
                return error(401, "missing or wrong bearer token")
            return web.json_response({"alerts": self.monitor.alerting.alerts(status)})
        try:
            alerts = await cluster_alerts(self.monitor, status)
        except Incomplete as exc:
            return error(503, f"alerts are not complete right now, retry: {exc}")
        return web.json_response({"status": status, "alerts": alerts})

    async def post_reports(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error(401, "missing or wrong bearer token")
        producer = self.monitor.ingest.producer
        if producer is None or not self.monitor.ready:
            return error(503, "worker is starting; retry")
        body = await request.read()
        received = datetime.now(UTC)
        settings = self.monitor.settings
        doc = parse_json(body)  # bounded: a hostile body is a 400, never a 500
        if isinstance(doc, Rejection):
            await self._dead_letter(body, doc, received)
            return error(400, f"request body: {doc.message}", reason=doc.reason.value)
        items = doc if isinstance(doc, list) else [doc]
        if len(items) > MAX_BATCH:
            return error(413, f"at most {MAX_BATCH} reports per request, got {len(items)}")
        accepted: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        sends = []
        for index, item in enumerate(items):
            encoded = encode_json(item)
            result: Report | Rejection
            if isinstance(encoded, Rejection):
                result = encoded
                raw = json.dumps(item).encode()  # ASCII: lone surrogates stay \u escapes
            else:
                raw = encoded
                result = validate_report(raw, now=received)
            if isinstance(result, Report):
                # Check the place now, so the caller learns of an unknown place at once.
                classified = classify_report(result, received, self.monitor.classifier)
                if isinstance(classified, Rejection):
                    result = classified
            if isinstance(result, Rejection):
                rejected.append(
                    {
                        "index": index,
                        "reason": result.reason.value,
                        "message": result.message,
                        "errors": [e.as_dict() for e in result.errors],
                    }
                )
                await self._dead_letter(raw, result, received)
                continue
            sends.append(await producer.send(settings.reports_topic, raw, key=result.key.encode()))
            accepted.append(
                {"index": index, "source": result.source, "report_id": result.report_id}
            )
        if sends:
            await asyncio.gather(*sends)
        return web.json_response({"accepted": accepted, "rejected": rejected}, status=202)

    async def _dead_letter(self, raw: bytes, rejection: Rejection, received: datetime) -> None:
        producer = self.monitor.ingest.producer
        assert producer is not None
        metrics.REJECTED.labels(rejection.reason.value).inc()
        value = dead_letter(
            raw,
            rejection,
            topic=HTTP_SOURCE,
            partition=None,
            offset=None,
            key=None,
            received_at=received,
        )
        await (await producer.send(self.monitor.settings.dlq_topic, value))


class ApiServer(faust.Service):  # type: ignore[misc]
    """Serves the API for the lifetime of the worker."""

    def __init__(self, monitor: Monitor, **kwargs: Any) -> None:
        self.monitor = monitor
        self.api = Api(monitor)
        self._runner: web.AppRunner | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        s = self.monitor.settings
        self._runner = web.AppRunner(self.api.web, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.web_host, s.web_port)
        await site.start()
        log.info("API listening on http://%s:%s", s.web_host, s.web_port)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def register_api(monitor: Monitor) -> None:
    monitor.app.web_server(ApiServer(monitor))
