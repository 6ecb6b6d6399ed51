"""Workers prove their `scope=local` queries to each other with a signature, never the token:
the URLs they send them to are whatever the members of their consumer group advertise."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from streams.config import Settings
from streams.pipeline.tables import THEATRE_TABLE
from streams.web.api import Api
from streams.web.fanout import Incomplete, cluster_alerts, cluster_rows
from streams.web.peer_auth import MAX_SKEW, peer_authorization, peer_refusal

if TYPE_CHECKING:
    from streams.web.worker_view import WorkerView

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret-token-of-the-workers"
URL = "http://worker-2.mission.example:6066"
PATH = "/api/v1/tallies"
QUERY = {"window": "24h", "by": "zone", "as_of": "1733390000.5", "scope": "local"}
NOW = 1_733_390_000.0


def signed(
    url: str = URL, path: str = PATH, query: dict[str, str] | None = None, at: float = NOW
) -> str:
    return peer_authorization(TOKEN, url, path, QUERY if query is None else query, at)


def refusal(
    header: str | None, *, url: str = URL, query: dict[str, str] | None = None
) -> str | None:
    items = (QUERY if query is None else query).items()
    return peer_refusal(header, TOKEN, url, PATH, items, NOW)


# -- the signature, on its own ------------------------------------------------------------
def test_a_signature_proves_its_own_request_and_holds_no_token() -> None:
    header = signed()
    assert header.startswith("Ceasefire-Peer t=1733390000, sig=")
    assert TOKEN not in header
    assert refusal(header) is None
    # the scheme's name in any case (RFC 7235); the query in any order
    assert refusal(header.replace("Ceasefire-Peer", "ceasefire-peer")) is None
    assert refusal(header, query=dict(reversed(list(QUERY.items())))) is None
    # both ends write the worker's URL as yarl does: host case, a default port, a final "/"
    other_spelling = peer_authorization(TOKEN, "HTTP://Worker-1:80/", PATH, QUERY, NOW)
    assert refusal(other_spelling, url="http://worker-1") is None


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (signed(url="http://worker-3.mission.example:6066"), "another worker"),
        (signed(path="/api/v1/series"), "does not match"),
        (signed(query={**QUERY, "window": "7d"}), "does not match"),
        (signed(query={**QUERY, "partitions": "0"}), "does not match"),
        (peer_authorization("another-token", URL, PATH, QUERY, NOW), "does not match"),
        (signed(at=NOW - MAX_SKEW - 1), "301 s behind this worker's clock"),
        (signed(at=NOW + MAX_SKEW + 5), "305 s ahead of this worker's clock"),
        ("Ceasefire-Peer t=1733390000", "is `t=<epoch seconds>, sig=<64 hex digits>`"),
        ("Ceasefire-Peer t=x, sig=" + "0" * 64, "is `t=<epoch seconds>"),
        (f"Bearer {TOKEN}", "not of the Ceasefire-Peer scheme"),
        (None, "not of the Ceasefire-Peer scheme"),
    ],
)
def test_a_signature_for_anything_else_is_refused_saying_why(header: str | None, why: str) -> None:
    found = refusal(header)
    assert found is not None and why in found, found
    assert TOKEN not in found


def test_a_signature_within_the_clocks_skew_is_taken() -> None:
    assert refusal(signed(at=NOW - MAX_SKEW)) is None
    assert refusal(signed(at=NOW + MAX_SKEW)) is None


_TEXT = st.text(max_size=20)


@given(st.dictionaries(_TEXT, _TEXT, max_size=6), _TEXT, _TEXT)
def test_any_query_round_trips_and_any_changed_value_is_refused(
    query: dict[str, str], key: str, value: str
) -> None:
    header = signed(query=query)
    assert refusal(header, query=query) is None
    changed = {**query, key: value}
    if changed != query:
        assert refusal(header, query=changed) is not None


# -- workers asking each other ------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def worker(
    me: str, owners: dict[str, set[int]], alerts: list[dict[str, Any]], **settings: Any
) -> WorkerView:
    """A stand-in worker answering alerts for `owners[me]`; the theatre is the first's."""
    first = next(iter(owners))

    def metadata(table: str) -> dict[str, dict[str, set[int]]]:
        if table == THEATRE_TABLE:
            return {first: {"t": {0}}}
        return {url: {"t": parts} for url, parts in owners.items()}

    monitor = SimpleNamespace(
        settings=Settings(
            **{"partitions": 2, "advertised_url": me, "api_token": TOKEN, **settings}
        ),
        app=SimpleNamespace(router=SimpleNamespace(table_metadata=metadata)),
        alerting=SimpleNamespace(
            alerts=lambda status: [] if status == "resolved" else alerts,
            holds_its_partitions=lambda: True,
            knows_resolved=lambda: True,
        ),
    )
    return cast("WorkerView", monitor)


