"""`GET /api/v1/tallies?window=all&compare=previous` and `GET /api/v1/series` on test
servers over stand-in workers holding real tallies: one worker owning every partition, and
two asking each other. No broker. Expected figures follow from the incidents placed here."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from schemas.codes import Category, Severity, Verification
from streams.config import Settings
from streams.kafka.broker import free_port
from streams.record.incident import IncidentFields, IncidentRecord, Status
from streams.tallies.state import IncidentTally
from streams.web.api import Api

if TYPE_CHECKING:
    from streams.web.worker_view import WorkerView

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = TestClient[web.Request, web.Application]

CEASEFIRE = datetime(2020, 11, 9, 21, 0, tzinfo=UTC)
AS_OF = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def at(
    moment: datetime, iid: str, *, zone: str = "shusha", party: str = "az", killed: int = 0
) -> IncidentRecord:
    f = IncidentFields(
        occurred=moment.timestamp(),
        zone=zone,
        category=Category.HEAVY_WEAPONS_FIRE,
        severity=Severity.HIGH,
        verification=Verification.OBSERVED,
        attribution=party,
        claims=(),
        killed=killed,
        wounded=0,
        reports=(("pkf-op-1", iid, 0),),
    )
    return IncidentRecord(iid, 1, Status.OPEN, None, f)


# Partition 0 holds Shusha, partition 1 Lachin.
SHUSHA = [
    at(CEASEFIRE - timedelta(hours=1), "war"),  # before the ceasefire: never in `all`
    at(CEASEFIRE, "first", killed=1),  # its first instant, 00:00 Moscow time
    at(CEASEFIRE + timedelta(hours=2, minutes=59), "night"),  # 23:59 UTC: Moscow's next day
    at(AS_OF - timedelta(hours=2), "today"),
    at(AS_OF - timedelta(hours=30), "yesterday", party="am"),
]
LACHIN = [
    at(CEASEFIRE + timedelta(days=1, hours=5), "lachin-1", zone="lachin", party="am", killed=2),
    at(AS_OF - timedelta(hours=26), "lachin-2", zone="lachin"),  # only in the previous 24h
]


def tallies() -> dict[int, IncidentTally]:
    out = {0: IncidentTally(), 1: IncidentTally()}
    for p, records in ((0, SHUSHA), (1, LACHIN)):
        for r in records:
            out[p].apply(r)
    return out


def stand_in(
    held: dict[int, IncidentTally],
    *,
    url: str = "http://127.0.0.1:1",
    owners: dict[str, set[int]] | None = None,
    ready: Callable[[], set[int]] | None = None,
) -> WorkerView:
    owners = owners if owners is not None else {url: set(held)}
    monitor = SimpleNamespace(
        settings=Settings(partitions=2, advertised_url=url, api_token=TOKEN),
        zone=SimpleNamespace(tallies=held, partitions_ready=ready or (lambda: set(held))),
        app=SimpleNamespace(
            router=SimpleNamespace(
                table_metadata=lambda _: {u: {"t": ps} for u, ps in owners.items()}
            )
        ),
    )
    return cast("WorkerView", monitor)


@asynccontextmanager
async def serve(monitor: WorkerView, port: int | None = None) -> AsyncIterator[Client]:
    async with TestClient(TestServer(Api(monitor).web, host="127.0.0.1", port=port)) as client:
        yield client


@pytest.fixture
async def one() -> AsyncIterator[Client]:
    async with serve(stand_in(tallies())) as client:
        yield client


async def get(client: Client, path: str, **kwargs: Any) -> tuple[int, Any]:
    resp = await client.get(path, **kwargs)
    assert resp.content_type == "application/json", await resp.text()
    return resp.status, await resp.json()


def figures(rows: list[dict[str, Any]], key: str, *names: str) -> dict[str, tuple[int, ...]]:
    return {r[key]: tuple(r[n] for n in names) for r in rows}


AS_OF_Q = "as_of=2026-11-29T12:00:00Z"


# -- window=all, compare=previous -----------------------------------------------------------
async def test_all_counts_since_the_ceasefire(one: Client) -> None:
    status, body = await get(one, f"/api/v1/tallies?window=all&by=zone&{AS_OF_Q}")
    assert status == 200, body
    assert body["window"] == "all" and body["since"] == "2020-11-10T00:00:00+03:00"
    assert figures(body["rows"], "zone", "incidents", "killed") == {
        "lachin": (2, 2),
        "shusha": (4, 1),  # not the war's
    }
    # a day after the ceasefire began
    _, body = await get(one, "/api/v1/tallies?window=all&as_of=2020-11-10T21:00:00Z")
    assert figures(body["rows"], "zone", "incidents") == {"shusha": (2,)}


async def test_compare_previous_carries_the_window_just_before(one: Client) -> None:
    status, body = await get(one, f"/api/v1/tallies?window=24h&compare=previous&{AS_OF_Q}")
    assert status == 200, body
    assert body["compare"] == "previous"
    assert body["previous_as_of"] == "2026-11-28T12:00:00+00:00"
    rows = {r["zone"]: r for r in body["rows"]}
    assert rows["lachin"] == {
        "zone": "lachin",
        "incidents": 0,
        "reports": 0,
        "killed": 0,
        "wounded": 0,
        "previous_incidents": 1,
        "previous_reports": 1,
        "previous_killed": 0,
        "previous_wounded": 0,
    }
    assert (rows["shusha"]["incidents"], rows["shusha"]["previous_incidents"]) == (1, 1)
    # without compare, no previous figures
    _, body = await get(one, f"/api/v1/tallies?window=24h&{AS_OF_Q}")
    assert all("previous_incidents" not in r for r in body["rows"]) and "compare" not in body


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("window=all&compare=previous", "needs a rolling window"),
        ("window=24h&compare=last", "unknown compare"),
        ("window=forever", "use one of 1h, 24h, 7d, 30d, all"),
    ],
)
async def test_bad_tally_queries_are_400(one: Client, query: str, message: str) -> None:
    status, body = await get(one, f"/api/v1/tallies?{query}")
    assert status == 400 and message in body["error"], body


# -- series -----------------------------------------------------------------------------------
async def test_daily_series_by_default_are_the_ceasefire_days_to_now(one: Client) -> None:
    status, body = await get(one, "/api/v1/series?by=zone")
    assert status == 200, body
    assert body["interval"] == "1d" and body["by"] == ["zone"]
    assert body["from"] == "2020-11-10T00:00:00+03:00"
    buckets = body["buckets"]
    assert buckets[0]["start"] == "2020-11-10T00:00:00+03:00"
    assert buckets[0]["end"] == buckets[1]["start"] == "2020-11-11T00:00:00+03:00"
    end = datetime.fromisoformat(body["to"])
    assert end - timedelta(days=1) <= datetime.now(UTC) < end  # to rounded up to a whole day
    assert figures(buckets[0]["rows"], "zone", "incidents") == {"shusha": (2,)}
    assert figures(buckets[1]["rows"], "zone", "incidents") == {"lachin": (1,)}
    total = sum(r["incidents"] for b in buckets for r in b["rows"])
    _, all_ = await get(one, "/api/v1/tallies?window=all")
    assert total == sum(r["incidents"] for r in all_["rows"]) == 6


async def test_utc_days_hours_and_ranges(one: Client) -> None:
    _, body = await get(one, "/api/v1/series?by=party&from=2020-11-09&to=2020-11-10T12:00:00Z")
    assert [b["start"] for b in body["buckets"]] == [
        "2020-11-09T00:00:00+00:00",
        "2020-11-10T00:00:00+00:00",
    ]
    assert body["to"] == "2020-11-11T00:00:00+00:00"
    # the war's hour and the ceasefire's first are on 9 November UTC; 23:59 too
    assert figures(body["buckets"][0]["rows"], "party", "incidents") == {"az": (3,)}
    _, body = await get(
        one,
        "/api/v1/series?interval=1h&by=zone,party"
        "&from=2026-11-29T09:00:00%2B04:00&to=2026-11-29T16:00:00%2B04:00",
    )
    starts = [b["start"] for b in body["buckets"]]
    assert starts[0] == "2026-11-29T09:00:00+04:00" and len(starts) == 7
    hits = {b["start"]: b["rows"] for b in body["buckets"] if b["rows"]}
    assert list(hits) == ["2026-11-29T14:00:00+04:00"]  # 10:00 UTC


async def test_an_hourly_series_by_default_is_the_last_week(one: Client) -> None:
    """`interval=1h` alone was 400 (hourly since the ceasefire is 53,000 buckets): it is the
    last 7 days' hours, on the ceasefire's grid; a `to` near the ceasefire starts at it."""
    status, body = await get(one, "/api/v1/series?interval=1h&to=2026-11-29T12:30:00Z")
    assert status == 200, body
    assert body["from"] == "2026-11-22T15:00:00+03:00"  # 12:00 UTC, a whole hour
    assert body["to"] == "2026-11-29T16:00:00+03:00" and len(body["buckets"]) == 7 * 24 + 1
    assert figures(body["buckets"][-3]["rows"], "zone", "incidents") == {"shusha": (1,)}
    _, body = await get(one, "/api/v1/series?interval=1h&to=2020-11-12T00:00:00Z")
    assert body["from"] == "2020-11-10T00:00:00+03:00"
    _, body = await get(one, "/api/v1/series?interval=1h&to=2026-11-29T12:00:00Z")
    assert body["from"] == "2026-11-22T15:00:00+03:00"  # on the hour: exactly 7 days


async def test_series_csv_has_a_line_per_bucket_and_group(one: Client) -> None:
    resp = await one.get("/api/v1/series?by=zone&from=2020-11-09&to=2020-11-12&format=csv")
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "series.csv" in resp.headers["Content-Disposition"]
    assert resp.headers["Vary"] == "Accept"  # the form depends on Accept: caches must know
    as_json = await one.get("/api/v1/series?by=zone&from=2020-11-09&to=2020-11-12")
    assert as_json.content_type == "application/json" and as_json.headers["Vary"] == "Accept"
    text = await resp.text()
    assert text.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows == [
        ["start", "end", "zone", "incidents", "reports", "killed", "wounded"],
        ["2020-11-09T00:00:00+00:00", "2020-11-10T00:00:00+00:00", "shusha", "3", "3", "1", "0"],
        # 10 November had none: no line
        ["2020-11-11T00:00:00+00:00", "2020-11-12T00:00:00+00:00", "lachin", "1", "1", "2", "0"],
    ]
    resp = await one.get("/api/v1/series?from=2020-11-09", headers={"Accept": "text/csv"})
    assert resp.content_type == "text/csv"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("interval=1w", "unknown interval"),
        ("by=severity", "unknown grouping"),
        ("from=yesterday", "not an RFC 3339 time"),
        ("from=2021-05-01T00:00:00", "not an RFC 3339 time"),
        ("from=2021-02-30", "not a date"),
        ("from=2021-05-02&to=2021-05-01", "is not after from"),
        ("from=2021-05-01&to=2021-05-01", "is not after from"),
        ("interval=1h&from=2020-11-10", "at most 10000"),  # hourly since the ceasefire
        ("interval=1h&from=2020-11-10", "an earlier to, or interval=1d"),
        ("from=1900-01-01", "give a later from or an earlier to"),  # daily: no other advice
        ("interval=1h&from=2000-01-01&to=2030-01-01", "at most 10000"),
        ("from=0001-01-01T00:00:00%2B01:00", "years 0001 to 9999"),
        ("to=9999-12-31T12:00:00Z&from=9999-12-01", "after the year 9999"),
        ("form=2021-05-01", "unknown parameter 'form'"),
        ("by=zone&by=party", "given twice"),
        ("format=xlsx", "unknown format"),
        ("scope=local&partitions=9", "partitions"),
    ],
)
async def test_bad_series_queries_are_400_with_a_message(
    one: Client, query: str, message: str
) -> None:
    status, body = await get(one, f"/api/v1/series?{query}", headers=AUTH)
    assert status == 400 and message in body["error"], body


async def test_scope_local_needs_the_token_and_held_partitions() -> None:
    async with serve(stand_in(tallies(), ready=lambda: {0})) as client:
        path = "/api/v1/series?from=2020-11-09&to=2020-11-11&scope=local"
        status, _ = await get(client, f"{path}&partitions=0")
        assert status == 401
        status, body = await get(client, f"{path}&partitions=0,1", headers=AUTH)
        assert status == 409 and "[1]" in body["error"]
        status, body = await get(client, f"{path}&partitions=0", headers=AUTH)
        assert status == 200 and [len(b["rows"]) for b in body["buckets"]] == [1, 0]


# -- two workers ------------------------------------------------------------------------------
async def test_two_workers_answer_completely_and_alike() -> None:
    ports = free_port(), free_port()
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    held = tallies()
    owners = {urls[0]: {0}, urls[1]: {1}}
    a = stand_in({0: held[0]}, url=urls[0], owners=owners)
    b = stand_in({1: held[1]}, url=urls[1], owners=owners)
    async with (
        serve(stand_in(tallies())) as alone,
        serve(a, ports[0]) as ca,
        serve(b, ports[1]) as cb,
    ):
        for path in (
            "/api/v1/series?by=zone,party&from=2020-11-09&to=2026-11-30",
            "/api/v1/series?interval=1h&from=2026-11-28T00:00:00Z&to=2026-11-30T00:00:00Z",
            f"/api/v1/tallies?window=all&by=zone,party&{AS_OF_Q}",
            f"/api/v1/tallies?window=7d&compare=previous&{AS_OF_Q}",
        ):
            _, expected = await get(alone, path)
            assert any(b["rows"] for b in expected.get("buckets", [expected]))
            for client in (ca, cb):
                status, body = await get(client, path)
                assert status == 200, body
                assert body == expected, path
        # as_of before 1970, or a tiny epoch second: peers were sent -315619200.0 and 1e-06,
        # refused them, and the answer was 503 on every retry
        for path in (
            "/api/v1/tallies?window=24h&as_of=1960-01-01T00:00:00Z",
            "/api/v1/tallies?window=1h&as_of=1970-01-01T00:30:00Z&compare=previous",
            "/api/v1/tallies?window=24h&as_of=0.00001",
        ):
            _, expected = await get(alone, path)
            for client in (ca, cb):
                status, body = await get(client, path)
                assert (status, body) == (200, expected), path


async def test_a_moving_partition_or_a_missing_owner_is_503_never_partial() -> None:
    ports = free_port(), free_port()
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    held = tallies()
    owners = {urls[0]: {0}, urls[1]: {1}}
    a = stand_in({0: held[0]}, url=urls[0], owners=owners)
    recovering = stand_in({1: held[1]}, url=urls[1], owners=owners, ready=set)
    async with serve(a, ports[0]) as ca, serve(recovering, ports[1]):
        for path in (
            "/api/v1/series",
            "/api/v1/tallies?window=all",
            "/api/v1/tallies?compare=previous",
        ):
            status, body = await get(ca, path)
            assert status == 503 and "retry" in body["error"], path
    gone = stand_in({0: held[0]}, url=urls[0], owners={urls[0]: {0}, urls[1]: {1}})
    async with serve(gone) as client:
        status, _ = await get(client, "/api/v1/series")
        assert status == 503


@pytest.mark.parametrize(
    "answer",
    [
        b'{"nope": 1}',
        b"{not json",
        b'{"buckets": []}',
        b'{"buckets": [{"rows": [1]}, {"rows": []}]}',
        b'{"buckets": [{"rows": [{"zone": "x"}]}, {"rows": []}]}',
        b'{"buckets": [{"rows": [{"zone": "x", "incidents": "1", "reports": 1, "killed": 0, '
        b'"wounded": 0}]}, {"rows": []}]}',
    ],
)
async def test_a_peer_answering_nonsense_makes_the_series_incomplete(answer: bytes) -> None:
    async def peer(request: web.Request) -> web.Response:
        return web.Response(body=answer, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v1/series", peer)
    async with TestServer(app) as server:
        url = str(server.make_url("")).rstrip("/")
        held = tallies()
        monitor = stand_in({0: held[0]}, owners={"http://127.0.0.1:1": {0}, url: {1}})
        async with serve(monitor) as client:
            status, body = await get(client, "/api/v1/series?from=2020-11-09&to=2020-11-11")
            assert status == 503, body
