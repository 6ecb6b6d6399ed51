"""The API's errors as clients meet them: JSON for paths and methods aiohttp answers itself,
unknown and repeated parameters refused alike by every endpoint, the bearer challenge of a
401, the hint for a `+` sent unencoded in a time, and where a merged incident went. Test
servers over the stand-in workers of the other web tests; no broker."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from streams.kafka.broker import free_port
from streams.record.incident import incident_id
from streams.web.api import Api
from tests import test_web_incidents_api as incidents_api
from tests import test_web_series as series_api
from tests.record_helpers import MIN, rv
from tests.test_web_api import AUTH, TOKEN, Harness, report, serve, stand_in

pytestmark = pytest.mark.timeout(60)

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def api() -> AsyncIterator[Harness]:
    async for harness in serve():
        yield harness


async def json_answer(resp: ClientResponse) -> Any:
    assert resp.content_type == "application/json", await resp.text()
    return await resp.json()


# -- errors aiohttp answers itself -----------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nonexistent",
        "/api/nothing",
        "/api/v1/incidents/",
        f"/api/v1/incidents/{incident_id(('a', 'b'))}/",
        "/api/v1/tallies/",
    ],
)
async def test_an_unknown_api_path_is_a_json_404(api: Harness, path: str) -> None:
    resp = await api.client.get(path)
    body = await json_answer(resp)
    assert resp.status == 404 and path in body["error"]
    bare = path.rstrip("/")
    if bare in ("/api/v1/incidents", "/api/v1/tallies") or bare.startswith("/api/v1/incidents/"):
        assert f"did you mean {bare}?" in body["error"]  # the trailing slash named
    else:
        assert "GET /api/v1/tallies" in body["endpoints"]
        assert "POST /api/v1/reports" in body["endpoints"]
        assert "GET /api/v1/incidents/{incident_id}" in body["endpoints"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/v1/incidents", "GET"),
        ("GET", "/api/v1/reports", "POST"),
        ("POST", "/api/v1/tallies", "GET"),
        ("PUT", "/api/v1/incidents/" + incident_id(("a", "b")), "GET"),
        ("POST", "/healthz", "GET"),
        ("POST", "/readyz", "GET"),
    ],
)
async def test_a_wrong_method_is_a_json_405_naming_the_allowed_ones(
    api: Harness, method: str, path: str, allowed: str
) -> None:
    resp = await api.client.request(method, path, headers=AUTH)
    body = await json_answer(resp)
    assert resp.status == 405
    assert f"{method} is not allowed on {path}; use {allowed}" in body["error"]
    assert allowed in resp.headers["Allow"].split(",")
    assert body["allowed"] == [allowed]


async def test_a_crash_under_the_api_is_a_json_500() -> None:
    def crash() -> dict[str, Any]:
        raise RuntimeError("a bug")

    monitor, _ = stand_in(api_token=TOKEN)
    cast(Any, monitor).zones = SimpleNamespace(geojson=crash)
    async with TestClient(TestServer(Api(monitor).web)) as client:
        resp = await client.get("/api/v1/zones")
        body = await json_answer(resp)
        assert resp.status == 500 and "log" in body["error"] and "a bug" not in body["error"]


async def test_the_live_page_and_its_files_keep_their_answers(api: Harness) -> None:
    resp = await api.client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"
    resp = await api.client.get("/static/app.js")
    assert resp.status == 200 and "javascript" in resp.content_type
    for path in ("/static/nothing.js", "/nothing"):  # aiohttp's own answers off the API
        resp = await api.client.get(path)
        assert resp.status == 404 and resp.content_type != "application/json"


# -- unknown and repeated parameters ---------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/api/v1/tallies?foo=1", "unknown parameter 'foo'"),
        ("/api/v1/tallies?window=24h&window=1h", "'window' is given 2 times"),
        ("/api/v1/tallies?by=zone&by=party", "'by' is given 2 times"),
        ("/api/v1/tallies?as_of=2026-01-01T00:00:00Z&as_of=1", "'as_of' is given 2 times"),
        ("/api/v1/tallies?compare=previous&compare=previous", "'compare' is given 2 times"),
        ("/api/v1/tallies?_=1700000000", "unknown parameter '_'"),
        ("/api/v1/alerts?status=firing&status=all", "'status' is given 2 times"),
        ("/api/v1/alerts?foo=1", "unknown parameter 'foo'"),
        ("/api/v1/zones?foo=1", "unknown parameter 'foo'"),
        (f"/api/v1/incidents/{incident_id(('a', 'b'))}?foo=1", "unknown parameter 'foo'"),
        (
            f"/api/v1/incidents/{incident_id(('a', 'b'))}?scope=local&scope=cluster",
            "'scope' is given 2 times",
        ),
    ],
)
async def test_unknown_and_repeated_parameters_are_400(
    api: Harness, path: str, problem: str
) -> None:
    status, body = await api.get(path, headers=AUTH)
    assert status == 400 and problem in body["error"], body


async def test_compare_before_year_one_is_a_400_not_a_500() -> None:
    async with series_api.serve(series_api.stand_in(series_api.tallies())) as client:
        path = "/api/v1/tallies?window=24h&as_of=0001-01-01T12:00:00Z&compare=previous"
        status, body = await series_api.get(client, path)
        assert status == 400 and "before year 0001" in body["error"], body
        status, _ = await series_api.get(client, path.removesuffix("&compare=previous"))
        assert status == 200


async def test_what_the_live_page_and_peers_send_the_tallies_is_still_read() -> None:
    async with series_api.serve(series_api.stand_in(series_api.tallies())) as client:
        # streams/web/static/app.js; the CLI adds as_of and compare
        status, body = await series_api.get(client, "/api/v1/tallies?window=24h&by=zone")
        assert status == 200 and body["window"] == "24h"
        query = "window=7d&by=zone,party&as_of=2026-11-29T12:00:00Z&compare=previous"
        status, _ = await series_api.get(client, f"/api/v1/tallies?{query}")
        assert status == 200
        # a peer (streams/web/fanout.py)
        peer = "window=24h&by=zone&as_of=1790000000.0&scope=local&partitions=0,1"
        status, body = await series_api.get(client, f"/api/v1/tallies?{peer}", headers=AUTH)
        assert status == 200 and "rows" in body


# -- 401 -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        (None, "Bearer"),
        (f"Basic {TOKEN}", "Bearer"),
        ("Bearer", "Bearer"),
        ("Bearer wrong", 'Bearer error="invalid_token"'),
        ("bearer wrong", 'Bearer error="invalid_token"'),
    ],
)
async def test_a_401_carries_the_bearer_challenge(
    api: Harness, authorization: str | None, challenge: str
) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    for path in ("/api/v1/reports", "/api/v1/tallies?scope=local&partitions=0"):
        if path == "/api/v1/reports":
            resp = await api.client.post(path, data=json.dumps(report()), headers=headers)
        else:
            resp = await api.client.get(path, headers=headers)
        body = await json_answer(resp)
        assert resp.status == 401 and "Authorization: Bearer <token>" in body["error"]
        assert resp.headers["WWW-Authenticate"] == challenge
    assert api.producer.sent == []


async def test_a_token_sent_without_a_scheme_is_not_echoed(api: Harness) -> None:
    resp = await api.client.post(
        "/api/v1/reports", data=json.dumps(report()), headers={"Authorization": "not-the-token"}
    )
    body = await json_answer(resp)
    assert resp.status == 401 and "not-the-token" not in body["error"]
    assert resp.headers["WWW-Authenticate"] == "Bearer"


# -- a '+' sent unencoded in a time ----------------------------------------------------------
HINT = "a '+' in a URL must be written %2B (the space before 03:00 was probably a '+')"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tallies?as_of=2026-12-01T02:33:27+03:00",
        "/api/v1/incidents?from=2026-12-01T02:33:27+03:00",
        "/api/v1/incidents?to=2026-12-01T02:33:27.5+03:00",
        "/api/v1/series?from=2026-12-01T00:00+03:00",
        "/api/v1/series?to=2026-12-01 02:33:27+03:00",
    ],
)
async def test_a_plus_sent_unencoded_in_a_time_is_named(api: Harness, path: str) -> None:
    status, body = await api.get(path)
    assert status == 400 and HINT in body["error"], body
    assert " 03:00'" in body["error"]  # the value as the server read it


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tallies?as_of=yesterday",
        "/api/v1/tallies?as_of=2026-12-01T02:33:27 x",
        "/api/v1/incidents?from=2021-13-01",
        "/api/v1/series?to=2026-12-01T02:33:27 03:00 trailing",
    ],
)
async def test_other_bad_times_get_no_plus_hint(api: Harness, path: str) -> None:
    status, body = await api.get(path)
    assert status == 400 and "%2B" not in body["error"], body


# -- a merged incident -----------------------------------------------------------------------
async def test_a_merged_id_is_404_naming_the_incident_that_holds_its_reports() -> None:
    renamed = incident_id(("pkf-op-9", "first"))
    b = incidents_api.book(*incidents_api.EVENT)
    b.upsert(rv("pkf-op-9", "first", t=-5 * MIN))  # an earlier report: the incident renamed
    ports = free_port(), free_port()
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    owners = {urls[0]: {0}, urls[1]: {1}}
    holder = incidents_api.stand_in({0: b}, url=urls[0], owners=owners)
    other = incidents_api.stand_in({1: incidents_api.book()}, url=urls[1], owners=owners)
    async with (
        incidents_api.serve(holder, ports[0]) as ca,
        incidents_api.serve(other, ports[1]) as cb,
    ):
        for client in (ca, cb):  # on the worker holding it, and through a peer
            path = f"/api/v1/incidents/{incidents_api.EVENT_ID}"
            status, body = await incidents_api.get(client, path)
            assert status == 404 and body["merged_into"] == renamed, body
            assert f"merged into incident {renamed}" in body["error"]
            assert body["version"] == b.versions[incidents_api.EVENT_ID]
            status, _ = await incidents_api.get(client, f"/api/v1/incidents/{renamed}")
            assert status == 200


async def test_a_merged_id_names_its_holder_once_that_is_closed() -> None:
    renamed = incident_id(("pkf-op-9", "first"))
    b = incidents_api.book(*incidents_api.EVENT)
    b.upsert(rv("pkf-op-9", "first", t=-5 * MIN))
    last = b.versions[incidents_api.EVENT_ID]
    assert b.sweep(1_700_000_000.0 + 40 * 86_400).moves  # the holder's day closed
    assert renamed not in b.versions and incidents_api.EVENT_ID not in b.versions
    monitor = incidents_api.stand_in({0: b, 1: incidents_api.book()})
    async with TestClient(TestServer(Api(monitor).web)) as client:
        status, body = await incidents_api.get(
            client, f"/api/v1/incidents/{incidents_api.EVENT_ID}"
        )
        assert status == 404 and body["merged_into"] == renamed, body
        assert body["version"] == last
        status, body = await incidents_api.get(client, f"/api/v1/incidents/{renamed}")
        assert status == 200 and body["incident_id"] == renamed, body


async def test_a_withdrawn_id_is_404_without_merged_into() -> None:
    b = incidents_api.book(*incidents_api.EVENT)
    for r in incidents_api.EVENT:
        b.remove(r.source, r.report_id, r.revision + 1)
    assert incidents_api.EVENT_ID in b.versions
    monitor = incidents_api.stand_in({0: b, 1: incidents_api.book()})
    async with TestClient(TestServer(Api(monitor).web)) as client:
        path = f"/api/v1/incidents/{incidents_api.EVENT_ID}"
        status, body = await incidents_api.get(client, path)
        assert status == 404 and "merged_into" not in body and "withdrawn" in body["error"]
