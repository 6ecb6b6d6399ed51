"""Requests for a large answer (series, incident exports) are admitted a few at a time, and
their answers are written off the event loop: a review's 16 clients asking for 10,000
hourly buckets at once held /healthz 4-5 s, the loop the stages share building and
serialising 2.6 MB answers. On test servers over stand-in workers (tests/test_web_series.py,
tests/test_web_incidents_api.py); no broker."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import streams.web.api as api_module
import streams.web.fanout as fanout_module
import streams.web.responses as responses_module
from streams.metrics import REGISTRY
from streams.web.admission import HEAVY_AT_ONCE, PEER_HEAVY_AT_ONCE
from streams.web.api import Api
from tests import test_web_incidents_api as incidents_api
from tests import test_web_series as series_api

pytestmark = pytest.mark.timeout(60)

Client = TestClient[web.Request, web.Application]
AUTH = series_api.AUTH
SERIES = "/api/v1/series?by=zone,party&from=2020-11-09&to=2020-11-12"


def refused(endpoint: str, scope: str) -> float:
    value = REGISTRY.get_sample_value(
        "ceasefire_api_heavy_requests_refused_total", {"endpoint": endpoint, "scope": scope}
    )
    assert value is not None  # the series exists from the start
    return value


async def answer(client: Client, path: str, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    resp = await client.get(path, **kwargs)
    body = await resp.json() if resp.content_type == "application/json" else await resp.text()
    return resp.status, dict(resp.headers), body


def assert_busy(status: int, headers: dict[str, str], body: Any) -> None:
    assert status == 503, body
    assert headers["Retry-After"] == "1"
    assert body["limit"] == "heavy_requests"
    assert f"answering {HEAVY_AT_ONCE} series and incident-export requests" in body["error"]


async def test_series_over_the_limit_are_503_with_retry_after_and_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = asyncio.Event()
    inside = 0
    real = fanout_module.cluster_series

    async def held(monitor: Any, query: Any) -> Any:
        nonlocal inside
        inside += 1
        await release.wait()
        return await real(monitor, query)

    monkeypatch.setattr(api_module, "cluster_series", held)
    async with series_api.serve(series_api.stand_in(series_api.tallies())) as client:
        before = refused("series", "cluster")
        first = [asyncio.create_task(answer(client, SERIES)) for _ in range(HEAVY_AT_ONCE)]
        for _ in range(200):
            if inside == HEAVY_AT_ONCE:
                break
            await asyncio.sleep(0.01)
        assert inside == HEAVY_AT_ONCE
        assert_busy(*await answer(client, SERIES))
        assert_busy(*await answer(client, f"{SERIES}&format=csv"))
        assert refused("series", "cluster") == before + 2
        # what is not heavy is answered meanwhile, and so is a peer's per-partition series
        status, _, _ = await answer(client, "/api/v1/tallies?window=all")
        assert status == 200
        local = "/api/v1/series?from=2020-11-09&to=2020-11-11&scope=local&partitions=0,1"
        status, _, body = await answer(client, local, headers=AUTH)
        assert status == 200 and len(body["buckets"]) == 2
        # a bad query is still told so, not to retry
        status, _, body = await answer(client, "/api/v1/series?interval=1w")
        assert status == 400, body
        release.set()
        for status, _, body in await asyncio.gather(*first):
            assert status == 200 and len(body["buckets"]) == 3
        status, _, _ = await answer(client, SERIES)  # the places are free again
        assert status == 200
        assert refused("series", "cluster") == before + 2


async def test_peers_have_their_own_places() -> None:
    monitor = series_api.stand_in(series_api.tallies())
    api = Api(monitor)
    async with TestClient(TestServer(api.web, host="127.0.0.1")) as client:
        api.peer_heavy.held = PEER_HEAVY_AT_ONCE  # as if that many were being answered
        before = refused("series", "local")
        local = "/api/v1/series?from=2020-11-09&to=2020-11-11&scope=local&partitions=0,1"
        status, headers, body = await answer(client, local, headers=AUTH)
        assert status == 503 and headers["Retry-After"] == "1", body
        assert refused("series", "local") == before + 1
        status, _, _ = await answer(client, local)  # without the token: 401 first
        assert status == 401
        status, _, _ = await answer(client, SERIES)  # clients' places are apart
        assert status == 200


async def test_incident_exports_are_heavy_and_the_live_page_s_list_is_not() -> None:
    monitor = incidents_api.stand_in(incidents_api.all_books())
    api = Api(monitor)
    async with TestClient(TestServer(api.web, host="127.0.0.1")) as client:
        api.heavy.held = HEAVY_AT_ONCE
        before = refused("incidents", "cluster")
        for path in (
            "/api/v1/incidents?format=csv",
            "/api/v1/incidents?limit=1000",
            "/api/v1/incidents?limit=101",
        ):
            assert_busy(*await answer(client, path))
        assert refused("incidents", "cluster") == before + 3
        for path in ("/api/v1/incidents?limit=50", "/api/v1/incidents?limit=100"):
            status, _, body = await answer(client, path)
            assert status == 200 and body["incidents"], body
        api.heavy.held = 0
        status, _, body = await answer(client, "/api/v1/incidents?format=csv")
        assert status == 200 and body.startswith("incident_id,")


def record_threads(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    """Each call of `module.name`, by the thread it ran on."""
    threads: list[int] = []
    real: Callable[..., Any] = getattr(module, name)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, recorded)
    return threads


async def test_large_answers_are_built_and_written_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop_thread = threading.get_ident()
    merged = record_threads(monkeypatch, fanout_module, "merge_series")
    documents = record_threads(monkeypatch, api_module, "series_document")
    # the series' JSON is written by the API's own helper, the incidents' by `json_off_loop`
    dumped = record_threads(monkeypatch, api_module, "json_bytes")
    dumped_off_loop = record_threads(monkeypatch, responses_module, "json_bytes")
    csv_written = record_threads(monkeypatch, api_module, "to_csv")
    async with series_api.serve(series_api.stand_in(series_api.tallies())) as client:
        status, headers, body = await answer(client, SERIES)
        assert status == 200 and headers["Content-Type"] == "application/json; charset=utf-8"
        assert headers["Vary"] == "Accept"
        assert sum(len(b["rows"]) for b in body["buckets"]) == 2
        status, headers, text = await answer(client, f"{SERIES}&format=csv")
        assert status == 200 and headers["Content-Type"].startswith("text/csv")
        assert len(list(csv.reader(io.StringIO(text, newline="")))) == 3
        local = "/api/v1/series?from=2020-11-09&to=2020-11-11&scope=local&partitions=0,1"
        status, _, _ = await answer(client, local, headers=AUTH)
        assert status == 200
    async with incidents_api.serve(incidents_api.stand_in(incidents_api.all_books())) as client:
        status, _, body = await answer(client, "/api/v1/incidents?limit=1000")
        assert status == 200 and body["incidents"]
        status, _, text = await answer(client, "/api/v1/incidents?format=csv")
        assert status == 200 and text.startswith("incident_id,")
    assert merged and documents and dumped and dumped_off_loop and csv_written
    on_loop = [
        name
        for name, threads in (
            ("merge_series", merged),
            ("series_document", documents),
            ("json_bytes", dumped),
            ("json_off_loop's json_bytes", dumped_off_loop),
            ("incidents to_csv", csv_written),
        )
        if loop_thread in threads
    ]
    assert on_loop == []


async def test_an_answer_written_off_the_loop_is_the_json_it_was() -> None:
    async with series_api.serve(series_api.stand_in(series_api.tallies())) as client:
        resp = await client.get(SERIES)
        raw = await resp.read()
        doc = json.loads(raw)
        assert raw == json.dumps(doc).encode()  # as web.json_response wrote it