@asynccontextmanager
async def serving(app: web.Application, url: str) -> AsyncIterator[None]:
    """`app` served at `url` (a loopback URL of `free_port`)."""
    async with TestServer(app, host="127.0.0.1", port=int(url.rsplit(":", 1)[1])):
        yield


def alert(alert_id: str) -> dict[str, Any]:
    return {"alert_id": alert_id, "status": "firing", "starts_at": "2026-12-01T00:00:00.000Z"}


async def test_two_workers_answer_each_other_on_signed_queries() -> None:
    a, b = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    owners = {a: {0}, b: {1}}
    worker_a = worker(a, owners, [alert("a")])
    worker_b = worker(b, owners, [alert("b")])
    async with (
        serving(Api(worker_a).web, a),
        serving(Api(worker_b).web, b),
        ClientSession() as client,
    ):
        for asked in (a, b):
            async with client.get(f"{asked}/api/v1/alerts") as resp:
                body = await resp.json()
                assert resp.status == 200, body
                assert sorted(x["alert_id"] for x in body["alerts"]) == ["a", "b"]


async def test_a_stranger_advertising_a_url_gets_no_token_and_nothing_it_can_use(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Anyone who may join the workers' consumer group may advertise a URL: the workers
    sent it CEASEFIRE_API_TOKEN, which posts reports for every source and fires alerts."""
    me, stranger = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    seen: list[tuple[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((request.path_qs, request.headers.get("Authorization", "")))
        return web.json_response({"rows": [], "alerts": []})

    trap = web.Application()
    trap.router.add_get("/api/v1/tallies", record)
    trap.router.add_get("/api/v1/alerts", record)
    victim = worker(me, {stranger: {0, 1}}, [])  # the stranger took every partition
    async with (
        serving(trap, stranger),
        serving(Api(victim).web, me),
        ClientSession() as client,
    ):
        await cluster_rows(victim, window="24h", by="zone", as_of=NOW)
        await cluster_alerts(victim, "firing")
        assert len(seen) == 2
        assert all(TOKEN not in header and header for _, header in seen), seen
        # replayed to the worker it came from, each is refused (signed for the stranger)
        for path_qs, header in seen:
            headers = {"Authorization": header}
            async with client.get(f"{me}{path_qs}", headers=headers) as resp:
                body = await resp.json()
                assert resp.status == 401, body
                assert f"another worker than {me}" in body["error"], body
                assert "Ceasefire-Peer" in resp.headers["WWW-Authenticate"]
    refused = [r for r in caplog.records if "Refused a peer's" in r.getMessage()]
    assert len(refused) == 1 and refused[0].levelno == logging.WARNING  # once a minute


async def test_a_worker_with_another_token_makes_the_answer_incomplete_logging_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, b = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    owners = {a: {0}, b: {1}}
    worker_a = worker(a, owners, [alert("a")])
    worker_b = cast(Any, worker(b, owners, [alert("b")]))
    worker_b.settings = Settings(partitions=2, advertised_url=b, api_token="not-the-same")
    async with serving(Api(worker_b).web, b):
        for _ in range(3):
            with pytest.raises(Incomplete, match="answered 401") as raised:
                await cluster_alerts(worker_a, "firing")
            assert "does not match" not in str(raised.value)  # the client is told the status
    said = [r.getMessage() for r in caplog.records if "per-partition query 401" in r.getMessage()]
    assert len(said) == 1 and "does not match" in said[0], said  # the log why, once a minute


#: What a service reachable only from the workers' network might answer.
INTERNAL_PAGE = "INTERNAL-ONLY: db_password=hunter2"


@pytest.mark.parametrize("how", ["redirect", "refusal", "huge", "huge-refusal"])
async def test_a_url_advertised_by_a_stranger_is_not_read_through_for_a_client(how: str) -> None:
    """A member of the consumer group may advertise any URL. Its answer was read whole
    (redirects followed) and a refusal's text put in the client's 503: an anonymous
    client could read an internal page through the worker, or make it hold 200 MB."""
    me, stranger = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    internal = f"http://127.0.0.1:{free_port()}"
    big = b"[" + b"0," * (32 * 2**20) + b"0]"  # twice PEER_ANSWER_MAX, valid JSON
    written: list[int] = []

    async def page(request: web.Request) -> web.Response:
        return web.Response(status=403, text=INTERNAL_PAGE)

    async def answer(request: web.Request) -> web.StreamResponse:
        if how == "redirect":
            raise web.HTTPFound(f"{internal}/admin")
        if how == "refusal":
            return await page(request)
        resp = web.StreamResponse(status=500 if how == "huge-refusal" else 200)
        await resp.prepare(request)  # no Content-Length: the size shows only as it is read
        written.append(0)
        for at in range(0, len(big), 1 << 20):
            await resp.write(big[at : at + (1 << 20)])  # fails once the worker hangs up
            written[-1] = at + (1 << 20)
        return resp

    inner, rogue = web.Application(), web.Application()
    inner.router.add_get("/{tail:.*}", page)
    rogue.router.add_get("/{tail:.*}", answer)
    owners = {stranger: {0, 1}}  # every partition the stranger's: `me` asks it for all
    async with (
        serving(Api(worker(me, owners, [alert("a")])).web, me),
        serving(inner, internal),
        serving(rogue, stranger),
        ClientSession() as client,
    ):
        for path in ("/api/v1/alerts", "/api/v1/tallies?window=24h"):
            async with client.get(f"{me}{path}") as resp:  # an anonymous client
                body = await resp.read()
                assert resp.status == 503, body
                assert INTERNAL_PAGE.encode() not in body and len(body) < 1000, body[:300]
    assert all(n < len(big) for n in written), written  # the worker stopped reading
    assert len(written) == (2 if how.startswith("huge") else 0)  # each path asked it once


async def test_an_earlier_release_s_bearer_token_is_still_taken_on_peer_queries() -> None:
    """Workers of earlier releases send the token itself: taken, so that a rolling upgrade
    keeps the upgraded workers' partitions answering them."""
    me = f"http://127.0.0.1:{free_port()}"
    api = worker(me, {me: {0, 1}}, [alert("a")])
    async with serving(Api(api).web, me), ClientSession() as client:
        url = f"{me}/api/v1/alerts?status=firing&scope=local"
        async with client.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            assert resp.status == 200, await resp.text()
        async with client.get(url) as resp:
            assert resp.status == 401, await resp.text()


@pytest.mark.parametrize(("internal_format", "scheme"), [(8, "Ceasefire-Peer"), (7, "Bearer")])
def test_during_a_rolling_upgrade_from_format_7_workers_send_the_token_as_the_old_ones_take_it(
    internal_format: int, scheme: str
) -> None:
    from streams.web.fanout import peer_headers

    monitor = worker(URL, {URL: {0, 1}}, [], internal_format=internal_format)
    header = peer_headers(monitor, URL, PATH, QUERY)["Authorization"]
    assert header.startswith(f"{scheme} ")
    assert (TOKEN in header) == (scheme == "Bearer")
    assert peer_headers(worker(URL, {URL: {0}}, [], api_token=None), URL, PATH, QUERY) == {}


AWKWARD = ["a+b", "a b", "é", "%41", "&=", "", "a;b", "?#", "\u2028", "1733390000.25", "x/y"]


async def test_a_signature_survives_the_http_round_trip_of_awkward_query_values() -> None:
    """The sender signs the query it hands aiohttp; the receiver checks what aiohttp
    decoded: any difference in quoting (a `+`, a space, `%41`) would be a 401 for good."""
    from streams.web.fanout import peer_headers

    me = f"http://127.0.0.1:{free_port()}"
    path = "/api/v1/incidents/6f1c0e3a-93a4-5d1e-8f6b-0a1b2c3d4e5f"

    async def check(request: web.Request) -> web.Response:
        why = peer_refusal(
            request.headers.get("Authorization"),
            TOKEN,
            me,
            request.path,
            request.query.items(),
            time.time(),
        )
        return web.json_response({"why": why})

    app = web.Application()
    app.router.add_get("/api/v1/incidents/{incident_id}", check)
    monitor = worker(me, {me: {0, 1}}, [])
    async with serving(app, me), ClientSession() as client:
        for value in AWKWARD:
            query = {"scope": "local", value or "empty": value, "cursor": value + "x"}
            headers = peer_headers(monitor, me, path, query)  # as a worker sends it
            async with client.get(f"{me}{path}", params=query, headers=headers) as resp:
                assert (await resp.json())["why"] is None, value
